"""Rate limits where abuse is cheap: named limits (settings.RateLimits), each counted per key.

Why the `limits` package and not Litestar's RateLimitConfig: that middleware applies one rate to every route
it covers, keyed by one function of the request, and counts every request. Kith needs a rate per action and
per key of that action's choosing: failed sign-ins per account name and per client address (and only the
failures), tokens per person, searches per person or address, activities per verified peer host. So the
limits are named, and each entry point asks for its own with the key it knows (`limiter_of(request).check`).

The counting is `limits`' fixed window (FixedWindowRateLimiter): one counter per key, whose window starts at
its first hit. Its storage is our own, `BoundedMemory`, rather than `limits.storage.MemoryStorage`, which
walks every key from a timer thread it starts anew every 10 ms while hits arrive, has no cap, and keeps the
keys of its moving windows for good once they empty (limits 5.8). BoundedMemory
implements the same Storage interface, so the strategy is the library's own; it drops a key when
it is read after its window, sweeps the expired ones every so many new keys, and never holds more than
`max_keys`: a flood of new keys (addresses, made-up account names) evicts the oldest windows instead of
growing the process. The clock is a parameter so that tests move time instead of sleeping.

Memory per process, as the key-fetch memory: with several web processes each counts on its own, which only
makes the limits that many times looser. Everything runs on the event loop's thread, so no locks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from ipaddress import IPv6Address, ip_address
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from litestar import Request

from server.errors import ProblemError
from server.settings import RateLimits

MAX_KEYS = 100_000
SWEEP_EVERY = 1024  # new keys between two sweeps of the expired ones

# What a person is told when a limit refuses them; the wait is appended.
_MESSAGES = {
    "sign_in_account": "Too many failed sign-in attempts for this account.",
    "sign_in_address": "Too many failed sign-in attempts from your address.",
    "token_create": "Too many tokens created.",
    "registration": "Too many sign-ups from your address.",
    "search": "Too many searches.",
    "preview": "Too many previews.",
    "inbox": "Too many activities from this peer.",
    "messages": "Too many messages in a short time.",
}


class BoundedMemory(Storage):
    """A `limits` storage of counters with expiry, in a dict that never holds more than `max_keys`."""

    def __init__(self, max_keys: int = MAX_KEYS, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.max_keys = max_keys
        self.clock = clock
        # key -> [count, expires at]; insertion order is the order windows began, oldest first.
        self.counters: dict[str, list[float]] = {}
        self._new_keys = 0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def _live(self, key: str, now: float) -> list[float] | None:
        entry = self.counters.get(key)
        if entry is not None and entry[1] <= now:
            del self.counters[key]
            return None
        return entry

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = self.clock()
        entry = self._live(key, now)
        if entry is None:
            self._make_room(now)
            self.counters[key] = entry = [0, now + expiry]
        entry[0] += amount
        return int(entry[0])

    def _make_room(self, now: float) -> None:
        self._new_keys += 1
        if self._new_keys % SWEEP_EVERY == 0 or len(self.counters) >= self.max_keys:
            for key in [k for k, (_, expires) in self.counters.items() if expires <= now]:
                del self.counters[key]
        if len(self.counters) >= self.max_keys:
            # Still full of live windows: forget the oldest tenth at once, so the next new keys do not each
            # pay for a sweep. Forgetting a count only ever lets someone in early.
            for key in list(self.counters)[: max(1, self.max_keys // 10)]:
                del self.counters[key]

    def get(self, key: str) -> int:
        entry = self._live(key, self.clock())
        return int(entry[0]) if entry else 0

    def get_expiry(self, key: str) -> float:
        now = self.clock()
        entry = self._live(key, now)
        return entry[1] if entry else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        count = len(self.counters)
        self.counters.clear()
        return count

    def clear(self, key: str) -> None:
        self.counters.pop(key, None)


class Limiter:
    """The instance's named limits; one per process (app.state.limiter)."""

    def __init__(self, limits: RateLimits, *, max_keys: int = MAX_KEYS, clock: Callable[[], float] = time.time) -> None:
        self.storage = BoundedMemory(max_keys, clock)
        self.strategy = FixedWindowRateLimiter(self.storage)
        self.items: dict[str, RateLimitItem] = {f.name: parse(getattr(limits, f.name)) for f in fields(limits)}

    def wait(self, name: str, key: str) -> int:
        """Seconds until `key` may act again under limit `name`, or 0 when it may now. Counts nothing."""
        item = self.items[name]
        if self.strategy.test(item, name, key):
            return 0
        reset_at = self.strategy.get_window_stats(item, name, key).reset_time
        return max(1, math.ceil(reset_at - self.storage.clock()))

    def hit(self, name: str, key: str) -> None:
        self.strategy.hit(self.items[name], name, key)

    def forget(self, name: str, key: str) -> None:
        self.strategy.clear(self.items[name], name, key)

    def refuse_if_spent(self, name: str, key: str) -> None:
        """Raise the 429 when `key` has used up limit `name`; count nothing (for limits on failures)."""
        wait = self.wait(name, key)
        if wait:
            raise too_many(name, wait)

    def check(self, name: str, key: str) -> None:
        """Count one use of limit `name` by `key`; raise the 429 when it goes over."""
        item = self.items[name]
        if not self.strategy.hit(item, name, key):
            raise too_many(name, self.wait(name, key))


@contextmanager
def password_guesses(limiter: Limiter, username: str) -> Iterator[None]:
    """Around a check of a person's current password (changing it): a wrong one is a guess like a failed
    sign-in, so it counts against, and is stopped by, the same per-account limit; a stolen session or token
    must not become a way to guess the password."""
    limiter.refuse_if_spent("sign_in_account", username)
    try:
        yield
    except ProblemError as exc:
        if any(error.field == "current_password" for error in exc.errors or ()):
            limiter.hit("sign_in_account", username)
        raise


def too_many(name: str, wait: int) -> ProblemError:
    """429 with Retry-After: problem+json on the API and to peers, the error page on the web."""
    unit = "second" if wait == 1 else "seconds"
    return ProblemError(429, f"{_MESSAGES[name]} Try again in {wait} {unit}.", headers={"Retry-After": str(wait)})


def limiter_of(request: Request[Any, Any, Any]) -> Limiter:
    return request.app.state.limiter  # type: ignore[no-any-return]


def client_address(request: Request[Any, Any, Any]) -> str:
    """The client's address as the server saw it: behind a trusted proxy, `kith serve` has already put the
    forwarded client there (uvicorn's proxy headers, limited to settings.trusted_proxies). An IPv6 client
    counts by its /64, which one household or server usually holds whole: otherwise one host could take a
    new address for every attempt."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ip_address(host)
    except ValueError:
        return host
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return f"{address.exploded[:19]}::/64"
    return str(address)


def person_or_address(request: Request[Any, Any, Any], username: str | None) -> str:
    """A signed-in person counts on their own, not with everyone behind the same address (a campus, a NAT)."""
    return f"person:{username}" if username else client_address(request)
