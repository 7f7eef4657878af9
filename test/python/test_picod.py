"""AgentCube's own Python SDK (agentcube-sdk from PyPI) against sandboxd's PicoD face.

The SDK is used unchanged. Its data-plane client never signs anything: in a cluster it talks to
AgentCube's router, which looks the session up, signs a fresh RS256 JWT for PicoD and forwards the
request to the pod's port 8080. Neither the router nor the workload manager can run here (they need
Kubernetes), so the test runs a small stand-in that does exactly their part of the exchange: it hands out
session ids (POST /v1/code-interpreter), and forwards /v1/namespaces/{ns}/code-interpreters/{name}/
invocations/{path} to the daemon with the router's token (iat, exp 5 min, iss agentcube-router, session_id),
signed by a key whose public half the daemon got as PICOD_AUTH_PUBLIC_KEY.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agentcube import CodeInterpreterClient
from agentcube.clients import CodeInterpreterDataPlaneClient
from agentcube.exceptions import CommandExecutionError

from conftest import Daemon, _free_port, start_daemon, stop_daemon

INVOKE = re.compile(r"^/v1/namespaces/(?P<ns>[^/]+)/code-interpreters/(?P<name>[^/]+)/invocations/(?P<path>.*)$")


class RouterStandIn:
    """AgentCube's workload manager (session ids) and router (JWT signing + forwarding), nothing more."""

    def __init__(self, picod_port: int) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        self.picod_port = picod_port
        self.sessions: set[str] = set()
        self.forwarded: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _dispatch(self) -> None:
                url = urlsplit(self.path)
                body = self._body()
                if self.command == "POST" and url.path == "/v1/code-interpreter":
                    session = str(uuid.uuid4())
                    stand_in.sessions.add(session)
                    return self._answer(200, json.dumps({"sessionId": session}).encode(), {"Content-Type": "application/json"})
                if self.command == "DELETE" and url.path.startswith("/v1/code-interpreter/sessions/"):
                    stand_in.sessions.discard(url.path.rsplit("/", 1)[1])
                    return self._answer(200, b"{}", {"Content-Type": "application/json"})
                m = INVOKE.match(url.path)
                session = self.headers.get("x-agentcube-session-id", "")
                if not m or session not in stand_in.sessions:
                    return self._answer(404, b'{"error":"session not found"}', {"Content-Type": "application/json"})
                target = "/" + m["path"] + (f"?{url.query}" if url.query else "")
                stand_in.forwarded.append(f"{self.command} {target}")
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "range")}
                headers["Authorization"] = f"Bearer {stand_in.token(session)}"
                conn = http.client.HTTPConnection("127.0.0.1", stand_in.picod_port, timeout=120)
                try:
                    conn.request(self.command, target, body=body or None, headers=headers)
                    res = conn.getresponse()
                    data = res.read()
                    keep = {k: v for k, v in res.getheaders() if k.lower() in ("content-type", "content-disposition")}
                    self._answer(res.status, data, keep)
                finally:
                    conn.close()

            do_GET = do_POST = do_DELETE = _dispatch

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, session: str) -> str:
        """A token as the router's GenerateToken makes it: RS256, iat now, exp in 5 minutes, iss, session_id."""
        now = datetime.now(timezone.utc)
        claims = {"iat": now, "exp": now + timedelta(minutes=5), "iss": "agentcube-router", "session_id": session}
        return jwt.encode(claims, self.key, algorithm="RS256")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Picod:
    def __init__(self, daemon: Daemon, url: str, workspace: Path, router: RouterStandIn) -> None:
        self.daemon, self.url, self.workspace, self.router = daemon, url, workspace, router


@pytest.fixture(scope="module")
def picod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Picod]:
    picod_port = _free_port()
    router = RouterStandIn(picod_port)
    workspace = tmp_path_factory.mktemp("picod-workspace")
    os.environ["PICOD_AUTH_PUBLIC_KEY"] = router.public_pem
    try:
        daemon = start_daemon(_free_port(), 0, ["--picod-port", str(picod_port), "--workspace", str(workspace)])
    finally:
        del os.environ["PICOD_AUTH_PUBLIC_KEY"]
    url = f"http://127.0.0.1:{picod_port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            stop_daemon(daemon)
            raise RuntimeError(f"PicoD face did not answer /health:\n{daemon.log_tail()}")
        time.sleep(0.05)
    yield Picod(daemon, url, workspace, router)
    router.close()
    stop_daemon(daemon)
    assert daemon.proc.returncode == 0, daemon.log_tail()


