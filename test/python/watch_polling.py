"""Polling a sync `watch_dir` handle as E2B's sync tests do; shared by the main suite and the compat matrix."""

from __future__ import annotations

import time
from typing import Any


def poll_events(handle: Any, count: int) -> list[Any]:
    """Polls until `count` events came (at most 10 s), then once more, so an extra event shows as a failure."""
    events: list[Any] = []
    deadline = time.monotonic() + 10
    while len(events) < count and time.monotonic() < deadline:
        events.extend(handle.get_new_events())
        if len(events) < count:
            time.sleep(0.05)
    return events + handle.get_new_events()
