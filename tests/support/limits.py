"""Rate limits for test instances: the suite sends thousands of requests from one address (127.0.0.1, or the
test client's), which real limits would rightly refuse. Only failed sign-ins per account keep a real limit,
which tests/web/test_pages.py relies on; tests of the limits themselves set their own, low ones."""

from __future__ import annotations

from dataclasses import asdict

from server.settings import RateLimits

ROOMY = RateLimits(
    sign_in_account="5/5minutes",
    sign_in_address="10000/minute",
    token_create="10000/minute",
    registration="10000/minute",
    search="100000/minute",
    preview="100000/minute",
    inbox="100000/second",
    messages="100000/minute",
)

# The same, as a server process reads them.
ROOMY_ENV = {f"KITH_LIMIT_{name.upper()}": value for name, value in asdict(ROOMY).items()}


class Clock:
    """A clock for a Limiter that tests move by hand: a window passes without waiting for it."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now