@pytest.fixture
def client(picod: Picod) -> Iterator[CodeInterpreterDataPlaneClient]:
    """The SDK's data-plane client, pointed at the router (stand-in) as in a cluster."""
    session = str(uuid.uuid4())
    picod.router.sessions.add(session)
    c = CodeInterpreterDataPlaneClient(session_id=session, router_url=picod.router.url, namespace="default", cr_name="sandboxd")
    yield c
    c.close()


def test_the_router_forwards_the_sdk_requests_with_a_token_picod_accepts(client: CodeInterpreterDataPlaneClient, picod: Picod) -> None:
    assert client.execute_command("echo hello") == "hello\n"
    assert picod.router.forwarded[-1] == "POST /api/execute"


def test_a_request_without_the_router_token_is_refused(picod: Picod) -> None:
    direct = CodeInterpreterDataPlaneClient(session_id="s", base_url=f"{picod.url}/")
    with pytest.raises(requests.HTTPError) as err:
        direct.execute_command("echo hello")
    assert err.value.response.status_code == 401
    assert err.value.response.json()["error"] == "Missing Authorization header"
    direct.close()


def test_execute_command_splits_like_a_shell_but_runs_no_shell(client: CodeInterpreterDataPlaneClient) -> None:
    assert client.execute_command("echo 'two words' $HOME") == "two words $HOME\n"
    assert client.execute_command(["sh", "-c", "echo $((6 * 7))"]) == "42\n"


def test_a_failing_command_raises_with_its_exit_code_and_stderr(client: CodeInterpreterDataPlaneClient) -> None:
    with pytest.raises(CommandExecutionError) as err:
        client.execute_command(["sh", "-c", "echo broken >&2; exit 3"])
    assert err.value.exit_code == 3
    assert err.value.stderr == "broken\n"


def test_a_command_past_its_timeout_ends_with_124(client: CodeInterpreterDataPlaneClient) -> None:
    with pytest.raises(CommandExecutionError) as err:
        client.execute_command("sleep 30", timeout=0.5)
    assert err.value.exit_code == 124
    assert "timed out" in err.value.stderr.lower()


def test_run_code_writes_a_script_into_the_workspace_and_runs_it(client: CodeInterpreterDataPlaneClient, picod: Picod) -> None:
    assert client.run_code("python", "import sys\nprint(sys.version_info.major)") == "3\n"
    assert client.run_code("bash", "echo $((2 + 3))") == "5\n"
    assert any(p.name.startswith("script_") and p.suffix == ".py" for p in picod.workspace.iterdir())


def test_files_written_uploaded_listed_and_downloaded(client: CodeInterpreterDataPlaneClient, picod: Picod, tmp_path: Path) -> None:
    client.write_file("hello from the sdk", "notes/hello.txt")
    assert (picod.workspace / "notes" / "hello.txt").read_text() == "hello from the sdk"
    assert client.execute_command("cat notes/hello.txt") == "hello from the sdk"

    blob = os.urandom(2 * 1024 * 1024 + 3)
    local = tmp_path / "blob.bin"
    local.write_bytes(blob)
    client.upload_file(str(local), "/data/blob.bin")
    assert (picod.workspace / "data" / "blob.bin").read_bytes() == blob

    back = tmp_path / "back" / "blob.bin"
    client.download_file("/data/blob.bin", str(back))
    assert back.read_bytes() == blob

    files = {f["name"]: f for f in client.list_files("data")}
    assert files["blob.bin"]["size"] == len(blob)
    assert files["blob.bin"]["is_dir"] is False
    assert files["blob.bin"]["mode"] == "-rw-r--r--"
    assert "notes" in {f["name"] for f in client.list_files(".")}


def test_missing_paths_and_escapes_answer_picod_statuses(client: CodeInterpreterDataPlaneClient, tmp_path: Path) -> None:
    with pytest.raises(requests.HTTPError) as missing:
        client.list_files("no/such/dir")
    assert missing.value.response.status_code == 404
    with pytest.raises(requests.HTTPError) as gone:
        client.download_file("no-such-file.txt", str(tmp_path / "x"))
    assert gone.value.response.status_code == 404
    with pytest.raises(requests.HTTPError) as escape:
        client.write_file("x", "../outside.txt")
    assert escape.value.response.status_code == 400


def test_the_high_level_client_runs_code_in_a_session(picod: Picod) -> None:
    with CodeInterpreterClient(name="sandboxd", workload_manager_url=picod.router.url, router_url=picod.router.url, auth_token="unused") as ci:
        assert ci.session_id in picod.router.sessions
        ci.write_file("21", "value.txt")
        assert ci.run_code("python", "print(int(open('value.txt').read()) * 2)") == "42\n"
    assert ci.session_id is None
