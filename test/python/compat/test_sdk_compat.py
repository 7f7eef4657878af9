"""What every Python SDK release of the matrix must be able to do against the daemon: files (list, info,
exists, make_dir, rename, watch), commands and pty. Releases up to 1.5 parse Connect JSON strictly and send
`User-Agent: connect-python`; the daemon answers them in envd's legacy shapes (src/services/legacy.ts), and
every other agent, later releases included, with full entries. Calls name `user` where it matters: it is
the default of releases before 2.0, root (the daemon's default) that of later ones."""

from __future__ import annotations

import asyncio
import os
from importlib.metadata import version

import httpx
import pytest
from e2b import AsyncSandbox, CommandExitException, FilesystemEvent, FilesystemEventType, FileType, PtySize, Sandbox
from watch_polling import poll_events

SDK = version("e2b")


def _names(events: list[FilesystemEvent]) -> list[tuple[str, str]]:
    return [(e.type.name, e.name) for e in events]


def test_files_list_info_exists_make_dir_rename(sandbox: Sandbox, shared_dir: str) -> None:
    assert sandbox.files.make_dir(f"{shared_dir}/sub") is True
    assert sandbox.files.make_dir(f"{shared_dir}/sub") is False
    written = sandbox.files.write(f"{shared_dir}/a.txt", "hello", "user")  # positional: 1.x overloads write
    assert (written.name, written.path) == ("a.txt", f"{shared_dir}/a.txt")
    listed = sorted(sandbox.files.list(shared_dir), key=lambda e: e.name)
    assert [(e.name, e.type, e.path) for e in listed] == [
        ("a.txt", FileType.FILE, f"{shared_dir}/a.txt"),
        ("sub", FileType.DIR, f"{shared_dir}/sub"),
    ]
    assert sandbox.files.exists(f"{shared_dir}/a.txt") is True
    assert sandbox.files.exists(f"{shared_dir}/missing") is False
    moved = sandbox.files.rename(f"{shared_dir}/a.txt", f"{shared_dir}/b.txt")
    assert (moved.name, moved.path) == ("b.txt", f"{shared_dir}/b.txt")
    assert sandbox.files.read(f"{shared_dir}/b.txt") == "hello"
    if hasattr(sandbox.files, "get_info"):
        info = sandbox.files.get_info(f"{shared_dir}/b.txt")
        assert (info.name, info.type, info.path) == ("b.txt", FileType.FILE, f"{shared_dir}/b.txt")
    if hasattr(listed[0], "size"):
        # A release that knows the later fields gets them: the legacy shapes are for connect-python only.
        entry = next(e for e in sandbox.files.list(shared_dir) if e.name == "b.txt")
        assert (entry.size, entry.owner) == (5, "user")
    sandbox.files.remove(f"{shared_dir}/b.txt")
    assert sandbox.files.exists(f"{shared_dir}/b.txt") is False


@pytest.mark.parametrize("agent", ["connect-python", f"e2b-python-sdk/{SDK}"])
def test_legacy_shapes_only_for_connect_python(daemon, shared_dir: str, agent: str) -> None:
    with open(f"{shared_dir}/f.txt", "w") as f:
        f.write("12345")
    r = httpx.post(
        f"{daemon.envd_url}/filesystem.Filesystem/ListDir",
        json={"path": shared_dir},
        headers={"User-Agent": agent, "Connect-Protocol-Version": "1"},
        auth=("root", ""),
        timeout=10,
    )
    assert r.status_code == 200
    (entry,) = r.json()["entries"]
    if agent == "connect-python":
        assert r.headers.get("x-e2b-legacy-sdk") == "true"
        assert entry == {"name": "f.txt", "type": "FILE_TYPE_FILE", "path": f"{shared_dir}/f.txt"}
    else:
        assert "x-e2b-legacy-sdk" not in r.headers
        assert entry["size"] == "5" and entry["owner"] == "root"



def test_sync_watch_sequence_matches_envd(sandbox: Sandbox, shared_dir: str) -> None:
    handle = sandbox.files.watch_dir(shared_dir)
    # An upload's events are collected right after it is answered, as E2B's test_watch_iterated does.
    sandbox.files.write(f"{shared_dir}/w.txt", "one")
    assert _names(handle.get_new_events()) == [("CREATE", "w.txt"), ("CHMOD", "w.txt"), ("WRITE", "w.txt")]
    sandbox.files.write(f"{shared_dir}/w.txt", "two")
    assert _names(handle.get_new_events()) == [("CHMOD", "w.txt"), ("WRITE", "w.txt")]
    os.chmod(f"{shared_dir}/w.txt", 0o600)
    assert _names(poll_events(handle, 1)) == [("CHMOD", "w.txt")]
    sandbox.files.rename(f"{shared_dir}/w.txt", f"{shared_dir}/v.txt")
    assert _names(poll_events(handle, 2)) == [("RENAME", "w.txt"), ("CREATE", "v.txt")]
    sandbox.files.remove(f"{shared_dir}/v.txt")
    assert _names(poll_events(handle, 1)) == [("REMOVE", "v.txt")]
    handle.stop()


def test_sync_recursive_watch_names_the_nested_file_first(sandbox: Sandbox, shared_dir: str) -> None:
    sandbox.files.make_dir(f"{shared_dir}/nested")
    handle = sandbox.files.watch_dir(shared_dir, recursive=True)
    sandbox.files.write(f"{shared_dir}/nested/deep.txt", "x")
    events = handle.get_new_events()
    assert _names(events) == [("CREATE", "nested/deep.txt"), ("CHMOD", "nested/deep.txt"), ("WRITE", "nested/deep.txt")]
    handle.stop()


async def test_async_watch_streams_the_upload(asandbox: AsyncSandbox, shared_dir: str) -> None:
    events: list[FilesystemEvent] = []
    handle = await asandbox.files.watch_dir(shared_dir, on_event=events.append)
    await asandbox.files.write(f"{shared_dir}/s.txt", "streamed")

    async def three() -> None:
        while len(events) < 3:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(three(), 10)
    await handle.stop()
    assert _names(events) == [("CREATE", "s.txt"), ("CHMOD", "s.txt"), ("WRITE", "s.txt")]


def test_commands_run_and_fail(sandbox: Sandbox, shared_dir: str) -> None:
    result = sandbox.commands.run("echo hi; id -un", cwd=shared_dir, user="user")
    assert (result.exit_code, result.stdout) == (0, "hi\nuser\n")
    with pytest.raises(CommandExitException) as failed:
        sandbox.commands.run("echo oops >&2; exit 3")
    assert (failed.value.exit_code, failed.value.stderr) == (3, "oops\n")
    background = sandbox.commands.run("sleep 30", background=True)
    assert background.pid in [p.pid for p in sandbox.commands.list()]
    assert sandbox.commands.kill(background.pid) is True


def test_pty_runs_an_interactive_shell(sandbox: Sandbox) -> None:
    output = bytearray()
    terminal = sandbox.pty.create(PtySize(rows=24, cols=80))
    sandbox.pty.send_stdin(terminal.pid, b"echo $((6 * 7))\nexit 5\n")
    with pytest.raises(CommandExitException) as ended:
        terminal.wait(on_pty=output.extend)
    assert ended.value.exit_code == 5
    assert b"42" in output
