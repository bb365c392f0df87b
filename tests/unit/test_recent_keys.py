"""The inbox's memory of peers' keys read from the database: kept a minute, forgotten when asked, bounded."""

from __future__ import annotations

from server.federation.inbox import RecentKeys


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_remembered_for_its_window_and_read_again_after():
    clock = Clock()
    keys = RecentKeys(clock)
    keys.put("http://peer.test/actor#main-key", "PEM")
    clock.now += RecentKeys.MEMORY_SECONDS - 1
    assert keys.get("http://peer.test/actor#main-key") == "PEM"
    clock.now += 1
    assert keys.get("http://peer.test/actor#main-key") is None


def test_a_forgotten_key_is_read_again_at_once():
    keys = RecentKeys(Clock())
    keys.put("http://peer.test/actor#main-key", "PEM")
    keys.forget("http://peer.test/actor#main-key")
    assert keys.get("http://peer.test/actor#main-key") is None


def test_the_memory_keeps_the_most_recent_keys_only():
    keys = RecentKeys(Clock())
    for n in range(RecentKeys.MAX_KEYS + 10):
        keys.put(f"http://peer.test/u/{n}#main-key", f"PEM {n}")
    assert keys.get("http://peer.test/u/0#main-key") is None
    assert keys.get(f"http://peer.test/u/{RecentKeys.MAX_KEYS + 9}#main-key") == f"PEM {RecentKeys.MAX_KEYS + 9}"
