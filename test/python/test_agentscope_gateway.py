"""AgentScope's real gateway path, its classes from PyPI unedited: an E2BBackend bound to a debug-mode
AsyncSandbox drives GatewayClient / GatewayMCPClient, whose every request is a python3 stdlib shim run
through commands.run inside the sandbox (process API), which then calls sandboxd's gateway on loopback."""

from __future__ import annotations

import re
import shutil
from typing import Any

import pytest
from agentscope.mcp import MCPClient, StdioMCPConfig
from agentscope.message import ToolResultState
from agentscope.tool import ToolChunk
from agentscope.workspace import E2BBackend
from agentscope.workspace._gateway_client import GatewayClient, GatewayMCPClient, GatewayMCPTool
from e2b import AsyncSandbox

from conftest import INSTANCE_NONCE, SERVER_EVERYTHING, Daemon

GATEWAY_TOKEN = "py-gateway-token"

pytestmark = pytest.mark.needs("process.Process/Start")


def everything_spec(name: str = "everything") -> dict[str, Any]:
    """The spec AgentScope posts for a stdio MCP: MCPClient.model_dump(mode="json")."""
    node = shutil.which("node")
    assert node is not None
    config = StdioMCPConfig(command=node, args=[str(SERVER_EVERYTHING), "stdio"])
    return MCPClient(name=name, is_stateful=True, mcp_config=config).model_dump(mode="json")


def comparable(chunk: ToolChunk) -> list[dict[str, Any]]:
    """A chunk's blocks without the ids and timestamps each side generates afresh."""
    return [block.model_dump(exclude={"id", "created_at", "finished_at"}) for block in chunk.content]


@pytest.fixture
def backend(asandbox: AsyncSandbox, work_dir: str) -> E2BBackend:
    return E2BBackend(asandbox, workdir=work_dir)


@pytest.fixture
def gateway(backend: E2BBackend, daemon: Daemon) -> GatewayClient:
    return GatewayClient(backend, daemon.gateway_port, timeout=60, instance_nonce=INSTANCE_NONCE)


@pytest.fixture(scope="session")
def token_daemon() -> Any:
    """A second daemon (free ports) whose gateway wants a bearer token and has no instance nonce."""
    from conftest import _free_port, start_daemon, stop_daemon

    d = start_daemon(_free_port(), _free_port(), ["--gateway-token", GATEWAY_TOKEN])
    yield d
    stop_daemon(d)


# ---- health ----------------------------------------------------------------------------------------


async def test_health_with_the_instance_nonce(gateway: GatewayClient) -> None:
    assert await gateway.health() is True


async def test_health_without_expecting_a_nonce(backend: E2BBackend, daemon: Daemon) -> None:
    assert await GatewayClient(backend, daemon.gateway_port, timeout=60).health() is True


async def test_health_refuses_a_different_nonce(backend: E2BBackend, daemon: Daemon) -> None:
    client = GatewayClient(backend, daemon.gateway_port, timeout=60, instance_nonce="someone-else")
    assert await client.health() is False


async def test_health_of_a_gateway_without_a_nonce(backend: E2BBackend, token_daemon: Daemon) -> None:
    assert await GatewayClient(backend, token_daemon.gateway_port, timeout=60).health() is True
    expecting = GatewayClient(backend, token_daemon.gateway_port, timeout=60, instance_nonce=INSTANCE_NONCE)
    assert await expecting.health() is False


async def test_health_of_a_closed_port_is_false(backend: E2BBackend) -> None:
    from conftest import _free_port

    assert await GatewayClient(backend, _free_port(), timeout=60).health() is False


# ---- MCP registration and tools ------------------------------------------------------------------------


@pytest.mark.needs("gateway /mcps", "POST /files")
async def test_server_everything_through_the_gateway(gateway: GatewayClient) -> None:
    client = gateway.make_client(everything_spec())
    assert isinstance(client, GatewayMCPClient)
    await client.connect()
    try:
        names = {t.name for t in await client.list_raw_tools()}
        assert {"echo", "get-tiny-image"} <= names

        echo = await client.get_tool("echo")
        assert isinstance(echo, GatewayMCPTool)
        assert echo.name == "mcp__everything__echo"
        chunk = await echo(message="hello from python")
        assert chunk.state == ToolResultState.RUNNING
        assert [b.type for b in chunk.content] == ["text"]
        assert "hello from python" in chunk.content[0].text

        image = await (await client.get_tool("get-tiny-image"))()
        data = [b for b in image.content if b.type == "data"]
        assert len(data) == 1
        assert data[0].source.type == "base64"
        assert data[0].source.media_type == "image/png"
        assert len(data[0].source.data) > 100

        listed = await gateway.list_mcps()
        assert [m.name for m in listed] == ["everything"]
        assert listed[0].is_connected
        assert listed[0].model_dump(mode="json") == everything_spec()
    finally:
        await client.close(ignore_errors=False)
    assert await gateway.list_mcps() == []


