"""The Python SDK's files API against sandboxd: uploads and downloads (POST/GET /files) and the filesystem RPCs."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pwd

import pytest
from e2b import AsyncSandbox, FileNotFoundException, FileType, InvalidArgumentException, Sandbox

MIB = 1024 * 1024


def sha256_of_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


# ---- write and read ---------------------------------------------------------------------------------


@pytest.mark.needs("POST /files")
def test_text_written_reads_back_and_lands_on_disk(sandbox: Sandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "nested", "dirs", "note.txt")
    info = sandbox.files.write(path, "héllo, wörld\n")
    assert info.path == path
    assert info.name == "note.txt"
    assert info.type == FileType.FILE
    assert sandbox.files.read(path) == "héllo, wörld\n"
    with open(path, encoding="utf-8") as f:
        assert f.read() == "héllo, wörld\n"


@pytest.mark.needs("POST /files")
async def test_bytes_round_trip_unchanged_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "blob.bin")
    data = bytes(range(256)) * 17 + b"\xff\xfe\x00"
    await asandbox.files.write(path, data)
    got = await asandbox.files.read(path, format="bytes")
    assert bytes(got) == data
    with open(path, "rb") as f:
        assert f.read() == data


@pytest.mark.needs("POST /files")
def test_writing_again_replaces_the_content(sandbox: Sandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "twice.txt")
    sandbox.files.write(path, "a much longer first version")
    sandbox.files.write(path, "short")
    assert sandbox.files.read(path) == "short"


@pytest.mark.needs("POST /files")
def test_write_files_uploads_several_in_one_request(sandbox: Sandbox, work_dir: str) -> None:
    entries = [{"path": os.path.join(work_dir, f"f{i}.txt"), "data": f"file {i}"} for i in range(3)]
    infos = sandbox.files.write_files(entries)
    assert sorted(i.path for i in infos) == sorted(e["path"] for e in entries)
    for e in entries:
        assert sandbox.files.read(e["path"]) == e["data"]


@pytest.mark.needs("POST /files")
def test_a_50_mib_file_streams_up_and_down_intact(sandbox: Sandbox, work_dir: str) -> None:
    src = os.path.join(work_dir, "source.bin")
    with open(src, "wb") as f:
        for _ in range(50):
            f.write(os.urandom(MIB))
    want = sha256_of_file(src)
    dest = os.path.join(work_dir, "uploaded.bin")
    with open(src, "rb") as f:  # a file object goes up as a streamed application/octet-stream body
        sandbox.files.write(dest, f)
    assert os.path.getsize(dest) == 50 * MIB
    assert sha256_of_file(dest) == want

    h = hashlib.sha256()
    size = 0
    for chunk in sandbox.files.read(dest, format="stream"):
        h.update(chunk)
        size += len(chunk)
    assert size == 50 * MIB
    assert h.hexdigest() == want


@pytest.mark.needs("POST /files")
async def test_a_50_mib_file_round_trips_as_bytes_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    data = os.urandom(50 * MIB)
    want = hashlib.sha256(data).hexdigest()
    path = os.path.join(work_dir, "big.bin")
    await asandbox.files.write(path, data)  # bytes go up as multipart/form-data
    assert sha256_of_file(path) == want
    got = await asandbox.files.read(path, format="bytes")
    assert hashlib.sha256(got).hexdigest() == want


@pytest.mark.needs("POST /files")
def test_gzip_upload_and_download_round_trip(sandbox: Sandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "zipped.txt")
    text = "compress me " * 10_000
    sandbox.files.write(path, text, gzip=True)
    with open(path, encoding="utf-8") as f:
        assert f.read() == text  # stored decompressed
    assert sandbox.files.read(path, gzip=True) == text


def test_gzip_download_arrives_compressed_on_the_wire(daemon, work_dir: str) -> None:
    import httpx

    path = os.path.join(work_dir, "plain.txt")
    with open(path, "w") as f:
        f.write("z" * 100_000)
    with httpx.Client() as client:
        with client.stream("GET", f"{daemon.envd_url}/files", params={"path": path}, headers={"Accept-Encoding": "gzip"}) as r:
            assert r.status_code == 200
            assert r.headers["content-encoding"] == "gzip"
            raw = b"".join(r.iter_raw())
    assert gzip.decompress(raw) == b"z" * 100_000


@pytest.mark.needs("POST /files")
async def test_gzip_round_trip_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "zipped.bin")
    data = os.urandom(4096) * 64
    await asandbox.files.write(path, io.BytesIO(data), gzip=True)
    assert bytes(await asandbox.files.read(path, format="bytes", gzip=True)) == data


@pytest.mark.needs("POST /files")
def test_metadata_is_stored_and_reported(sandbox: Sandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "tagged.txt")
    info = sandbox.files.write(path, "x", metadata={"Purpose": "test", "run": "42"})
    assert info.metadata == {"purpose": "test", "run": "42"}  # keys are lowercased by the sandbox
    assert sandbox.files.get_info(path).metadata == {"purpose": "test", "run": "42"}
    listed = {e.name: e for e in sandbox.files.list(work_dir)}
    assert listed["tagged.txt"].metadata == {"purpose": "test", "run": "42"}
    sandbox.files.write(path, "y", metadata={"purpose": "replaced"})
    assert sandbox.files.get_info(path).metadata == {"purpose": "replaced"}


@pytest.mark.needs("POST /files")
async def test_oversized_metadata_is_an_invalid_argument_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    with pytest.raises(InvalidArgumentException):
        await asandbox.files.write(os.path.join(work_dir, "x.txt"), "x", metadata={"big": "v" * 5000})


@pytest.mark.needs("POST /files")
def test_files_written_as_user_belong_to_user_and_resolve_in_its_home(sandbox: Sandbox, user_account: pwd.struct_passwd) -> None:
    name = f"sdk-py-{os.getpid()}.txt"
    info = sandbox.files.write(name, "mine", user="user")
    assert info.path == os.path.join(user_account.pw_dir, name)
    try:
        st = os.stat(info.path)
        assert st.st_uid == user_account.pw_uid
        entry = sandbox.files.get_info(name, user="user")
        assert entry.owner == "user"
        assert sandbox.files.read(name, user="user") == "mine"
    finally:
        os.remove(info.path)


# ---- reading errors --------------------------------------------------------------------------------


def test_reading_a_missing_file_raises_file_not_found(sandbox: Sandbox, work_dir: str) -> None:
    with pytest.raises(FileNotFoundException):
        sandbox.files.read(os.path.join(work_dir, "missing.txt"))


async def test_reading_a_directory_is_an_invalid_argument_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    with pytest.raises(InvalidArgumentException):
        await asandbox.files.read(work_dir)


# ---- list, make_dir, rename, remove ------------------------------------------------------------------


def _tree(root: str) -> None:
    os.makedirs(os.path.join(root, "a", "b", "c"))
    for rel in ("top.txt", "a/one.txt", "a/b/two.txt", "a/b/c/three.txt"):
        with open(os.path.join(root, rel), "w") as f:
            f.write(rel)


def test_list_honours_depth(sandbox: Sandbox, work_dir: str) -> None:
    _tree(work_dir)
    rel = lambda entries: sorted(os.path.relpath(e.path, work_dir) for e in entries)  # noqa: E731
    assert rel(sandbox.files.list(work_dir)) == ["a", "top.txt"]
    assert rel(sandbox.files.list(work_dir, depth=2)) == ["a", "a/b", "a/one.txt", "top.txt"]
    assert rel(sandbox.files.list(work_dir, depth=10)) == [
        "a", "a/b", "a/b/c", "a/b/c/three.txt", "a/b/two.txt", "a/one.txt", "top.txt",
    ]
    by_name = {e.name: e for e in sandbox.files.list(work_dir)}
    assert by_name["a"].type == FileType.DIR
    assert by_name["top.txt"].type == FileType.FILE
    assert by_name["top.txt"].size == len("top.txt")


async def test_list_depth_below_one_is_refused_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    with pytest.raises(InvalidArgumentException):
        await asandbox.files.list(work_dir, depth=0)


async def test_listing_a_file_is_an_invalid_argument_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "file.txt")
    open(path, "w").close()
    with pytest.raises(InvalidArgumentException):
        await asandbox.files.list(path)


def test_listing_a_missing_directory_raises_file_not_found(sandbox: Sandbox, work_dir: str) -> None:
    with pytest.raises(FileNotFoundException):
        sandbox.files.list(os.path.join(work_dir, "nope"))


def test_make_dir_creates_parents_and_reports_existing(sandbox: Sandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "x", "y", "z")
    assert sandbox.files.make_dir(path) is True
    assert os.path.isdir(path)
    assert sandbox.files.make_dir(path) is False


async def test_make_dir_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "made")
    assert await asandbox.files.make_dir(path) is True
    assert (await asandbox.files.get_info(path)).type == FileType.DIR
    assert await asandbox.files.make_dir(path) is False


def test_rename_moves_and_returns_the_new_entry(sandbox: Sandbox, work_dir: str) -> None:
    old = os.path.join(work_dir, "old.txt")
    new = os.path.join(work_dir, "sub", "new.txt")
    with open(old, "w") as f:
        f.write("moving")
    os.mkdir(os.path.join(work_dir, "sub"))
    entry = sandbox.files.rename(old, new)
    assert entry.path == new
    assert entry.name == "new.txt"
    assert not sandbox.files.exists(old)
    with open(new) as f:
        assert f.read() == "moving"


async def test_renaming_a_missing_path_raises_file_not_found_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    with pytest.raises(FileNotFoundException):
        await asandbox.files.rename(os.path.join(work_dir, "ghost"), os.path.join(work_dir, "other"))


def test_remove_deletes_files_and_whole_trees(sandbox: Sandbox, work_dir: str) -> None:
    _tree(work_dir)
    sandbox.files.remove(os.path.join(work_dir, "top.txt"))
    assert not os.path.exists(os.path.join(work_dir, "top.txt"))
    sandbox.files.remove(os.path.join(work_dir, "a"))
    assert os.listdir(work_dir) == []


async def test_remove_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "gone.txt")
    open(path, "w").close()
    await asandbox.files.remove(path)
    assert await asandbox.files.exists(path) is False
