"""The whoosh and postgres backends answer the documented query forms alike, over one PostgreSQL database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from litestar.testing import TestClient

from server.accounts.schemas import RemotePerson
from server.app import create_app
from server.db import create_engine, create_sessionmaker
from server.guides.schemas import RemoteGuide
from server.guides.service import GuideService
from server.models import Community
from server.search.backend import make_backend
from server.settings import SearchSettings
from tests.support.wait import eventually

PEER = "peer.example"


@pytest.fixture(scope="module")
def apps(settings, tmp_path_factory) -> Iterator[dict[str, TestClient]]:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the postgres search backend needs a PostgreSQL database")
    clients = {}
    for backend in ("whoosh", "postgres"):
        configured = replace(
            settings, data_dir=tmp_path_factory.mktemp(f"search-{backend}"), search=SearchSettings(backend=backend)
        )
        clients[backend] = TestClient(app=create_app(configured, run_worker=backend == "whoosh"))
        clients[backend].__enter__()
        clients[backend].app.state.test_settings = configured
    yield clients
    for client in clients.values():
        client.__exit__(None, None, None)


def _search(client: TestClient, **params) -> dict:
    response = client.get("/api/v1/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _titles(client: TestClient, **params) -> set[str]:
    return {item["title"] for item in _search(client, limit=100, **params)["items"]}


async def _add_remote_guide(settings, community_slug: str, title: str) -> None:
    """A peer's guide in a peer's community, stored as federation stores it."""
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            uri = f"https://{PEER}/c/{community_slug}"
            session.add(Community(uri=uri, url=uri, slug=community_slug, name="Weavers", local=False, instance=PEER))
            await session.flush()
            guide_uri = f"https://{PEER}/guides/{uuid.uuid4()}"
            await GuideService(session, settings).apply_remote(
                RemoteGuide(
                    uri=guide_uri, instance=PEER, url=guide_uri, community_uris=[uri], audience=[uri],
                    author=RemotePerson(uri=f"https://{PEER}/u/ada", instance=PEER, username="ada"),
                    title=title, summary="", body_markdown="Warp and weft.", body_html="<p>Warp and weft.</p>",
                    tags=["craft"], license="CC-BY-4.0",
                )
            )  # fmt: skip
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def corpus(apps, client, admin) -> dict[str, str]:
    """One community's entries, written once; both backends search the same rows."""
    slug = f"s-{uuid.uuid4().hex[:8]}"
    assert client.post("/api/v1/communities", json={"slug": slug, "name": "Searchers"}, headers=admin.auth).is_success
    base = f"/api/v1/communities/{slug}"
    guides = [
        ("Python packaging guide", "How to publish wheels", "Build a wheel and upload it.", ["python", "packaging"]),
        ("Julia notebooks", "", "Notebooks with Pluto.", ["julia"]),
        ("Python notebooks in practice", "", "Notebooks for teaching.", ["python", "notebooks"]),
        ("Code review etiquette", "", "Be kind when you review pull requests.", ["review"]),
    ]
    for title, summary, body, tags in guides:
        guide = {"title": title, "summary": summary, "body_markdown": body, "tags": tags}
        assert client.post(f"{base}/guides", json=guide, headers=admin.auth).is_success
    offer = {"title": "Python mentoring", "description_markdown": "Weekly pairing.", "topics": ["python"],
             "format": "group", "capacity": 2}  # fmt: skip
    assert client.post(f"{base}/mentorship/offers", json=offer, headers=admin.auth).is_success
    draft = {"title": "Python secrets draft", "body_markdown": "hidden", "status": "draft"}
    assert client.post(f"{base}/guides", json=draft, headers=admin.auth).is_success
    deleted = client.post(f"{base}/guides", json={"title": "Python deleted guide", "body_markdown": "gone"},
                          headers=admin.auth).json()  # fmt: skip
    assert client.delete(f"/api/v1/guides/{deleted['id']}", headers=admin.auth).is_success
    weavers = f"weavers-{uuid.uuid4().hex[:6]}"
    asyncio.run(_add_remote_guide(apps["whoosh"].app.state.test_settings, weavers, "Weaving for beginners"))
    whoosh = apps["whoosh"]
    # A new whoosh index is built at start-up; until then searches answer 503.
    eventually(lambda: whoosh.get("/api/v1/search", params={"q": "x"}).status_code == 200, timeout=30)
    eventually(
        lambda: _search(whoosh, q="python OR julia OR review OR deleted", community=slug)["total"] == 5, timeout=30
    )
    eventually(lambda: _search(whoosh, q="weaving")["total"] >= 1, timeout=30)
    return {"community": slug, "remote": f"{weavers}@{PEER}"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("python notebooks", {"Python notebooks in practice"}),
        ('"review pull requests"', {"Code review etiquette"}),
        ("python -notebooks", {"Python packaging guide", "Python mentoring"}),
        ("python NOT notebooks", {"Python packaging guide", "Python mentoring"}),
        ("julia OR etiquette", {"Julia notebooks", "Code review etiquette"}),
        ("tag:python", {"Python packaging guide", "Python notebooks in practice"}),
        ("type:offer python", {"Python mentoring"}),
        ("wheel", {"Python packaging guide"}),
        ("notebo", {"Julia notebooks", "Python notebooks in practice"}),
        ("etiquette revi", {"Code review etiquette"}),
        ("secrets", set()),
        ("deleted", set()),
    ],
)
def test_documented_query_forms_find_the_same_entries(apps, corpus, query, expected):
    for client in apps.values():
        assert _titles(client, q=query, community=corpus["community"]) == expected


