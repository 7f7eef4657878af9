"""The files the image puts in AgentScope's gateway home (packaging/agentscope/), held to AgentScope's contracts.

The glob helper must answer exactly as the one AgentScope's own bootstrap uploads (same files, same order);
the gateway stand-in must find sandboxd's gateway and start nothing, and say so when the port is wrong.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from unittest import mock

import pytest
from agentscope.workspace._utils import _read_glob_helper_bytes

from conftest import ROOT, Daemon, _free_port

OURS = ROOT / "packaging" / "agentscope"

PATTERNS = [
    "**/*.py",
    "*.txt",
    "src/*.py",
    "src/**",
    "**",
    "?.md",
    "**/test_*",
    "src/**/deep/*.py",
    "src/**/*.py",
    "**/deep/**",
    "[x].txt",
    "a+b(c).txt",
    "./src/*.py",
    "src//*.py",
    "src\\*.py",
    ".hidden/*",
    "*/*",
    "../*",
    "missing/*.py",
    "src",
    "",
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files at several depths, dotfiles, regex metacharacters in names, a symlinked directory; distinct mtimes."""
    base = tmp_path_factory.mktemp("glob")
    files = [
        "a.txt", "b.md", "[x].txt", "x.txt", "a+b(c).txt", ".dot.txt", ".hidden/h.py",
        "src/main.py", "src/util.py", "src/test_util.py", "src/readme.md",
        "src/pkg/mod.py", "src/pkg/deep/leaf.py", "src/pkg/deep/data.json", "src/other/deep/x.py",
        "tests/test_main.py", "tests/conftest.py",
    ]
    for i, rel in enumerate(files):
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)
        os.utime(p, (1_700_000_000 + i * 10, 1_700_000_000 + i * 10))
    (base / "src" / "linked").symlink_to(base / "tests", target_is_directory=True)
    return base


def load(script: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"glob_helper_{script.parent.name}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_glob(helper: ModuleType, pattern: str, base_dir: str) -> list[str]:
    """The helper's command line (`--pattern=P --base-dir=D`, JSON on stdout), run in this process."""
    out = io.StringIO()
    with mock.patch.object(sys, "argv", ["_glob_helper.py", f"--pattern={pattern}", f"--base-dir={base_dir}"]):
        with contextlib.redirect_stdout(out):
            helper.main()
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def ours() -> ModuleType:
    return load(OURS / "_glob_helper.py")


@pytest.fixture(scope="module")
def theirs(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    script = tmp_path_factory.mktemp("agentscope") / "_glob_helper.py"
    script.write_bytes(_read_glob_helper_bytes())
    return load(script)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_glob_helper_answers_as_agentscope_s_own(tree: Path, ours: ModuleType, theirs: ModuleType, pattern: str) -> None:
    assert run_glob(ours, pattern, str(tree)) == run_glob(theirs, pattern, str(tree))


def test_the_glob_helper_finds_files_newest_first(tree: Path, ours: ModuleType) -> None:
    found = run_glob(ours, "src/**/*.py", str(tree))
    assert [Path(p).relative_to(tree).as_posix() for p in found] == [
        "src/other/deep/x.py", "src/pkg/deep/leaf.py", "src/pkg/mod.py", "src/test_util.py", "src/util.py", "src/main.py",
    ]


def test_the_glob_helper_gives_an_empty_list_for_a_missing_or_file_base(tree: Path, ours: ModuleType, theirs: ModuleType) -> None:
    for base in (str(tree / "nowhere"), str(tree / "a.txt")):
        assert run_glob(ours, "*", base) == [] == run_glob(theirs, "*", base)


def stand_in(port: int) -> subprocess.CompletedProcess[str]:
    # As AgentScope launches it: `<venv python> -u _mcp_gateway_app.py --port N`.
    return subprocess.run(
        [sys.executable, "-u", str(OURS / "_mcp_gateway_app.py"), "--port", str(port)],
        capture_output=True, text=True, timeout=30,
    )


def test_the_gateway_stand_in_finds_sandboxd_s_gateway_and_starts_nothing(daemon: Daemon) -> None:
    r = stand_in(daemon.gateway_port)
    assert r.returncode == 0, r.stderr
    assert f"sandboxd serves the MCP gateway on port {daemon.gateway_port}" in r.stdout
    assert "nothing started" in r.stdout


def test_the_gateway_stand_in_fails_with_the_reason_when_nothing_serves_the_port() -> None:
    r = stand_in(_free_port())
    assert r.returncode == 1
    assert "no MCP gateway answers" in r.stderr and "--gateway-port" in r.stderr
