"""Production mode: test/image/agentscope.image.ts runs this suite with the local control plane's variables
(E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY) and the paths, inside every sandbox, of the Node and the
server-everything it bound there. Without them the suite refuses to start rather than fall back to debug mode.
"""

from __future__ import annotations

import os

import pytest

for needed in ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY", "SANDBOXD_TEST_NODE", "SANDBOXD_TEST_SERVER_EVERYTHING"):
    if not os.environ.get(needed):
        raise pytest.UsageError(f"{needed} is not set: this suite runs from `npm run test:image` (test/image/agentscope.image.ts)")
os.environ.pop("E2B_DEBUG", None)

NODE = os.environ["SANDBOXD_TEST_NODE"]
SERVER_EVERYTHING = os.environ["SANDBOXD_TEST_SERVER_EVERYTHING"]
TEMPLATE = os.environ.get("SANDBOXD_TEST_TEMPLATE", "base")

_reported: list[str] = []


def report(line: str) -> None:
    """A figure for the end of the run (pytest's summary), such as how long initialize() took."""
    _reported.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _reported:
        terminalreporter.write_line(f"[figure] {line}")
