"""The Python e2b SDK in production mode: E2B_API_URL finds the sandboxes, E2B_SANDBOX_URL (the client proxy)
reaches them, and every sandbox has its own envd token from the control plane's POST /init."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import httpx
import pytest
from e2b import AsyncSandbox, AuthenticationException, NotFoundException, PtySize, Sandbox, SandboxQuery

API_URL = os.environ.get("E2B_API_URL")
PROXY = os.environ.get("E2B_SANDBOX_URL", "")
RUN = uuid.uuid4().hex[:8]

if not API_URL or os.environ.get("E2B_DEBUG"):
    raise RuntimeError("run through test/image/e2b-python.image.ts: E2B_API_URL must point at the local control plane, without E2B_DEBUG")


def proxied(sandbox_id: str, path: str, headers: dict[str, str] | None = None, method: str = "GET", **kw) -> httpx.Response:
    """One request through the client proxy to the sandbox's envd, with exactly the headers given."""
    route = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": "49983"}
    return httpx.request(method, f"{PROXY}{path}", headers={**route, **(headers or {})}, timeout=10, **kw)


def signature(path: str, operation: str, user: str, token: str, expiration: int) -> str:
    digest = hashlib.sha256(f"{path}:{operation}:{user}:{token}:{expiration}".encode()).digest()
    return "v1_" + base64.b64encode(digest).decode().rstrip("=")


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Sandbox, Sandbox]]:
    with ThreadPoolExecutor(2) as pool:
        fa = pool.submit(Sandbox.create, metadata={"suite": "python", "run": RUN, "name": "a"}, envs={"FROM_CREATE": "py-a"})
        fb = pool.submit(Sandbox.create, "base", metadata={"suite": "python", "run": RUN, "name": "b"}, secure=True, timeout=120)
        a, b = fa.result(), fb.result()
    yield a, b
    for s in (a, b):
        Sandbox.kill(s.sandbox_id)


def test_create_hands_out_a_token_per_sandbox_and_lists_by_metadata(pair) -> None:
    a, b = pair
    assert a.sandbox_id != b.sandbox_id
    assert a._envd_access_token and b._envd_access_token and a._envd_access_token != b._envd_access_token
    found = Sandbox.list(query=SandboxQuery(metadata={"run": RUN, "name": "a"})).next_items()
    assert [s.sandbox_id for s in found] == [a.sandbox_id]
    info = Sandbox.get_info(b.sandbox_id)
    assert info.metadata == {"suite": "python", "run": RUN, "name": "b"}
    assert info.template_id == "base"


def test_commands_run_as_the_init_user_with_the_create_envs(pair) -> None:
    a, _ = pair
    r = a.commands.run('echo "$(id -un) $FROM_CREATE $HOME"')
    assert r.stdout == "user py-a /home/user\n"


def test_files_round_trip_and_stay_in_their_sandbox(pair) -> None:
    a, b = pair
    data = os.urandom(1024 * 1024 + 3)
    a.files.write("/home/user/py-only-in-a.bin", data)
    assert a.files.read("/home/user/py-only-in-a.bin", format="bytes") == data
    assert not b.files.exists("/home/user/py-only-in-a.bin")


def test_pty_with_the_token(pair) -> None:
    a, _ = pair
    out = bytearray()
    handle = a.pty.create(PtySize(rows=24, cols=80))
    a.pty.send_stdin(handle.pid, b'echo "py-pty-$((6*7))"; exit\n')
    result = handle.wait(on_pty=out.extend)
    assert result.exit_code == 0
    assert b"py-pty-42" in out


async def test_watch_with_the_token(pair) -> None:
    a, _ = pair
    sbx = await AsyncSandbox.connect(a.sandbox_id)
    await sbx.files.make_dir("/home/user/py-watched")
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_event(e) -> None:
        if e.name == "new.txt" and not seen.done():
            seen.set_result(e.type.value)

    handle = await sbx.files.watch_dir("/home/user/py-watched", on_event)
    await sbx.files.write("/home/user/py-watched/new.txt", "x")
    assert await asyncio.wait_for(seen, 15) in ("create", "write")
    await handle.stop()


