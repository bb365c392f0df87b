from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from litestar.testing import TestClient

from server.app import create_app


@pytest.fixture(scope="module")
def peered_client(settings) -> Iterator[TestClient]:
    settings = replace(settings, peers=("http://sync-peer.test",))
    with TestClient(app=create_app(settings), base_url=settings.base_url) as client:
        yield client


def test_peers_and_sync_are_for_admins_only(peered_client, people):
    member = people.make()
    assert peered_client.get("/api/v1/federation/peers").status_code == 401
    assert peered_client.get("/api/v1/federation/peers", headers=member.auth).status_code == 403
    assert peered_client.post("/api/v1/federation/peers/sync-peer.test/sync", headers=member.auth).status_code == 403


def test_sync_queues_a_backfill_and_the_peer_is_listed(peered_client, admin):
    response = peered_client.post("/api/v1/federation/peers/Sync-Peer.Test/sync", headers=admin.auth)
    assert response.status_code == 202
    assert response.json()["host"] == "sync-peer.test" and response.json()["job_id"]
    peers = {p["host"]: p for p in peered_client.get("/api/v1/federation/peers", headers=admin.auth).json()}
    assert peers["sync-peer.test"]["state"] == "pending"
    assert peers["sync-peer.test"]["base_url"] == "http://sync-peer.test"
    assert set(peers["sync-peer.test"]) == {
        "host", "base_url", "state", "followed_back", "last_success_at", "last_error", "queue_depth",
        "entries_received", "lag_seconds",
    }  # fmt: skip


def test_sync_of_an_unconfigured_host_is_404(peered_client, admin):
    assert peered_client.post("/api/v1/federation/peers/stranger.test/sync", headers=admin.auth).status_code == 404
