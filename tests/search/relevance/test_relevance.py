"""The judged set: everyday queries over a fixed corpus, through the API with the worker indexing.

Each query names the guides of which one must be in the top 3 (corpus.py). Runs with the whoosh backend on
SQLite and PostgreSQL and with the postgres backend on PostgreSQL: the guides are created through the API
(indexed by the worker, or by their own write), and searched with GET /api/v1/search.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import SearchSettings, Settings
from tests.conftest import BACKENDS, People, migrated_database
from tests.search.relevance.corpus import (
    COMMUNITIES,
    GUIDES,
    JUDGMENTS,
    content_words_held,
    ndcg_at_10,
    success_at_3,
)
from tests.support.limits import ROOMY
from tests.support.wait import eventually

SUCCESS_AT_3 = 0.9
# (database, search backend): the postgres backend needs PostgreSQL.
SETUPS = [(database, "whoosh") for database in BACKENDS] + [("postgresql", "postgres")]


@pytest.fixture(scope="module", params=SETUPS, ids=["-".join(setup) for setup in SETUPS])
def judged(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict]]:
    """A server whose database holds the corpus alone, and guide id -> corpus key."""
    database, backend = request.param
    directory: Path = tmp_path_factory.mktemp("relevance")
    with migrated_database(database, directory) as url:
        settings = Settings(
            base_url="http://127.0.0.1:8000",
            instance_name="Kith Relevance",
            data_dir=directory / "data",
            database_url=url,
            secret_key="test-secret",
            rate_limits=ROOMY,  # 67 queries, twice over, from one test client
            search=SearchSettings(backend=backend),
        )
        admin = People(settings).make("admin", admin=True)
        with TestClient(app=create_app(settings, run_worker=True), base_url=settings.base_url) as client:
            for slug, name in COMMUNITIES.items():
                response = client.post("/api/v1/communities", json={"slug": slug, "name": name}, headers=admin.auth)
                assert response.status_code == 201, response.text
            keys = {}
            for guide in GUIDES:
                response = client.post(
                    f"/api/v1/communities/{guide.community}/guides",
                    json={"title": guide.title, "summary": guide.summary, "body_markdown": guide.body,
                          "tags": list(guide.tags)},
                    headers=admin.auth,
                )  # fmt: skip
                assert response.status_code == 201, response.text
                keys[response.json()["id"]] = guide.key

            def indexed() -> bool:
                response = client.get("/api/v1/search", params={"limit": 1})
                return response.status_code == 200 and response.json()["total"] == len(GUIDES)

            eventually(indexed, timeout=60, interval=0.1)
            yield client, keys


def _ranked(client: TestClient, keys: dict, query: str) -> tuple[list[str], dict]:
    response = client.get("/api/v1/search", params={"q": query, "limit": 10})
    assert response.status_code == 200, (query, response.text)
    page = response.json()
    return [keys[item["id"]] for item in page["items"]], page


def test_the_right_guide_is_in_the_top_three_for_nine_queries_in_ten(judged: tuple[TestClient, dict]) -> None:
    client, keys = judged
    assert len(JUDGMENTS) >= 60
    misses = []
    ndcg = 0.0
    for query, expected in JUDGMENTS:
        ranked, _ = _ranked(client, keys, query)
        ndcg += ndcg_at_10(ranked, expected)
        if not success_at_3(ranked, expected):
            misses.append((query, expected, ranked[:3]))
    score = 1 - len(misses) / len(JUDGMENTS)
    assert score >= SUCCESS_AT_3, f"success@3 {score:.2f}, nDCG@10 {ndcg / len(JUDGMENTS):.2f}; misses: {misses}"


def test_no_query_finds_nothing_when_a_guide_holds_its_words(judged: tuple[TestClient, dict]) -> None:
    client, keys = judged
    empty = [query for query, _ in JUDGMENTS if content_words_held(query) and not _ranked(client, keys, query)[0]]
    assert empty == []


def test_corrections_and_relaxations_are_said(judged: tuple[TestClient, dict]) -> None:
    client, keys = judged
    ranked, page = _ranked(client, keys, "mentorhsip")
    assert page["corrected"] is True and page["suggestion"] == "mentorship" and ranked[0] == "mentorship"
    ranked, page = _ranked(client, keys, "how to handle conflict between contributors")
    assert page["relaxed"] is True and "conflict" in ranked[:3]
    _, page = _ranked(client, keys, "code of conduct")
    assert page["corrected"] is False and page["relaxed"] is False and page["suggestion"] is None


def test_the_page_says_what_it_searched(judged: tuple[TestClient, dict]) -> None:
    client, _ = judged
    page = client.get("/search", params={"q": "mentorhsip"})
    assert page.status_code == 200
    assert "Showing results for" in page.text and "Starting a mentorship programme" in page.text
    relaxed = client.get("/search", params={"q": "how to handle conflict between contributors"})
    assert "Nothing holds every word" in relaxed.text
    # Stray syntax is searched as words, never an error.
    stray = client.get("/search", params={"q": '"(the readme'}, headers={"HX-Request": "true"})
    assert stray.status_code == 200 and "The art of the README" in stray.text and "could not be read" not in stray.text
