"""Search through the API, with the worker indexing in the background as in `kith serve`.

Each test runs with the whoosh backend on both databases, and with the postgres backend on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.db import create_engine, create_sessionmaker
from server.search.backend import rebuild
from server.search.indexing import index_path
from server.settings import SearchSettings
from tests.conftest import join
from tests.support.wait import eventually as wait_until


@pytest.fixture(scope="module", params=["whoosh", "postgres"])
def live(request, settings, tmp_path_factory) -> Iterator[TestClient]:
    if request.param == "postgres" and not settings.database_url.startswith("postgresql"):
        pytest.skip("the postgres search backend needs a PostgreSQL database")
    settings = replace(
        settings, data_dir=tmp_path_factory.mktemp("search-data"), search=SearchSettings(backend=request.param)
    )
    with TestClient(app=create_app(settings, run_worker=True), base_url=settings.base_url) as client:
        client.app.state.test_settings = settings
        yield client


def eventually(check, timeout: float = 30.0):
    # A generous bound: how fast an entry becomes searchable is a benchmark figure (bench/search.py), not a test.
    return wait_until(check, timeout=timeout, interval=0.05)


def _search(client, **params):
    response = client.get("/api/v1/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _ids(client, **params) -> list[str]:
    return [item["id"] for item in _search(client, **params)["items"]]


def _ready(client):
    eventually(lambda: client.get("/api/v1/search", params={"q": "x"}).status_code == 200, timeout=30)


def test_create_edit_delete_become_searchable(live, admin, community):
    _ready(live)
    word = f"zebra{uuid.uuid4().hex[:6]}"
    guide = live.post(
        f"/api/v1/communities/{community['slug']}/guides",
        json={"title": f"Onboarding {word}", "body_markdown": "How we welcome people", "tags": ["people"]},
        headers=admin.auth,
    ).json()
    eventually(lambda: guide["id"] in _ids(live, q=word))
    hit = _search(live, q=word)["items"][0]
    assert hit["type"] == "guide" and hit["instance"] == "127.0.0.1:8000" and hit["url"] == guide["url"]
    assert "<mark>" in hit["snippet_html"] and hit["community"] == community["slug"]

    other = f"yak{uuid.uuid4().hex[:6]}"
    live.patch(f"/api/v1/guides/{guide['id']}", json={"title": f"Mentoring {other}"}, headers=admin.auth)
    eventually(lambda: guide["id"] in _ids(live, q=other) and guide["id"] not in _ids(live, q=word))

    live.delete(f"/api/v1/guides/{guide['id']}", headers=admin.auth)
    eventually(lambda: guide["id"] not in _ids(live, q=other))


def test_stemming_finds_onboarding_from_onboard(live, admin, community):
    _ready(live)
    guide = live.post(
        f"/api/v1/communities/{community['slug']}/guides",
        json={"title": "Onboarding maintainers", "body_markdown": "We onboarded five people."},
        headers=admin.auth,
    ).json()
    eventually(lambda: guide["id"] in _ids(live, q="onboard maintainer", community=community["slug"]))


def test_drafts_are_never_found(live, admin, people, community):
    _ready(live)
    author = people.make("author")
    join(live, admin, community, author)
    word = f"secret{uuid.uuid4().hex[:6]}"
    draft = live.post(
        f"/api/v1/communities/{community['slug']}/guides",
        json={"title": f"Draft {word}", "body_markdown": "not yet", "status": "draft"},
        headers=author.auth,
    ).json()
    marker = live.post(
        f"/api/v1/communities/{community['slug']}/guides",
        json={"title": f"Published {word}", "body_markdown": "now"}, headers=author.auth,
    ).json()  # fmt: skip
    eventually(lambda: marker["id"] in _ids(live, q=word))
    assert draft["id"] not in _ids(live, q=word)


def test_offers_and_facets_with_filters(live, admin, community):
    _ready(live)
    word = f"quokka{uuid.uuid4().hex[:6]}"
    base = f"/api/v1/communities/{community['slug']}"
    for n in range(3):
        tags = ["alpha"] if n else ["beta"]
        guide = {"title": f"{word} guide {n}", "body_markdown": "b", "tags": tags}
        live.post(f"{base}/guides", json=guide, headers=admin.auth)
    offer = {"title": f"{word} mentoring", "description_markdown": "d", "topics": ["julia"], "format": "group",
             "capacity": 2}  # fmt: skip
    live.post(f"{base}/mentorship/offers", json=offer, headers=admin.auth)
    eventually(lambda: _search(live, q=word)["total"] == 4)
    page = _search(live, q=word)
    assert page["facets"]["type"] == {"guide": 3, "offer": 1}
    assert page["facets"]["tag"] == {"alpha": 2, "beta": 1}
    assert page["facets"]["community"] == {community["slug"]: 4}
    filtered = _search(live, q=word, type="guide", tag="alpha")
    assert filtered["total"] == 2 and filtered["facets"]["type"] == {"guide": 2}
    first = _search(live, q=word, limit=3)
    assert len(first["items"]) == 3 and first["next_cursor"]
    second = _search(live, q=word, limit=3, cursor=first["next_cursor"])
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    assert _search(live, q=f"{word} mentoring", type="offer")["items"][0]["type"] == "offer"


def test_did_you_mean(live, admin, community):
    _ready(live)
    live.post(
        f"/api/v1/communities/{community['slug']}/guides",
        json={"title": "Documentation workflow", "body_markdown": "b"}, headers=admin.auth,
    )  # fmt: skip
    eventually(lambda: _search(live, q="documentation")["total"] >= 1)
    result = _search(live, q="documentaton")
    assert result["suggestion"] == "documentation" and result["corrected"] is True
    assert result["total"] >= 1 and result["items"][0]["title"] == "Documentation workflow"
    assert _search(live, q="documentation")["corrected"] is False


@pytest.mark.parametrize(
    "query",
    ['"unbalanced', "*", "x" * 10_000, "a\x01b", "title:", "(((", "AND", "NOT", "tag:", "nosuchfield:x",
     "title:x OR", "\u202e\u0000", "🦀 crab", "http://example.org", "instance:", "community:x AND ("],
)  # fmt: skip
def test_hostile_queries_never_5xx(live, query):
    _ready(live)
    response = live.get("/api/v1/search", params={"q": query})
    assert response.status_code in (200, 400, 422), (query, response.status_code)
    if response.status_code != 200:
        assert response.json()["detail"]


def test_every_field_name_is_handled(live):
    _ready(live)
    for field in ("title", "summary", "body", "tag", "tags", "topic", "topics", "language", "languages",
                  "type", "community", "instance", "origin"):  # fmt: skip
        for query in (f"{field}:x", f"{field}:", f'{field}:"a b"'):
            assert live.get("/api/v1/search", params={"q": query}).status_code in (200, 422), query


def test_reindex_while_searching_keeps_answering(live, admin, community):
    _ready(live)
    word = f"heron{uuid.uuid4().hex[:6]}"
    guide = live.post(
        f"/api/v1/communities/{community['slug']}/guides",
        json={"title": f"Stable {word}", "body_markdown": "b"}, headers=admin.auth,
    ).json()  # fmt: skip
    eventually(lambda: guide["id"] in _ids(live, q=word))
    settings = live.app.state.test_settings
    failures: list[object] = []
    stop = threading.Event()

    def keep_searching() -> None:
        while not stop.is_set():
            response = live.get("/api/v1/search", params={"q": word})
            if response.status_code != 200 or guide["id"] not in [i["id"] for i in response.json()["items"]]:
                failures.append(response.status_code)

    searcher = threading.Thread(target=keep_searching)
    searcher.start()
    try:
        asyncio.run(_reindex(settings))
    finally:
        stop.set()
        searcher.join()
    assert failures == []
    assert guide["id"] in _ids(live, q=word)


async def _reindex(settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        return await rebuild(settings, create_sessionmaker(engine))
    finally:
        await engine.dispose()


def test_deleted_index_is_rebuilt_and_503_meanwhile(settings, admin, tmp_path):
    settings = replace(settings, data_dir=tmp_path)
    with TestClient(app=create_app(settings, run_worker=True), base_url=settings.base_url) as client:
        _ready(client)
        total = _search(client, q="guide OR mentoring OR onboarding")["total"]
    shutil.rmtree(index_path(settings))
    with TestClient(app=create_app(settings, run_worker=True), base_url=settings.base_url) as client:
        early = client.get("/api/v1/search", params={"q": "guide"})
        assert early.status_code in (200, 503)
        if early.status_code == 503:
            assert early.headers["content-type"].startswith("application/problem+json")
        _ready(client)
        assert _search(client, q="guide OR mentoring OR onboarding")["total"] == total


def test_index_with_an_older_schema_is_rebuilt_in_the_background(settings, admin, tmp_path):
    settings = replace(settings, data_dir=tmp_path)
    with TestClient(app=create_app(settings, run_worker=True), base_url=settings.base_url) as client:
        _ready(client)
        before = _search(client, q="guide OR mentoring OR onboarding")
    # An index written by an earlier release: its generation says schema version 1.
    path = index_path(settings)
    generation = path / (path / "CURRENT").read_text().strip()
    (generation / "SCHEMA").write_text("1\n")
    with TestClient(app=create_app(settings, run_worker=True), base_url=settings.base_url) as client:
        early = client.get("/api/v1/search", params={"q": "guide"})
        assert early.status_code in (200, 503)
        eventually(lambda: (path / "CURRENT").read_text().strip() != generation.name, timeout=30)
        _ready(client)
        after = _search(client, q="guide OR mentoring OR onboarding")
    assert after["total"] == before["total"]
    assert [item["id"] for item in after["items"]] == [item["id"] for item in before["items"]]
    assert [item["snippet_html"] for item in after["items"]] == [item["snippet_html"] for item in before["items"]]