# Every kind of content server-everything returns: text, images (plain and annotated), embedded text and
# blob resources, resource links, structured content, and a gzip file as an embedded blob or a link.
EVERY_CONTENT_TYPE: list[tuple[str, dict[str, Any]]] = [
    ("echo", {"message": "same either way"}),
    ("get-sum", {"a": 2, "b": 3}),
    ("get-tiny-image", {}),
    ("get-annotated-message", {"messageType": "error", "includeImage": True}),
    ("get-resource-reference", {"resourceType": "Text", "resourceId": 2}),
    ("get-resource-reference", {"resourceType": "Blob", "resourceId": 1}),
    ("get-resource-links", {"count": 4}),
    ("get-structured-content", {"location": "Chicago"}),
    ("gzip-file-as-resource", {"name": "a.gz", "data": "data:text/plain;base64,aGVsbG8=", "outputType": "resource"}),
    ("gzip-file-as-resource", {"name": "b.gz", "data": "data:text/plain;base64,aGVsbG8=", "outputType": "resourceLink"}),
]


def without_clock(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """server-everything stamps text resources with the time they were made; each side makes its own."""
    return [
        {**b, "text": re.sub(r"created at [0-9:]+ [AP]M", "created at <time>", b["text"])} if b.get("type") == "text" else b
        for b in blocks
    ]


@pytest.mark.needs("gateway /mcps", "POST /files")
@pytest.mark.timeout(240)  # ten calls, each a shim run through the commands API
async def test_gateway_chunks_match_agentscope_s_own_mcp_client(gateway: GatewayClient) -> None:
    """Whichever AgentScope release the host runs, the gateway's chunk is the one its own MCPClient builds."""
    local = MCPClient.model_validate(everything_spec("local"))
    await local.connect()
    remote = gateway.make_client(everything_spec("remote"))
    await remote.connect()
    try:
        for tool, args in EVERY_CONTENT_TYPE:
            want = await (await local.get_tool(tool)).call(**args)
            got = await (await remote.get_tool(tool))(**args)
            assert without_clock(comparable(got)) == without_clock(comparable(want)), (tool, args)
            assert got.state == want.state
    finally:
        await remote.close()
        await local.close()


@pytest.mark.needs("gateway /mcps", "POST /files")
async def test_registrations_are_per_agent_and_session(gateway: GatewayClient) -> None:
    client = gateway.make_client(everything_spec(), agent_id="agent-1", session_id="s/1 ?&")
    await client.connect()
    try:
        assert [m.name for m in await gateway.list_mcps(agent_id="agent-1", session_id="s/1 ?&")] == ["everything"]
        assert await gateway.list_mcps() == []
        assert await gateway.list_mcps(agent_id="agent-1") == []
        chunk = await (await client.get_tool("echo"))(message="scoped")
        assert "scoped" in chunk.content[0].text
    finally:
        await client.close(ignore_errors=False)


@pytest.mark.needs("gateway /mcps", "POST /files")
async def test_registering_a_name_twice_is_refused(gateway: GatewayClient) -> None:
    first = gateway.make_client(everything_spec("twice"))
    await first.connect()
    try:
        with pytest.raises(RuntimeError, match="409"):
            await gateway.make_client(everything_spec("twice")).connect()
    finally:
        await first.close()


@pytest.mark.needs("gateway /mcps", "POST /files")
async def test_an_unknown_tool_comes_back_as_an_error_chunk(gateway: GatewayClient) -> None:
    client = gateway.make_client(everything_spec("errors"))
    await client.connect()
    try:
        echo = await client.get_tool("echo")
        echo._tool = echo._tool.model_copy(update={"name": "no-such-tool"})
        chunk = await echo(message="x")
        assert chunk.state == ToolResultState.ERROR
        assert "HTTP 404" in chunk.content[0].text
    finally:
        await client.close()


@pytest.mark.needs("gateway /mcps", "POST /files")
async def test_a_command_that_cannot_start_fails_registration(gateway: GatewayClient) -> None:
    spec = MCPClient(
        name="broken", is_stateful=True, mcp_config=StdioMCPConfig(command="/nonexistent/mcp-server")
    ).model_dump(mode="json")
    with pytest.raises(RuntimeError, match="HTTP 500"):
        await gateway.make_client(spec).connect()
    assert await gateway.list_mcps() == []


@pytest.mark.needs("gateway /mcps")
async def test_the_gateway_token_is_required_and_accepted(backend: E2BBackend, token_daemon: Daemon) -> None:
    anonymous = GatewayClient(backend, token_daemon.gateway_port, timeout=60)
    with pytest.raises(RuntimeError, match="401"):
        await anonymous.list_mcps()
    authorised = GatewayClient(backend, token_daemon.gateway_port, timeout=60, auth_token=GATEWAY_TOKEN)
    assert await authorised.list_mcps() == []
