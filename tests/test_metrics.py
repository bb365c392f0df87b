"""GET /metrics: admin tokens only, Prometheus text, routes by template, queues read from the database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from server import metrics
from server.app import create_app
from server.db import create_engine, create_sessionmaker, utcnow
from server.models import Activity, Delivery, InboxItem, Job
from server.queues import DELIVERIES
from server.search import SearchIndex
from server.search.indexing import index_path
from tests.conftest import ROOT


def _scrape(client: TestClient, token: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and labels."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_a_token_with_the_admin_scope(client, people, admin):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer kith_nonsense"}).status_code == 401
    assert client.get("/metrics", headers=people.make("plain").auth).status_code == 403
    # An admin's token without the admin scope is not enough either.
    assert client.get("/metrics", headers=people.make("readadmin", admin=True, scope="read").auth).status_code == 403
    assert client.get("/metrics", headers=admin.auth).status_code == 200


def test_metrics_are_not_in_the_api_document(client):
    assert "/metrics" not in client.get("/schema/openapi.json").json()["paths"]


def test_a_request_is_counted_under_its_route_template(client, admin, community):
    route = "/api/v1/communities/{ref}"
    before = _scrape(client, admin.token)
    assert client.get(f"/api/v1/communities/{community['slug']}").status_code == 200
    assert client.get(f"/api/v1/communities/missing-{uuid.uuid4().hex[:8]}").status_code == 404
    samples = _scrape(client, admin.token)
    count = "kith_http_request_duration_seconds_count"
    for status in ("2xx", "4xx"):
        labels = {"route": route, "method": "GET", "status": status}
        assert _value(samples, count, **labels) == _value(before, count, **labels) + 1
    # The path asked for never becomes a label.
    assert not any(community["slug"] in value for _, labels in samples for _, value in labels)


def test_a_path_that_matches_no_route_adds_no_series(client, admin):
    made_up = f"no-such-page-{uuid.uuid4().hex}"
    assert client.get(f"/{made_up}/really").status_code == 404
    samples = _scrape(client, admin.token)
    assert not any(made_up in value for _, labels in samples for _, value in labels)


def _add_queued_rows(database_url: str, peer: str) -> None:
    async def work() -> None:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                activity = Activity(
                    uri=f"http://127.0.0.1:8000/activities/metrics-{uuid.uuid4().hex}", type="Create",
                    actor_uri="http://127.0.0.1:8000/u/ada", object_type="guide", object_uri="x", payload={},
                )  # fmt: skip
                session.add(activity)
                await session.flush()
                hour_ago = utcnow() - timedelta(hours=1)
                session.add_all(
                    [
                        # Made an hour ago and failed once since: due again later.
                        Delivery(
                            activity_seq=activity.seq, inbox_url=f"http://{peer}/inbox", peer_host=peer,
                            created_at=hour_ago, attempts=1, next_attempt_at=utcnow() + timedelta(minutes=5),
                        ),
                        Delivery(activity_seq=activity.seq, inbox_url=f"http://{peer}/u/a/inbox", peer_host=peer),
                        Delivery(
                            activity_seq=activity.seq, inbox_url=f"http://{peer}/u/b/inbox", peer_host=peer,
                            state=DELIVERIES["give_up"].target, attempts=9,
                        ),
                        InboxItem(activity_uri=f"http://{peer}/a/{uuid.uuid4().hex}", signer_host=peer, payload={}),
                        Job(kind="metrics-test"),
                        Job(kind="metrics-test"),
                    ]
                )  # fmt: skip
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(work())


def test_queue_depths_and_peer_failures_come_from_the_database(client, admin, settings):
    peer = f"peer-{uuid.uuid4().hex[:8]}.example"
    before = _scrape(client, admin.token)
    _add_queued_rows(settings.database_url, peer)
    samples = _scrape(client, admin.token)

    def grew(name: str, **labels: str) -> float:
        return _value(samples, name, **labels) - _value(before, name, **labels)

    assert grew("kith_queue_depth", queue="deliveries") == 2
    assert grew("kith_queue_due", queue="deliveries") == 1
    assert grew("kith_queue_depth", queue="inbox_items") == 1
    assert grew("kith_queue_depth", queue="jobs") == 2
    assert _value(samples, "kith_queue_oldest_age_seconds", queue="deliveries") >= 3600
    assert _value(samples, "kith_queue_oldest_age_seconds", queue="jobs") >= 0
    assert _value(samples, "kith_peer_deliveries_pending", peer=peer) == 2
    assert _value(samples, "kith_peer_deliveries_retrying", peer=peer) == 1
    assert _value(samples, "kith_peer_deliveries_given_up", peer=peer) == 1


def test_a_configured_peer_is_shown_with_nothing_queued(settings, admin):
    peered = replace(settings, peers=("http://quiet-peer.example",))
    with TestClient(app=create_app(peered), base_url=settings.base_url) as client:
        samples = _scrape(client, admin.token)
    assert ("kith_peer_deliveries_retrying", (("peer", "quiet-peer.example"),)) in samples
    assert _value(samples, "kith_peer_deliveries_retrying", peer="quiet-peer.example") == 0


@pytest.fixture(scope="module")
def searchable_client(settings, tmp_path_factory) -> Iterator[TestClient]:
    """The app over a data dir with an empty, current index: searches answer at once, with no worker."""
    settings = replace(settings, data_dir=tmp_path_factory.mktemp("metrics-data"))
    SearchIndex(index_path(settings)).close()
    with TestClient(app=create_app(settings), base_url=settings.base_url) as client:
        yield client


def test_a_search_is_timed(searchable_client, admin):
    before = _scrape(searchable_client, admin.token)
    assert searchable_client.get("/api/v1/search", params={"q": "anything"}).status_code == 200
    samples = _scrape(searchable_client, admin.token)
    count = "kith_search_duration_seconds_count"
    assert _value(samples, count) == _value(before, count) + 1
    assert _value(samples, "kith_search_duration_seconds_sum") > _value(before, "kith_search_duration_seconds_sum")


RECORD_AND_RENDER = """
import sys
from server import metrics
if sys.argv[1] == "record":
    metrics.REQUEST_SECONDS.labels(route="/api/v1/instance", method="GET", status="2xx").observe(0.01)
    metrics.SEARCH_SECONDS.observe(0.002)
