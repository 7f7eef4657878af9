"""The Python SDK's commands API against sandboxd's process.Process service, sync and async."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import time

import pytest
from e2b import (
    AsyncSandbox,
    CommandExitException,
    InvalidArgumentException,
    NotFoundException,
    Sandbox,
    TimeoutException,
)

pytestmark = pytest.mark.needs("process.Process/Start")


def _listed_pids(sandbox: Sandbox) -> set[int]:
    return {p.pid for p in sandbox.commands.list()}


def _wait_until_unlisted(sandbox: Sandbox, pid: int) -> None:
    deadline = time.monotonic() + 10
    while pid in _listed_pids(sandbox):
        assert time.monotonic() < deadline, f"pid {pid} still listed"
        time.sleep(0.05)


# ---- run ------------------------------------------------------------------------------------------


def test_run_returns_stdout_stderr_and_exit_code(sandbox: Sandbox) -> None:
    result = sandbox.commands.run("echo out; echo err >&2")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.exit_code == 0
    assert result.error is None


async def test_run_async(asandbox: AsyncSandbox) -> None:
    result = await asandbox.commands.run("printf 'a\\nb\\n' && printf x >&2")
    assert result.stdout == "a\nb\n"
    assert result.stderr == "x"
    assert result.exit_code == 0


def test_a_failing_command_raises_command_exit_error_with_its_output(sandbox: Sandbox) -> None:
    with pytest.raises(CommandExitException) as raised:
        sandbox.commands.run("echo partial; echo oops >&2; exit 3")
    assert raised.value.exit_code == 3
    assert raised.value.stdout == "partial\n"
    assert raised.value.stderr == "oops\n"


async def test_a_failing_command_raises_command_exit_error_async(asandbox: AsyncSandbox) -> None:
    with pytest.raises(CommandExitException) as raised:
        await asandbox.commands.run("exit 7")
    assert raised.value.exit_code == 7


def test_output_callbacks_see_every_chunk(sandbox: Sandbox) -> None:
    out: list[str] = []
    err: list[str] = []
    sandbox.commands.run("for i in 1 2 3; do echo o$i; echo e$i >&2; done", on_stdout=out.append, on_stderr=err.append)
    assert "".join(out) == "o1\no2\no3\n"
    assert "".join(err) == "e1\ne2\ne3\n"


def test_large_output_arrives_complete(sandbox: Sandbox) -> None:
    result = sandbox.commands.run("head -c 3000000 /dev/zero | tr '\\0' 'x'")
    assert len(result.stdout) == 3_000_000
    assert set(result.stdout) == {"x"}


def test_envs_reach_the_command(sandbox: Sandbox) -> None:
    result = sandbox.commands.run('echo "$GREETING $WHO"', envs={"GREETING": "hello", "WHO": "python"})
    assert result.stdout == "hello python\n"


async def test_cwd_sets_the_working_directory_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    result = await asandbox.commands.run("pwd", cwd=work_dir)
    assert result.stdout.strip() == work_dir


def test_a_missing_cwd_is_an_invalid_argument(sandbox: Sandbox, work_dir: str) -> None:
    missing = os.path.join(work_dir, "no-such-dir")
    with pytest.raises(InvalidArgumentException, match="no-such-dir"):
        sandbox.commands.run("pwd", cwd=missing)


def test_user_runs_the_command_as_that_user_in_its_home(sandbox: Sandbox, user_account: pwd.struct_passwd) -> None:
    result = sandbox.commands.run('whoami; echo "$HOME"; pwd', user="user")
    assert result.stdout.split() == ["user", user_account.pw_dir, user_account.pw_dir]
    assert sandbox.commands.run("whoami").stdout.strip() == "root"


# ---- background, list, kill, connect --------------------------------------------------------------------


def test_background_command_is_listed_and_killed(sandbox: Sandbox) -> None:
    handle = sandbox.commands.run("sleep 30", background=True)
    listed = {p.pid: p for p in sandbox.commands.list()}
    assert handle.pid in listed
    assert listed[handle.pid].cmd == "/bin/bash"
    assert "sleep 30" in listed[handle.pid].args
    assert sandbox.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException):
        handle.wait()
    _wait_until_unlisted(sandbox, handle.pid)
    assert sandbox.commands.kill(handle.pid) is False


async def test_background_command_async(asandbox: AsyncSandbox) -> None:
    handle = await asandbox.commands.run("sleep 0.2; echo done", background=True)
    assert handle.pid in {p.pid for p in await asandbox.commands.list()}
    result = await handle.wait()
    assert result.stdout == "done\n"


async def test_killing_through_the_handle_async(asandbox: AsyncSandbox) -> None:
    handle = await asandbox.commands.run("sleep 30", background=True)
    assert await handle.kill() is True
    with pytest.raises(CommandExitException) as raised:
        await handle.wait()
    assert raised.value.exit_code != 0


def test_connect_attaches_to_a_running_command(sandbox: Sandbox) -> None:
    handle = sandbox.commands.run("sleep 0.5; echo later", background=True)
    attached = sandbox.commands.connect(handle.pid)
    assert attached.wait().stdout == "later\n"
    handle.wait()


async def test_connecting_to_an_unknown_pid_raises_not_found_async(asandbox: AsyncSandbox) -> None:
    with pytest.raises(NotFoundException):
        await asandbox.commands.connect(999_999_999)


def test_killing_an_unknown_pid_reports_false(sandbox: Sandbox) -> None:
    assert sandbox.commands.kill(999_999_999) is False


# ---- stdin -----------------------------------------------------------------------------------------------


def test_send_stdin_feeds_the_command(sandbox: Sandbox) -> None:
    handle = sandbox.commands.run('read line; echo "got:$line"', background=True, stdin=True)
    sandbox.commands.send_stdin(handle.pid, "abc\n")
    assert handle.wait().stdout == "got:abc\n"


async def test_close_stdin_ends_the_input_async(asandbox: AsyncSandbox) -> None:
    handle = await asandbox.commands.run("cat", background=True, stdin=True)
    await asandbox.commands.send_stdin(handle.pid, b"first ")
    await handle.send_stdin("second")
    await asandbox.commands.close_stdin(handle.pid)
    assert (await handle.wait()).stdout == "first second"


@pytest.mark.needs("process.Process/StreamInput")
async def test_stream_input_delivers_in_order_async(asandbox: AsyncSandbox) -> None:
    handle = await asandbox.commands.run("cat", background=True, stdin=True)
    async with asandbox.commands.stream_input(handle.pid) as stdin:
        for i in range(20):
            await stdin.send(f"{i},")
    await asandbox.commands.close_stdin(handle.pid)
    result = await handle.wait()
    assert result.stdout == "".join(f"{i}," for i in range(20))


def test_without_stdin_the_command_sees_end_of_input(sandbox: Sandbox) -> None:
    assert sandbox.commands.run("cat; echo eof").stdout == "eof\n"


async def test_send_stdin_to_an_unknown_pid_raises_not_found_async(asandbox: AsyncSandbox) -> None:
    with pytest.raises(NotFoundException):
        await asandbox.commands.send_stdin(999_999_999, "x")


# ---- timeouts --------------------------------------------------------------------------------------------


def test_timeout_ends_the_wait_and_the_process(sandbox: Sandbox, work_dir: str) -> None:
    marker = os.path.join(work_dir, "pid")
    with pytest.raises(TimeoutException):
        sandbox.commands.run(f"echo $$ > {marker}; exec sleep 30", timeout=1)
    pid = int(open(marker).read())
    deadline = time.monotonic() + 10
    while _running(pid):
        assert time.monotonic() < deadline, "the timed-out process is still running"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie; one reaped while its stat is read is gone (ESRCH)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def test_timeout_async(asandbox: AsyncSandbox) -> None:
    with pytest.raises(TimeoutException):
        await asandbox.commands.run("sleep 30", timeout=1)


async def test_concurrent_commands_async(asandbox: AsyncSandbox) -> None:
    results = await asyncio.gather(*(asandbox.commands.run(f"sleep 0.1; echo {i}") for i in range(8)))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(8)]


# ---- keepalive -------------------------------------------------------------------------------------------


class _StreamMessages(logging.Handler):
    """Counts the SDK's per-message debug records ("Response stream: <url>")."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Response stream:"):
            self.count += 1


async def test_keepalive_events_are_paced_by_the_sdk_header_and_ignored_async(
    monkeypatch: pytest.MonkeyPatch, daemon
) -> None:
    # The SDK asks for a keepalive every 50 s; ask for one a second so a short command sees some.
    import e2b.sandbox_async.commands.command as command_module

    monkeypatch.setattr(command_module, "KEEPALIVE_PING_INTERVAL_SEC", 1)
    logger = logging.getLogger("sandboxd-keepalive-test")
    logger.setLevel(logging.DEBUG)
    messages = _StreamMessages()
    logger.addHandler(messages)
    try:
        sandbox = await AsyncSandbox.create(logger=logger)
        result = await sandbox.commands.run("sleep 2.6; echo done")
    finally:
        logger.removeHandler(messages)
    assert result.stdout == "done\n"
    # start + data + end, plus at least two keepalives during the silent 2.6 s
    assert messages.count >= 5, messages.count
