"""Shared fixtures: the built daemon on envd's port, debug-mode SDK sandboxes, and feature probes.

The suite builds nothing: `npm test` builds dist/ first. The daemon listens on 49983 because the e2b SDK's
debug mode always dials http://localhost:49983; run the suite inside a private network namespace when
another daemon may hold that port (`unshare -n sh -c 'ip link set lo up && npm run test:python'`).
"""

from __future__ import annotations

import collections
import json
import os
import pwd
import secrets
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import httpx
import pytest

# Debug mode skips E2B's cloud API and dials localhost:49983; set before any SDK object reads it.
os.environ["E2B_DEBUG"] = "true"
for leftover in ("E2B_SANDBOX_URL", "E2B_API_KEY", "E2B_ACCESS_TOKEN", "E2B_HTTP_VERSION"):
    os.environ.pop(leftover, None)

from e2b import AsyncSandbox, Sandbox  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# SANDBOXD_ENTRY lets a developer point the suite at another build (say, of a clean checkout).
ENTRY = Path(os.environ.get("SANDBOXD_ENTRY") or ROOT / "dist" / "main.js")
ENVD_PORT = 49983
INSTANCE_NONCE = "nonce-" + secrets.token_hex(8)
SERVER_EVERYTHING = ROOT / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"

# Features other work has not landed yet. A test naming one of these with @pytest.mark.needs(...) is
# skipped (reason printed) while the daemon still lacks it; a feature not listed here is expected to
# work, so a regression fails instead of skipping. Remove an entry once the feature lands.
PENDING: set[str] = set()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(*features): skip while the daemon lacks a PENDING feature")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_taken(port: int) -> bool:
    """Whether something listens on the port. SO_REUSEADDR as the daemon (Node) binds: connections left
    in TIME_WAIT by an earlier suite (vitest's SDK tests use this port too) do not count."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _wait_for_free_port(port: int, seconds: float = 10) -> bool:
    """A daemon from an earlier suite may still be shutting down; give it a moment."""
    deadline = time.monotonic() + seconds
    while _port_taken(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@dataclass
class Daemon:
    proc: subprocess.Popen
    envd_url: str
    gateway_port: int
    logs: collections.deque

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(list(self.logs)[-n:])


def start_daemon(envd_port: int, gateway_port: int, extra: list[str]) -> Daemon:
    if not ENTRY.exists():
        raise RuntimeError(f"{ENTRY} is missing: run `npm run build` first")
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH")
    if not _wait_for_free_port(envd_port):
        raise RuntimeError(
            f"port {envd_port} is taken: another daemon is running; run the suite in a private network "
            "namespace (unshare -n) or stop it"
        )
    env = {k: v for k, v in os.environ.items() if k not in ("SANDBOXD_ACCESS_TOKEN", "SANDBOXD_GATEWAY_TOKEN")}
    cmd = [node, str(ENTRY), "--port", str(envd_port), "--gateway-port", str(gateway_port), "--log-level", "debug"]
    # No test moves processes in the machine's own cgroups (test/integration/hardening-cgroups.test.ts uses a scratch one).
    cmd.append("--no-cgroups")
    proc = subprocess.Popen(cmd + extra, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    logs: collections.deque = collections.deque(maxlen=2000)

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            logs.append(line.decode(errors="replace").rstrip())

    threading.Thread(target=drain, daemon=True).start()
    daemon = Daemon(proc, f"http://127.0.0.1:{envd_port}", gateway_port, logs)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode} before serving:\n{daemon.log_tail()}")
        try:
            envd = httpx.get(f"{daemon.envd_url}/health", timeout=1)
            gateway = httpx.get(f"{daemon.gateway_url}/health", timeout=1) if gateway_port else None
            if envd.status_code == 204 and (gateway is None or gateway.status_code == 200):
                return daemon
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_daemon(daemon)
            raise RuntimeError(f"daemon did not answer /health within 20s:\n{daemon.log_tail()}")
        time.sleep(0.05)


def stop_daemon(daemon: Daemon) -> None:
    if daemon.proc.poll() is None:
        daemon.proc.terminate()
        try:
            daemon.proc.wait(10)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            daemon.proc.wait()


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    """The built daemon on 49983 with its gateway on a free port, answering /health with a nonce."""
    d = start_daemon(ENVD_PORT, _free_port(), ["--instance-nonce", INSTANCE_NONCE])
    yield d
    stop_daemon(d)
    assert d.proc.returncode == 0, f"daemon did not shut down cleanly ({d.proc.returncode}):\n{d.log_tail()}"


@pytest.fixture
def sandbox(daemon: Daemon) -> Sandbox:
    return Sandbox.create()


@pytest.fixture
async def asandbox(daemon: Daemon) -> AsyncSandbox:
    return await AsyncSandbox.create()


@pytest.fixture
def work_dir(tmp_path: Path) -> str:
    """A fresh directory on this machine (the daemon runs here as root), as a string path."""
    return str(tmp_path)


@pytest.fixture(scope="session")
def user_account() -> pwd.struct_passwd:
    """The unprivileged user `user` (E2B templates have it), created when missing."""
    try:
        return pwd.getpwnam("user")
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", "user"], check=True)
        return pwd.getpwnam("user")


# ---- feature probes -------------------------------------------------------------------------------

_NO_PID = 4_000_000_000
_UNARY_PROBES: dict[str, dict] = {
    "filesystem.Filesystem/Stat": {"path": "/nonexistent-sandboxd-probe"},
    "filesystem.Filesystem/ListDir": {"path": "/nonexistent-sandboxd-probe"},
    "filesystem.Filesystem/Move": {"source": "/nonexistent-sandboxd-probe", "destination": "/nonexistent-probe2"},
    "filesystem.Filesystem/Remove": {"path": "/nonexistent-sandboxd-probe"},
    "filesystem.Filesystem/CreateWatcher": {"path": "/nonexistent-sandboxd-probe"},
    "filesystem.Filesystem/GetWatcherEvents": {"watcherId": "sandboxd-probe"},
    "filesystem.Filesystem/RemoveWatcher": {"watcherId": "sandboxd-probe"},
    "process.Process/List": {},
    "process.Process/SendInput": {"process": {"pid": _NO_PID}, "input": {"stdin": ""}},
    "process.Process/SendSignal": {"process": {"pid": _NO_PID}, "signal": "SIGNAL_SIGTERM"},
    "process.Process/CloseStdin": {"process": {"pid": _NO_PID}},
    "process.Process/Update": {"process": {"pid": _NO_PID}},
}
_STREAM_PROBES: dict[str, dict] = {
    "filesystem.Filesystem/WatchDir": {"path": "/nonexistent-sandboxd-probe"},
    "process.Process/Start": {"process": {"cmd": "true"}},
    "process.Process/Connect": {"process": {"pid": _NO_PID}},
    "process.Process/StreamInput": {"start": {"process": {"pid": _NO_PID}}},
}


def _envelopes(body: bytes) -> Iterator[tuple[int, bytes]]:
    while len(body) >= 5:
        flags, size = struct.unpack(">BI", body[:5])
        yield flags, body[5 : 5 + size]
        body = body[5 + size :]


def _rpc_code(base: str, rpc: str) -> Optional[str]:
    """The Connect error code a harmless call of `rpc` answers, or None when it succeeds."""
    url = f"{base}/{rpc}"
    if rpc in _UNARY_PROBES:
        r = httpx.post(url, json=_UNARY_PROBES[rpc], headers={"Connect-Protocol-Version": "1"}, timeout=10)
        return None if r.status_code == 200 else r.json().get("code")
    msg = json.dumps(_STREAM_PROBES[rpc]).encode()
    r = httpx.post(
        url,
        content=struct.pack(">BI", 0, len(msg)) + msg,
        headers={"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1", "Connect-Timeout-Ms": "5000"},
        timeout=10,
    )
    if r.status_code != 200:
        return r.json().get("code")
    for flags, data in _envelopes(r.content):
        if flags & 0x02:
            err = json.loads(data or b"{}").get("error")
            return err.get("code") if err else None
    return None


def _missing(feature: str, daemon: Daemon) -> Optional[str]:
    """Why `feature` is unusable on the running daemon, or None when it answers."""
    if feature.startswith(("filesystem.", "process.")):
        if _rpc_code(daemon.envd_url, feature) == "unimplemented":
            return f"sandboxd does not implement {feature} yet (it answers unimplemented)"
        return None
    if feature == "POST /files":
        target = f"/tmp/sandboxd-probe-{uuid.uuid4().hex}"
        r = httpx.post(
            f"{daemon.envd_url}/files",
            params={"path": target},
            content=b"probe",
            headers={"Content-Type": "application/octet-stream"},
            timeout=10,
        )
        if os.path.exists(target):
            os.remove(target)
        return None if r.status_code == 200 else f"sandboxd does not implement POST /files yet (HTTP {r.status_code})"
    if feature == "gateway /mcps":
        r = httpx.get(f"{daemon.gateway_url}/mcps", timeout=10)
        return None if r.status_code == 200 else f"sandboxd's gateway does not serve GET /mcps yet (HTTP {r.status_code})"
    raise LookupError(f"no probe for {feature!r}")


def _probe(feature: str, daemon: Daemon) -> Optional[str]:
    try:
        return _missing(feature, daemon)
    except (httpx.HTTPError, ValueError) as e:  # a half-built feature that hangs or answers garbage
        return f"sandboxd's {feature} does not work yet ({type(e).__name__}: {e})"


_probe_cache: dict[str, Optional[str]] = {}


@pytest.fixture(autouse=True)
def _skip_pending(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("needs")
    if marker is None:
        return
    daemon: Daemon = request.getfixturevalue("daemon")
    for feature in marker.args:
        if feature not in PENDING:
            continue
        if feature not in _probe_cache:
            _probe_cache[feature] = _probe(feature, daemon)
        reason = _probe_cache[feature]
        if reason is not None:
            pytest.skip(reason)
