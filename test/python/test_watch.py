"""files.watch_dir: the async SDK streams filesystem.Filesystem/WatchDir; the sync SDK polls
CreateWatcher / GetWatcherEvents / RemoveWatcher (RPCs the JS SDK never calls)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from e2b import AsyncSandbox, FileNotFoundException, FilesystemEvent, FilesystemEventType, Sandbox, SandboxException
from watch_polling import poll_events


async def _seen(events: list[FilesystemEvent], name: str, kind: FilesystemEventType) -> None:
    async def poll() -> None:
        while not any(e.name == name and e.type == kind for e in events):
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), 10)
    except TimeoutError:
        raise AssertionError(f"no {kind.value} event for {name!r}; got {[(e.name, e.type.value) for e in events]}")


@pytest.mark.needs("filesystem.Filesystem/WatchDir")
async def test_watch_dir_streams_events_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    events: list[FilesystemEvent] = []
    exits: list = []
    handle = await asandbox.files.watch_dir(work_dir, on_event=events.append, on_exit=exits.append)
    with open(os.path.join(work_dir, "new.txt"), "w") as f:
        f.write("hello")
    await _seen(events, "new.txt", FilesystemEventType.CREATE)
    await _seen(events, "new.txt", FilesystemEventType.WRITE)
    os.chmod(os.path.join(work_dir, "new.txt"), 0o600)
    await _seen(events, "new.txt", FilesystemEventType.CHMOD)
    os.rename(os.path.join(work_dir, "new.txt"), os.path.join(work_dir, "renamed.txt"))
    await _seen(events, "new.txt", FilesystemEventType.RENAME)
    await _seen(events, "renamed.txt", FilesystemEventType.CREATE)
    os.remove(os.path.join(work_dir, "renamed.txt"))
    await _seen(events, "renamed.txt", FilesystemEventType.REMOVE)
    await handle.stop()
    assert exits in ([], [None])


@pytest.mark.needs("filesystem.Filesystem/WatchDir")
async def test_recursive_watch_names_nested_paths_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    os.mkdir(os.path.join(work_dir, "sub"))
    events: list[FilesystemEvent] = []
    handle = await asandbox.files.watch_dir(work_dir, on_event=events.append, recursive=True)
    open(os.path.join(work_dir, "sub", "deep.txt"), "w").close()
    await _seen(events, "sub/deep.txt", FilesystemEventType.CREATE)
    await handle.stop()


@pytest.mark.needs("filesystem.Filesystem/WatchDir")
async def test_watching_a_missing_directory_raises_file_not_found_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    with pytest.raises(FileNotFoundException):
        await asandbox.files.watch_dir(os.path.join(work_dir, "missing"), on_event=lambda e: None)


@pytest.mark.needs(
    "filesystem.Filesystem/CreateWatcher",
    "filesystem.Filesystem/GetWatcherEvents",
    "filesystem.Filesystem/RemoveWatcher",
)
def test_sync_watch_dir_polls_a_watcher(sandbox: Sandbox, work_dir: str) -> None:
    handle = sandbox.files.watch_dir(work_dir)
    with open(os.path.join(work_dir, "polled.txt"), "w") as f:
        f.write("x")
    events: list[FilesystemEvent] = []
    deadline = time.monotonic() + 10
    while not any(e.name == "polled.txt" and e.type == FilesystemEventType.CREATE for e in events):
        assert time.monotonic() < deadline, f"no create event, got {events}"
        events.extend(handle.get_new_events())
        time.sleep(0.05)
    # Events are handed out once.
    os.remove(os.path.join(work_dir, "polled.txt"))
    deadline = time.monotonic() + 10
    later: list[FilesystemEvent] = []
    while not any(e.type == FilesystemEventType.REMOVE for e in later):
        assert time.monotonic() < deadline, f"no remove event, got {later}"
        later.extend(handle.get_new_events())
        time.sleep(0.05)
    assert not any(e.type == FilesystemEventType.CREATE for e in later)
    handle.stop()
    with pytest.raises(SandboxException):
        handle.get_new_events()


@pytest.mark.needs("filesystem.Filesystem/CreateWatcher")
def test_sync_watch_of_a_missing_directory_raises_file_not_found(sandbox: Sandbox, work_dir: str) -> None:
    with pytest.raises(FileNotFoundException):
        sandbox.files.watch_dir(os.path.join(work_dir, "missing"))


async def test_include_entry_attaches_the_entry_info_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    events: list[FilesystemEvent] = []
    handle = await asandbox.files.watch_dir(work_dir, on_event=events.append, include_entry=True)
    with open(os.path.join(work_dir, "described.txt"), "w") as f:
        f.write("12345")
    await _seen(events, "described.txt", FilesystemEventType.WRITE)
    await handle.stop()
    writes = [e for e in events if e.name == "described.txt" and e.type == FilesystemEventType.WRITE]
    assert writes[-1].entry is not None
    assert writes[-1].entry.path == os.path.join(work_dir, "described.txt")
    assert writes[-1].entry.size == 5


def test_sync_watch_reports_writes_made_through_the_sdk(sandbox: Sandbox, work_dir: str) -> None:
    os.mkdir(os.path.join(work_dir, "sub"))
    handle = sandbox.files.watch_dir(work_dir, recursive=True)
    sandbox.files.write(os.path.join(work_dir, "sub", "via-sdk.txt"), "hello")
    events: list[FilesystemEvent] = []
    deadline = time.monotonic() + 10
    while not any(e.name == "sub/via-sdk.txt" and e.type == FilesystemEventType.WRITE for e in events):
        assert time.monotonic() < deadline, f"no write event, got {[(e.name, e.type.value) for e in events]}"
        events.extend(handle.get_new_events())
        time.sleep(0.05)
    handle.stop()


def _kinds(events: list[FilesystemEvent]) -> list[tuple[str, str]]:
    return [(e.type.name, e.name) for e in events]



def test_sync_watch_sees_an_upload_as_envd_reports_it(sandbox: Sandbox, work_dir: str) -> None:
    """E2B's test_watch_iterated: one poll right after files.write finds envd's three events."""
    handle = sandbox.files.watch_dir(work_dir)
    sandbox.files.write(os.path.join(work_dir, "iterated.txt"), "This file will be watched.")
    assert _kinds(handle.get_new_events()) == [("CREATE", "iterated.txt"), ("CHMOD", "iterated.txt"), ("WRITE", "iterated.txt")]
    sandbox.files.write(os.path.join(work_dir, "iterated.txt"), "This file has been modified.")
    assert _kinds(handle.get_new_events()) == [("CHMOD", "iterated.txt"), ("WRITE", "iterated.txt")]
    os.chmod(os.path.join(work_dir, "iterated.txt"), 0o600)
    assert _kinds(poll_events(handle, 1)) == [("CHMOD", "iterated.txt")]
    sandbox.files.rename(os.path.join(work_dir, "iterated.txt"), os.path.join(work_dir, "moved.txt"))
    assert _kinds(poll_events(handle, 2)) == [("RENAME", "iterated.txt"), ("CREATE", "moved.txt")]
    sandbox.files.remove(os.path.join(work_dir, "moved.txt"))
    assert _kinds(poll_events(handle, 1)) == [("REMOVE", "moved.txt")]
    handle.stop()


def test_sync_recursive_watch_sees_a_nested_upload_as_envd_reports_it(sandbox: Sandbox, work_dir: str) -> None:
    """E2B's test_watch_recursive_directory_changes: three events, the first the nested file's create."""
    sandbox.files.make_dir(os.path.join(work_dir, "nested"))
    handle = sandbox.files.watch_dir(work_dir, recursive=True)
    sandbox.files.write(os.path.join(work_dir, "nested", "watched.txt"), "This file will be watched.")
    events = handle.get_new_events()
    assert _kinds(events) == [("CREATE", "nested/watched.txt"), ("CHMOD", "nested/watched.txt"), ("WRITE", "nested/watched.txt")]
    handle.stop()
