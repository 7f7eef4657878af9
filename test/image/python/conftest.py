"""Shared by the production-mode suites here: figures a test reports (how long initialize() took, say) are
printed in pytest's summary, where the vitest file that ran the suite shows them."""

from __future__ import annotations

import pytest

_reported: list[str] = []


def report(line: str) -> None:
    _reported.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _reported:
        terminalreporter.write_line(f"[figure] {line}")
