"""What one process remembers of fetching peers' public keys, so that made-up keyIds cannot make it send
requests on a stranger's behalf (GoToSocial keeps the same kind of memory).

A key that was fetched is not fetched again for ten minutes: it is remembered and answered from here (also to
requests that arrive before the caller has stored it), and a signature that fails with it is refused, not
refetched, until then (a rotated key still gets through after). A fetch that failed is not tried
again for a minute, and a peer whose key fetches keep failing is asked for no new key until its failures age
out: long enough to make made-up keyIds cheap to refuse, short enough that a peer that was briefly down (or
still starting) is heard again soon. A peer has at most a couple of key fetches in flight. Everything here is
bounded in size.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

WINDOW_SECONDS = 600.0
FAILED_SECONDS = 60.0
FAILURES_PER_PEER = 5
AT_ONCE_PER_PEER = 2
MAX_KEYS = 10_000


class KeyFetches:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # keyId -> (when it was last fetched, its PEM, or None when that failed)
        self._fetched: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._peer_failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._running: dict[str, asyncio.Future[str | None]] = {}

    async def fetch(self, key_id: str, host: str, load: Callable[[], Awaitable[str | None]]) -> str | None:
        """The key's PEM as `load` gets it from its peer, or None, under the rules above. Requests that need the
        same key while it is being fetched wait for that fetch (a peer's first deliveries come side by side)."""
        running = self._running.get(key_id)
        if running is not None:
            return await asyncio.shield(running)
        at, pem = self._fetched.get(key_id, (float("-inf"), None))
        if pem is not None and self.clock() - at < WINDOW_SECONDS:
            return pem
        if not self.may_fetch(key_id, host):
            return None
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._running[key_id] = future
        try:
            pem = await self._load(key_id, host, load)
        except BaseException:
            future.set_result(None)  # whoever waited is refused this time, as a failed fetch would be
            raise
        else:
            future.set_result(pem)
            return pem
        finally:
            del self._running[key_id]

    def may_fetch(self, key_id: str, host: str) -> bool:
        now = self.clock()
        at, pem = self._fetched.get(key_id, (float("-inf"), None))
        if now - at < (WINDOW_SECONDS if pem is not None else FAILED_SECONDS):
            return False
        failures = self._peer_failures.get(host, ())
        return sum(1 for at in failures if now - at < FAILED_SECONDS) < FAILURES_PER_PEER

    async def _load(self, key_id: str, host: str, load: Callable[[], Awaitable[str | None]]) -> str | None:
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = asyncio.Semaphore(AT_ONCE_PER_PEER)
        async with slot:
            # Checked again: the peer's failures may have used up its budget while this one waited for a slot.
            if not self.may_fetch(key_id, host):
                return None
            self._remember(self._fetched, key_id, (self.clock(), None))  # made, whatever its outcome
            pem = await load()
        if pem is not None:
            self._remember(self._fetched, key_id, (self.clock(), pem))
        else:
            failures = self._peer_failures.get(host) or deque(maxlen=FAILURES_PER_PEER)
            failures.append(self.clock())
            self._remember(self._peer_failures, host, failures)
        return pem

    @staticmethod
    def _remember(entries: OrderedDict, key: str, value: object) -> None:  # type: ignore[type-arg]
        entries[key] = value
        entries.move_to_end(key)
        while len(entries) > MAX_KEYS:
            entries.popitem(last=False)