else:
    sys.stdout.write(metrics._recorded().decode())
"""


def test_several_processes_add_up_in_the_shared_directory(tmp_path, monkeypatch):
    """What `kith serve --workers N` does: the parent shares a directory, each child records into it, and a
    scrape answered by any one of them counts them all."""
    stale = tmp_path / "metrics" / "counter_1.db"
    stale.parent.mkdir()
    stale.write_bytes(b"left by an earlier run")
    monkeypatch.setenv(metrics.MULTIPROCESS_ENV, "")  # put back as it was after the test
    shared = metrics.share_across_processes(tmp_path)
    assert shared == tmp_path / "metrics" and not stale.exists()
    env = dict(os.environ)
    assert env[metrics.MULTIPROCESS_ENV] == str(shared)

    def run(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", RECORD_AND_RENDER, mode], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=60, check=True,
        )  # fmt: skip
        return done.stdout

    run("record")
    run("record")
    families = {family.name: family for family in text_string_to_metric_families(run("render"))}
    requests = {
        sample.name: sample.value
        for sample in families["kith_http_request_duration_seconds"].samples
        if sample.labels.get("route") == "/api/v1/instance" and "le" not in sample.labels
    }
    assert requests["kith_http_request_duration_seconds_count"] == 2
    assert [s.value for s in families["kith_search_duration_seconds"].samples if s.name.endswith("_count")] == [2]
