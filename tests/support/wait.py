"""Waiting for asynchronous effects (workers, federation) without fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(check: Callable[[], Any], timeout: float = 15.0, message: str = "", interval: float = 0.1) -> Any:
    """Poll until `check` returns something truthy, and return it; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message or f"not true within {timeout} s")
        time.sleep(interval)
