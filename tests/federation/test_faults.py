"""Faults with real processes: nothing is lost when either side is down or dies, and nothing arrives twice."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.federation.test_two_instances import Side, _all, _databases, _peer
from tests.support.server import KithServer, free_port
from tests.support.wait import eventually


@contextlib.contextmanager
def _peered_pair(backend: str) -> Iterator[tuple[Side, Side]]:
    with _databases(backend) as (a_db, b_db):
        a_port, b_port = free_port(), free_port()
        # A short pull interval on B: the safety net behind push is what these tests lean on.
        a = KithServer(database_url=a_db, port=a_port, env={"KITH_PEERS": f"http://127.0.0.1:{b_port}"})
        b = KithServer(
            database_url=b_db, port=b_port,
            env={"KITH_PEERS": f"http://127.0.0.1:{a_port}", "KITH_PULL_INTERVAL_SECONDS": "3"},
        )  # fmt: skip
        try:
            a.start()
            b.start()
            side_a, side_b = Side(a, a.token()), Side(b, b.token())
            side_a.post("/communities", {"slug": "ops", "name": "Operations"})
            eventually(
                lambda: (
                    (_peer(side_a, b.host) or {}).get("state") == "following"
                    and (_peer(side_b, a.host) or {}).get("state") == "following"
                ),
                message="peering did not complete",
            )
            yield side_a, side_b
        finally:
            b.close()
            a.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def peered(request: pytest.FixtureRequest) -> Iterator[tuple[Side, Side]]:
    """One peered pair for the tests that leave it peered; each test writes and checks its own guides."""
    with _peered_pair(request.param) as pair:
        yield pair


@pytest.fixture(params=["sqlite", "postgresql"])
def unpeered_later(request: pytest.FixtureRequest) -> Iterator[tuple[Side, Side]]:
    """A pair of its own, for the test that takes A out of B's peers: no other test sees that change."""
    with _peered_pair(request.param) as pair:
        yield pair


def _remote_uris(b: Side, a: Side) -> list[str]:
    return [g["uri"] for g in _all(b, "/guides", origin="remote", community=f"ops@{a.server.host}")]


def _write(a: Side, prefix: str, count: int) -> set[str]:
    return {
        a.post("/communities/ops/guides", {"title": f"{prefix} {n}", "body_markdown": "text"})["uri"]
        for n in range(count)
    }


def test_peer_down_while_writing_then_restarted_gets_everything_once(peered):
    a, b = peered
    b.server.stop()
    written = _write(a, "While B was down", 50)
    b.server.start()
    eventually(lambda: written <= set(_remote_uris(b, a)), timeout=60, message="not all 50 guides arrived")
    uris = _remote_uris(b, a)
    assert len(uris) == len(set(uris))  # none twice


def test_sender_killed_with_deliveries_pending_loses_nothing(peered):
    a, b = peered
    written = _write(a, "Before the crash", 20)
    a.server.kill()
    a.server.start()
    try:
        eventually(lambda: written <= set(_remote_uris(b, a)), timeout=60)
    except AssertionError as exc:
        missing = len(written - set(_remote_uris(b, a)))
        raise AssertionError(
            f"{missing} guides lost in the crash\nA:\n{a.server.log()[-3000:]}\nB:\n{b.server.log()[-3000:]}"
        ) from exc
    uris = _remote_uris(b, a)
    assert len(uris) == len(set(uris))


def test_status_reports_health(peered):
    a, b = peered
    written = _write(a, "Health check", 5)
    eventually(lambda: written <= set(_remote_uris(b, a)), timeout=60, message="the guides did not arrive")
    status: dict[str, Any] = _peer(a, b.server.host) or {}
    assert status["state"] == "following" and status["followed_back"] is True
    assert status["last_success_at"] is not None
    assert status["queue_depth"] >= 0 and status["lag_seconds"] >= 0
    received = _peer(b, a.server.host) or {}
    assert received["entries_received"] >= len(written)


def test_removing_a_peer_unfollows_keeps_entries_marked_then_purge_removes_them(unpeered_later):
    a, b = unpeered_later
    ref = f"ops@{a.server.host}"
    kept = _write(a, "Before the split", 3)
    eventually(lambda: kept <= set(_remote_uris(b, a)), timeout=60, message="the guides did not arrive")
    b.server.stop()
    b.server.env["KITH_PEERS"] = ""
    b.server.start()
    eventually(lambda: (_peer(a, b.server.host) or {}).get("followed_back") is False, message="A still delivers to B")
    assert (_peer(b, a.server.host) or {}).get("state") == "removed"
    guides = _all(b, "/guides", origin="remote", community=ref)
    assert {g["uri"] for g in guides} == kept
    assert all(g["origin"]["former_peer"] for g in guides)
    assert b.get(f"/communities/{ref}")["former_peer"] is True

    late = a.post("/communities/ops/guides", {"title": "After the split", "body_markdown": "text"})["uri"]
    # Deliveries are written in the same transaction as the guide: none queued for B means none will be pushed.
    assert (_peer(a, b.server.host) or {}).get("queue_depth") == 0
    # A pull from every configured peer, run to its end: A is not one of them any more.
    b.server.cli("peers", "sync")
    assert late not in {g["uri"] for g in _all(b, "/guides", origin="remote")}

    b.server.cli("peers", "purge", a.server.host)
    assert _all(b, "/guides", origin="remote", community=ref) == []
