"""The Python SDK's pty API (process.Process Start with a pty, SendInput, Update, SendSignal), sync and async."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from e2b import AsyncSandbox, CommandExitException, NotFoundException, PtySize, Sandbox

pytestmark = pytest.mark.needs("process.Process/Start")


def test_pty_runs_input_resizes_and_exits(sandbox: Sandbox) -> None:
    out = bytearray()
    handle = sandbox.pty.create(PtySize(rows=24, cols=80))
    waiter = ThreadPoolExecutor(1).submit(handle.wait, on_pty=out.extend)

    def until(needle: bytes) -> None:
        deadline = time.monotonic() + 10
        while needle not in out:
            assert time.monotonic() < deadline, f"{needle!r} never arrived: {bytes(out)!r}"
            time.sleep(0.02)

    sandbox.pty.send_stdin(handle.pid, b"stty size; echo $((6*7))\n")
    until(b"\r\n42\r\n")
    assert b"24 80" in out
    sandbox.pty.resize(handle.pid, PtySize(rows=33, cols=101))
    sandbox.pty.send_stdin(handle.pid, b"stty size; echo \"$TERM\"; exit\n")
    result = waiter.result(timeout=10)
    assert result.exit_code == 0
    assert b"33 101" in out
    assert b"xterm-256color" in out


async def _until(output: bytearray, needle: bytes) -> None:
    async def wait() -> None:
        while needle not in output:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), 10)


async def test_pty_round_trip_async(asandbox: AsyncSandbox) -> None:
    out = bytearray()
    handle = await asandbox.pty.create(PtySize(rows=20, cols=60), on_data=out.extend)
    await asandbox.pty.send_stdin(handle.pid, b"echo ready-$((40+2))\n")
    await _until(out, b"ready-42")
    await asandbox.pty.resize(handle.pid, PtySize(rows=50, cols=132))
    await asandbox.pty.send_stdin(handle.pid, b"stty size\n")
    await _until(out, b"50 132")
    await asandbox.pty.send_stdin(handle.pid, b"exit 5\n")
    with pytest.raises(CommandExitException) as raised:
        await handle.wait()
    assert raised.value.exit_code == 5


async def test_killing_a_pty_ends_it_async(asandbox: AsyncSandbox) -> None:
    out = bytearray()
    handle = await asandbox.pty.create(PtySize(rows=24, cols=80), on_data=out.extend)
    assert await asandbox.pty.kill(handle.pid) is True
    with pytest.raises(CommandExitException):
        await handle.wait()
    assert handle.pid not in {p.pid for p in await asandbox.commands.list()}


def test_pty_runs_as_the_requested_user_with_a_terminal(sandbox: Sandbox, user_account) -> None:
    out = bytearray()
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), user="user", cwd="/tmp")
    sandbox.pty.send_stdin(handle.pid, b"whoami; pwd; tty; exit\n")
    handle.wait(on_pty=out.extend)
    text = out.decode(errors="replace")
    assert "user\r\n" in text
    assert "/tmp\r\n" in text
    assert "/dev/pts/" in text


def test_pty_operations_on_an_unknown_pid_raise_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(NotFoundException):
        sandbox.pty.send_stdin(999_999_999, b"x")
    with pytest.raises(NotFoundException):
        sandbox.pty.resize(999_999_999, PtySize(rows=10, cols=10))
    assert sandbox.pty.kill(999_999_999) is False
