"""AgentScope's E2BWorkspace end to end, in production mode: the e2b SDK finds the local E2B control plane
through E2B_API_URL and reaches the sandbox through the client proxy at E2B_SANDBOX_URL; each sandbox is the
image (Dockerfile.envd's runtime stage) with an access token from /init. The sandbox has no route beyond
the test's network, so AgentScope's network bootstrap (apt, uv, pip) would fail: initialize() passing means
the image's fast path held.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from typing import AsyncIterator

import agentscope
import pytest
import pytest_asyncio
from agentscope.mcp import MCPClient, StdioMCPConfig
from agentscope.message import DataBlock, TextBlock, ToolResultState
from agentscope.workspace import E2BWorkspace
from e2b import AsyncSandbox, AuthenticationException

from conftest import report

for needed in ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY", "SANDBOXD_TEST_NODE", "SANDBOXD_TEST_SERVER_EVERYTHING"):
    if not os.environ.get(needed) or os.environ.get("E2B_DEBUG"):
        raise RuntimeError(f"run through test/image/agentscope.image.ts: {needed} must be set, E2B_DEBUG not")

# Inside every sandbox: the Node and server-everything the test bound there (the image has neither).
NODE = os.environ["SANDBOXD_TEST_NODE"]
SERVER_EVERYTHING = os.environ["SANDBOXD_TEST_SERVER_EVERYTHING"]
TEMPLATE = "base"

pytestmark = pytest.mark.asyncio(loop_scope="module")

GATEWAY_HOME = "/home/user/.agentscope"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def everything(name: str = "everything") -> MCPClient:
    """server-everything over stdio, run by the Node the test put into the sandbox (the image has none)."""
    return MCPClient(name=name, is_stateful=True, mcp_config=StdioMCPConfig(command=NODE, args=[SERVER_EVERYTHING, "stdio"]))


async def sh(ws: E2BWorkspace, line: str) -> str:
    r = await ws.get_backend().exec_shell(["sh", "-c", line], cwd="/")
    assert r.exit_code == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def workspace() -> AsyncIterator[E2BWorkspace]:
    ws = E2BWorkspace(workspace_id=f"flow-{uuid.uuid4().hex[:8]}", template=TEMPLATE)
    started = time.perf_counter()
    await ws.initialize()
    report(f"E2BWorkspace.initialize() with agentscope {agentscope.__version__}: {time.perf_counter() - started:.2f} s")
    yield ws
    await ws.close()


async def test_initialize_finds_the_gateway_home_ready_and_starts_no_second_gateway(workspace: E2BWorkspace) -> None:
    assert workspace.is_alive and workspace.sandbox_id
    # The sandbox reaches nothing beyond the test's network: a bootstrap (apt, uv, pip) could not have run.
    routes = (await sh(workspace, "cat /proc/net/route")).splitlines()[1:]
    assert not [r for r in routes if r.split()[1] == "00000000"], routes
    # AgentScope launched the image's stand-in, which found sandboxd's gateway on 5600 and exited.
    log = await sh(workspace, f"cat {GATEWAY_HOME}/gateway.log")
    assert "sandboxd serves the MCP gateway on port 5600" in log and "nothing started" in log
    running = await sh(workspace, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
    assert "_mcp_gateway_app.py" not in running
    # Nothing was installed: no uv, and the gateway venv is still the image's python3.
    assert (await sh(workspace, "command -v uv || echo none")).strip() == "none"
    assert (await sh(workspace, f"readlink {GATEWAY_HOME}/.venv/bin/python")).strip() == "/usr/bin/python3"


async def test_a_stdio_mcp_lists_its_tools_and_answers_echo_and_a_tiny_image(workspace: E2BWorkspace) -> None:
    client = await workspace.add_mcp(everything())
    try:
        names = [t.name for t in await client.list_raw_tools()]
        assert {"echo", "get-tiny-image"} <= set(names)
        assert [m.name for m in await workspace.list_mcps()] == ["everything"]

        echo = await (await client.get_tool("echo"))(message="hello from AgentScope")
        assert echo.state == ToolResultState.RUNNING
        assert [b.text for b in echo.content if isinstance(b, TextBlock)] == ["Echo: hello from AgentScope"]

        image = await (await client.get_tool("get-tiny-image"))()
        data = [b for b in image.content if isinstance(b, DataBlock)]
        assert len(data) == 1 and data[0].source.media_type == "image/png"
        assert base64.b64decode(data[0].source.data).startswith(PNG_MAGIC)
    finally:
        await workspace.remove_mcp("everything")
    assert await workspace.list_mcps() == []
    assert workspace._gateway is not None
    assert await workspace._gateway.list_mcps() == []


async def test_an_mcp_that_cannot_start_is_refused_and_the_gateway_keeps_serving(workspace: E2BWorkspace) -> None:
    broken = MCPClient(name="broken", is_stateful=True, mcp_config=StdioMCPConfig(command="/nonexistent/mcp-server"))
    with pytest.raises(RuntimeError, match="gateway failed to add MCP 'broken'"):
        await workspace.add_mcp(broken)
    client = await workspace.add_mcp(everything("again"))
    chunk = await (await client.get_tool("echo"))(message="still here")
    assert [b.text for b in chunk.content if isinstance(b, TextBlock)] == ["Echo: still here"]
    await workspace.remove_mcp("again")


async def test_the_workspace_tools_run_the_image_s_glob_helper_and_ripgrep(workspace: E2BWorkspace) -> None:
    tools = {t.name: t for t in await workspace.list_tools()}
    root = f"{workspace.workdir}/tools-check"
    await workspace.get_backend().write_file(f"{root}/src/deep/found.txt", b"a needle in the sandbox\n")
    await workspace.get_backend().write_file(f"{root}/other.md", b"no match here\n")

    globbed = await tools["Glob"](pattern="**/*.txt", path=root)
    assert globbed.state != ToolResultState.ERROR, globbed.content
    assert f"{root}/src/deep/found.txt" in "".join(b.text for b in globbed.content if isinstance(b, TextBlock))

    grepped = await tools["Grep"](pattern="needle", path=root)
    text = "".join(b.text for b in grepped.content if isinstance(b, TextBlock))
    assert grepped.state != ToolResultState.ERROR, text
    assert "found.txt" in text and "other.md" not in text


async def test_close_pauses_and_a_new_workspace_with_the_same_id_reattaches(workspace: E2BWorkspace) -> None:
    sandbox_id = workspace.sandbox_id
    await workspace.get_backend().write_file(f"{workspace.workdir}/kept.txt", b"written before the pause\n")
    await workspace.close()
    assert not workspace.is_alive
    info = await AsyncSandbox.get_info(sandbox_id)
    assert info.state.value == "paused"

    again = E2BWorkspace(workspace_id=workspace.workspace_id, template=TEMPLATE)
    started = time.perf_counter()
    await again.initialize()
    report(f"E2BWorkspace.initialize() reattaching to its paused sandbox, agentscope {agentscope.__version__}: {time.perf_counter() - started:.2f} s")
    try:
        assert again.sandbox_id == sandbox_id
        assert (await sh(again, f"cat {again.workdir}/kept.txt")) == "written before the pause\n"
        client = await again.add_mcp(everything())
        chunk = await (await client.get_tool("echo"))(message="after resume")
        assert [b.text for b in chunk.content if isinstance(b, TextBlock)] == ["Echo: after resume"]
        await again.remove_mcp("everything")
    finally:
        await again.close()
    # The fixture closes `workspace` once more: closing twice is harmless.


async def test_a_bare_sandbox_start_for_comparison() -> None:
    """What initialize() costs beyond the sandbox itself: the same create, through the same control plane."""
    started = time.perf_counter()
    sandbox = await AsyncSandbox.create(template=TEMPLATE)
    elapsed = time.perf_counter() - started
    try:
        assert await sandbox.is_running()
        report(f"AsyncSandbox.create() alone, for comparison: {elapsed:.2f} s")
    finally:
        await sandbox.kill()


async def test_a_wrong_api_key_is_refused_by_the_control_plane() -> None:
    ws = E2BWorkspace(workspace_id=f"refused-{uuid.uuid4().hex[:8]}", template=TEMPLATE, api_key="e2b_" + "0" * 40)
    with pytest.raises(AuthenticationException, match="Invalid API key"):
        await ws.initialize()
    assert not ws.is_alive
