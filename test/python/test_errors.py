"""The exception types the Python SDK raises for sandboxd's error answers (Connect codes and HTTP statuses)."""

from __future__ import annotations

import os

import httpx
import pytest
from e2b import AsyncSandbox, AuthenticationException, FileNotFoundException, InvalidArgumentException, Sandbox


def test_an_unknown_user_is_an_authentication_error_on_rpcs(sandbox: Sandbox, work_dir: str) -> None:
    with pytest.raises(AuthenticationException, match="nobody-here"):
        sandbox.files.get_info(work_dir, user="nobody-here")


async def test_an_unknown_user_is_an_authentication_error_on_downloads_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "f.txt")
    open(path, "w").close()
    with pytest.raises(AuthenticationException):
        await asandbox.files.read(path, user="nobody-here")


@pytest.mark.needs("process.Process/Start")
def test_an_unknown_user_is_an_authentication_error_on_commands(sandbox: Sandbox) -> None:
    with pytest.raises(AuthenticationException):
        sandbox.commands.run("true", user="nobody-here")


def test_not_found_carries_the_path(sandbox: Sandbox, work_dir: str) -> None:
    missing = os.path.join(work_dir, "nothing-here")
    with pytest.raises(FileNotFoundException, match="nothing-here"):
        sandbox.files.get_info(missing)


async def test_invalid_argument_carries_the_path_async(asandbox: AsyncSandbox, work_dir: str) -> None:
    path = os.path.join(work_dir, "plain-file")
    open(path, "w").close()
    with pytest.raises(InvalidArgumentException, match="plain-file"):
        await asandbox.files.list(path)


def test_the_daemon_keeps_serving_after_errors(sandbox: Sandbox, daemon, work_dir: str) -> None:
    for _ in range(20):
        with pytest.raises(FileNotFoundException):
            sandbox.files.get_info(os.path.join(work_dir, "missing"))
    assert httpx.get(f"{daemon.envd_url}/health").status_code == 204
    assert sandbox.files.exists(work_dir)