def test_signed_urls_work_without_the_token(pair) -> None:
    _, b = pair
    b.files.write("/home/user/py-signed.txt", "py signed")
    down = httpx.URL(b.download_url("/home/user/py-signed.txt", use_signature_expiration=600))
    assert down.params["signature"].startswith("v1_")
    r = proxied(b.sandbox_id, down.raw_path.decode())
    assert (r.status_code, r.text) == (200, "py signed")

    up = httpx.URL(b.upload_url("/home/user/py-uploaded.txt"))
    r = proxied(b.sandbox_id, up.raw_path.decode(), method="POST", files={"file": ("py-uploaded.txt", b"uploaded from python")})
    assert r.status_code == 200, r.text
    assert b.files.read("/home/user/py-uploaded.txt") == "uploaded from python"


def test_missing_wrong_other_and_expired_tokens_are_refused(pair) -> None:
    a, b = pair
    token_a, token_b = a._envd_access_token, b._envd_access_token
    assert proxied(a.sandbox_id, "/envs").status_code == 401
    assert proxied(a.sandbox_id, "/envs", {"X-Access-Token": "wrong"}).status_code == 401
    assert proxied(a.sandbox_id, "/envs", {"X-Access-Token": token_b}).status_code == 401
    assert proxied(a.sandbox_id, "/envs", {"X-Access-Token": token_a}).json()["FROM_CREATE"] == "py-a"

    path = "/home/user/py-signed.txt"
    past = int(time.time()) - 10
    expired = httpx.QueryParams({"path": path, "signature": signature(path, "read", "", token_b, past), "signature_expiration": past})
    assert proxied(b.sandbox_id, f"/files?{expired}").status_code == 401
    foreign = httpx.QueryParams({"path": path, "signature": signature(path, "read", "", token_a, past + 3600), "signature_expiration": past + 3600})
    assert proxied(b.sandbox_id, f"/files?{foreign}").status_code == 401

    replay = proxied(a.sandbox_id, "/init", {"content-type": "application/json"}, method="POST", json={"accessToken": "attacker"})
    assert replay.status_code == 401


def test_the_proxy_answers_unknown_sandboxes_and_ports_itself(pair) -> None:
    a, _ = pair
    unknown = proxied("nosuchsandbox0000000", "/health")
    assert unknown.status_code == 502
    assert "was not found" in unknown.json()["message"]
    closed = httpx.get(f"{PROXY}/", headers={"E2b-Sandbox-Id": a.sandbox_id, "E2b-Sandbox-Port": "1234"}, timeout=10)
    assert closed.status_code == 502
    assert "nothing listens on port 1234" in closed.json()["message"]
    assert a.is_running()


def test_a_wrong_api_key_is_refused() -> None:
    with pytest.raises(AuthenticationException):
        Sandbox.list(api_key="e2b_wrong").next_items()


def test_pause_then_connect_resumes(pair) -> None:
    _, b = pair
    b.files.write("/home/user/py-before-pause.txt", "kept")
    assert b.pause() is True
    assert Sandbox.get_info(b.sandbox_id).state.value == "paused"
    assert b.is_running() is False
    again = Sandbox.connect(b.sandbox_id)
    assert Sandbox.get_info(b.sandbox_id).state.value == "running"
    assert again.files.read("/home/user/py-before-pause.txt") == "kept"


def test_kill_removes_the_sandbox() -> None:
    s = Sandbox.create(metadata={"run": RUN, "name": "short-lived"})
    assert Sandbox.kill(s.sandbox_id) is True
    with pytest.raises(NotFoundException):
        Sandbox.get_info(s.sandbox_id)
    assert s.is_running() is False
