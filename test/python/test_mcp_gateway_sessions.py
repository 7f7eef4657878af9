"""The gateway's MCP endpoint driven by the Python `mcp` 2.x client (the one AgentScope 2.0.11 depends on):
one session per client, tool-list changes pushed to it, progress forwarded during a long-running call."""

from __future__ import annotations

import json
import shutil
from typing import Any, AsyncIterator, Callable

import anyio
import httpx
import pytest

from conftest import SERVER_EVERYTHING, Daemon

import mcp  # noqa: E402

if not hasattr(mcp, "Client"):
    pytest.skip("needs the Python mcp 2.x client (it comes with AgentScope 2.0.11)", allow_module_level=True)
from mcp import Client, types  # noqa: E402

pytestmark = pytest.mark.needs("gateway /mcps")

SCOPE = {"agent_id": "py-agent", "session_id": "py-session"}


def spec(name: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None
    return {"name": name, "is_stateful": True, "mcp_config": {"type": "stdio_mcp", "command": node, "args": [str(SERVER_EVERYTHING), "stdio"]}}


def register(daemon: Daemon, name: str) -> None:
    r = httpx.post(f"{daemon.gateway_url}/mcps", params=SCOPE, json=spec(name), timeout=60)
    assert r.status_code == 200, r.text


def unregister(daemon: Daemon, name: str) -> None:
    httpx.delete(f"{daemon.gateway_url}/mcps/{name}", params=SCOPE, timeout=60)


def log_records(daemon: Daemon, msg: str) -> list[dict[str, Any]]:
    records = []
    for line in list(daemon.logs):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == msg:
            records.append(rec)
    return records


async def wait_for_records(daemon: Daemon, msg: str, where: Callable[[dict[str, Any]], bool], seconds: float = 10) -> list[dict[str, Any]]:
    """The `msg` records that match, once there is one. The daemon writes its log lines asynchronously and
    the suite reads them on a thread, so a line can trail the response that followed it by a few ms."""
    with anyio.fail_after(seconds):
        while not (found := [r for r in log_records(daemon, msg) if where(r)]):
            await anyio.sleep(0.01)
    return found


@pytest.fixture
async def everything(daemon: Daemon) -> AsyncIterator[str]:
    register(daemon, "ev")
    yield f"{daemon.gateway_url}/mcp?agent_id={SCOPE['agent_id']}&session_id={SCOPE['session_id']}"
    unregister(daemon, "ev")


async def test_one_session_serves_many_calls(daemon: Daemon, everything: str) -> None:
    before = {r["mcpSession"] for r in log_records(daemon, "mcp session opened")}
    async with Client(everything) as client:
        for i in range(20):
            result = await client.call_tool("ev__echo", {"message": f"py{i}"})
            assert [c.text for c in result.content if isinstance(c, types.TextContent)] == [f"Echo: py{i}"]
    opened = await wait_for_records(daemon, "mcp session opened", lambda r: r["mcpSession"] not in before)
    assert len(opened) == 1
    session = opened[0]["mcpSession"]
    # Leaving the client ends its session on the gateway (DELETE): the id is served no more, and the log
    # says who ended it.
    r = httpx.post(everything, headers={"mcp-session-id": session, "accept": "application/json, text/event-stream"}, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10)
    assert r.status_code == 404, r.text
    closed = await wait_for_records(daemon, "mcp session closed", lambda r: r["mcpSession"] == session)
    assert [c["why"] for c in closed] == ["ended by the client"]


async def test_a_registration_pushes_tools_list_changed(daemon: Daemon, everything: str) -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    streams = len(log_records(daemon, "mcp session stream opened"))
    async with Client(everything, message_handler=on_message) as client:
        # The client opens its GET stream after initialize; a notification sent before that waits in the
        # session's event store for a resume, which a fresh stream does not ask for.
        with anyio.fail_after(20):
            while len(log_records(daemon, "mcp session stream opened")) == streams:
                await anyio.sleep(0.05)
        await anyio.to_thread.run_sync(register, daemon, "py-added")
        try:
            with anyio.fail_after(20):
                await changed.wait()
            names = [t.name for t in (await client.list_tools()).tools]
            assert "py-added__echo" in names
        finally:
            await anyio.to_thread.run_sync(unregister, daemon, "py-added")


async def test_progress_arrives_during_a_long_running_operation(everything: str) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with Client(everything) as client:
        result = await client.call_tool("ev__trigger-long-running-operation", {"duration": 0.5, "steps": 5}, progress_callback=on_progress)
    assert result.content[0].text.startswith("Long running operation completed")  # type: ignore[union-attr]
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
