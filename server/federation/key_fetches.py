"""What one process remembers of fetching peers' public keys, so that made-up keyIds cannot make it send
requests on a stranger's behalf (GoToSocial keeps the same kind of memory).

A keyId is fetched at most once per window, whether that fetch worked or not: a signature that fails with a
fresh key is refused, not refetched, until the window has passed (a rotated key still gets through then). A
peer whose key fetches keep failing is asked for no new key until its failures age out, and a peer has at most
a couple of key fetches in flight. Everything here is bounded in size.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable

WINDOW_SECONDS = 600.0
FAILURES_PER_PEER = 5
AT_ONCE_PER_PEER = 2
MAX_KEYS = 10_000


class KeyFetches:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._fetched: OrderedDict[str, float] = OrderedDict()
        self._peer_failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._slots: dict[str, asyncio.Semaphore] = {}

    def may_fetch(self, key_id: str, host: str) -> bool:
        now = self.clock()
        fetched = self._fetched.get(key_id)
        if fetched is not None and now - fetched < WINDOW_SECONDS:
            return False
        failures = self._peer_failures.get(host, ())
        return sum(1 for at in failures if now - at < WINDOW_SECONDS) < FAILURES_PER_PEER

    @contextlib.asynccontextmanager
    async def fetching(self, key_id: str, host: str) -> AsyncIterator[None]:
        """Hold one of the peer's fetch slots; the fetch counts as made whatever its outcome."""
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = asyncio.Semaphore(AT_ONCE_PER_PEER)
        async with slot:
            self._remember(self._fetched, key_id, self.clock())
            yield

    def failed(self, host: str) -> None:
        failures = self._peer_failures.get(host)
        if failures is None:
            failures = deque(maxlen=FAILURES_PER_PEER)
        self._remember(self._peer_failures, host, failures)
        failures.append(self.clock())

    @staticmethod
    def _remember(entries: OrderedDict, key: str, value: object) -> None:  # type: ignore[type-arg]
        entries[key] = value
        entries.move_to_end(key)
        while len(entries) > MAX_KEYS:
            entries.popitem(last=False)
