"""files.get_info and files.exists (filesystem.Filesystem/Stat) and is_running (GET /health), sync and async."""

import os

import pytest
from e2b import AsyncSandbox, FileNotFoundException, FileType, Sandbox


def test_get_info_describes_a_directory(sandbox: Sandbox, work_dir: str) -> None:
    info = sandbox.files.get_info(work_dir)
    assert info.name == os.path.basename(work_dir)
    assert info.path == work_dir
    assert info.type == FileType.DIR
    assert info.owner == "root"
    assert info.group == "root"
    assert info.permissions.startswith("d")


async def test_get_info_describes_a_file_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "hello.txt")
    with open(path, "w") as f:
        f.write("hello")
    os.chmod(path, 0o640)
    info = await asandbox.files.get_info(path)
    assert info.type == FileType.FILE
    assert info.size == 5
    assert info.mode == 0o640
    assert info.permissions == "-rw-r-----"
    assert abs(info.modified_time.timestamp() - os.stat(path).st_mtime) < 1


def test_get_info_of_a_symlink_names_its_target(sandbox: Sandbox, work_dir: str) -> None:
    target = os.path.join(work_dir, "target.txt")
    link = os.path.join(work_dir, "link")
    open(target, "w").close()
    os.symlink(target, link)
    info = sandbox.files.get_info(link)
    assert info.symlink_target == target


def test_get_info_of_a_missing_path_raises_file_not_found(sandbox: Sandbox, work_dir: str) -> None:
    with pytest.raises(FileNotFoundException):
        sandbox.files.get_info(os.path.join(work_dir, "missing"))


async def test_exists_tells_present_from_missing_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    assert await asandbox.files.exists(work_dir) is True
    assert await asandbox.files.exists(os.path.join(work_dir, "missing")) is False


def test_is_running_probes_health(sandbox: Sandbox) -> None:
    assert sandbox.is_running() is True


async def test_is_running_probes_health_async(asandbox: AsyncSandbox) -> None:
    assert await asandbox.is_running() is True