def test_totals_and_facets_are_equal(apps, corpus):
    pages = [_search(client, q="python", community=corpus["community"]) for client in apps.values()]
    assert pages[0]["total"] == pages[1]["total"] == 3
    assert pages[0]["facets"] == pages[1]["facets"]
    assert pages[1]["facets"]["type"] == {"guide": 2, "offer": 1}
    assert pages[1]["facets"]["tag"] == {"python": 2, "notebooks": 1, "packaging": 1}
    browsing = [_search(client, tag="python", community=corpus["community"]) for client in apps.values()]
    assert browsing[0]["total"] == browsing[1]["total"] == 2
    assert browsing[0]["facets"] == browsing[1]["facets"]


def test_cursor_pages_through_every_match(apps, corpus):
    for client in apps.values():
        seen, cursor = [], None
        while True:
            params = {"q": "python", "community": corpus["community"], "limit": 2}
            page = _search(client, **params, **({"cursor": cursor} if cursor else {}))
            seen += [item["id"] for item in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert len(seen) == len(set(seen)) == 3


def test_snippets_mark_the_query_words(apps, corpus):
    for client in apps.values():
        snippet = _search(client, q="wheel", community=corpus["community"])["items"][0]["snippet_html"]
        assert "<mark>wheel</mark>" in snippet, snippet


def test_remote_entries_are_found_with_their_origin(apps, corpus):
    found = [_search(client, q="weaving", instance=PEER)["items"] for client in apps.values()]
    for items in found:
        assert [(i["title"], i["instance"], i["community"]) for i in items] == [
            ("Weaving for beginners", PEER, corpus["remote"])
        ]
    assert _search(apps["postgres"], q="weaving", origin="remote")["total"] == 1


def test_postgres_entry_is_searchable_when_its_write_commits(apps, corpus, admin):
    client = apps["postgres"]
    word = f"ibis{uuid.uuid4().hex[:6]}"
    base = f"/api/v1/communities/{corpus['community']}"
    guide = client.post(f"{base}/guides", json={"title": f"Field notes {word}", "body_markdown": "b"},
                        headers=admin.auth).json()  # fmt: skip
    # No worker runs beside this app: the write's own transaction made it searchable.
    assert [item["id"] for item in _search(client, q=word)["items"]] == [guide["id"]]
    client.patch(f"/api/v1/guides/{guide['id']}", json={"status": "draft"}, headers=admin.auth)
    assert _search(client, q=word)["total"] == 0


def test_postgres_rebuild_and_stats(apps, corpus):
    settings = apps["postgres"].app.state.test_settings

    async def run() -> tuple[int, dict]:
        engine = create_engine(settings.database_url)
        try:
            backend = make_backend(settings, engine)
            return await backend.rebuild(create_sessionmaker(engine)), await backend.stats()
        finally:
            await engine.dispose()

    rebuilt, stats = asyncio.run(run())
    assert rebuilt >= 6 and stats == {"backend": "postgres", "documents": stats["documents"]}
    assert 6 <= stats["documents"] <= rebuilt
    assert _titles(apps["postgres"], q="python notebooks", community=corpus["community"]) == {
        "Python notebooks in practice"
    }


def test_search_page_answers_from_the_postgres_backend(apps, corpus):
    page = apps["postgres"].get("/search", params={"q": "wheel", "community": corpus["community"]})
    assert page.status_code == 200
    assert "Python packaging guide" in page.text and "<mark>wheel</mark>" in page.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # English stemming, on both backends: "publishing" finds "publish".
        ("publishing wheels", {"Python packaging guide"}),
        ("pythn", {"Python packaging guide", "Python notebooks in practice", "Python mentoring"}),
        ("julia pluto teaching", {"Julia notebooks", "Python notebooks in practice"}),
    ],
)
def test_analysis_corrections_and_relaxations_are_the_same(apps, corpus, query, expected):
    pages = [_search(client, q=query, community=corpus["community"], limit=100) for client in apps.values()]
    for page in pages:
        assert {item["title"] for item in page["items"]} == expected
    assert [(p["total"], p["suggestion"], p["corrected"], p["relaxed"]) for p in pages[1:]] == [
        (p["total"], p["suggestion"], p["corrected"], p["relaxed"]) for p in pages[:1]
    ]


def test_a_drafts_words_are_never_suggested(apps, corpus, admin):
    word = f"zebu{uuid.uuid4().hex[:4]}"
    typo = word[:-1] + ("a" if word[-1] != "a" else "b")
    draft = {"title": f"Notes {word}", "body_markdown": "b", "status": "draft"}
    assert (
        apps["postgres"]
        .post(f"/api/v1/communities/{corpus['community']}/guides", json=draft, headers=admin.auth)
        .is_success
    )
    page = _search(apps["postgres"], q=typo)
    assert page["suggestion"] is None and page["total"] == 0
