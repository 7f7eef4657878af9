"""Fixtures for the SDK-compatibility tests, which run under every e2b release of the matrix (envs/e2b-*)
and the main suite's: releases before 2.0 have no `Sandbox.create` and act as `user` by default."""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Iterator

import pytest
from e2b import AsyncSandbox, Sandbox


# Releases before 2.0 read E2B_DEBUG only for the connection, not to skip creating the sandbox through the API.
@pytest.fixture
def sandbox(daemon) -> Sandbox:
    return Sandbox.create(debug=True) if hasattr(Sandbox, "create") else Sandbox(debug=True)


@pytest.fixture
async def asandbox(daemon) -> AsyncSandbox:
    return await AsyncSandbox.create(debug=True)


@pytest.fixture
def shared_dir(user_account) -> Iterator[str]:
    """A fresh directory both `user` (the 1.x default) and root may write, outside root's private tmp."""
    d = f"/tmp/sandboxd-compat-{uuid.uuid4().hex[:12]}"
    os.mkdir(d)
    os.chown(d, user_account.pw_uid, user_account.pw_gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)
