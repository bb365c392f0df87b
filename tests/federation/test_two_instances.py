"""Two real Kith servers on loopback, peered through KITH_PEERS, talking real HTTP with real signatures."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import postgres
from tests.support.server import KithServer, free_port
from tests.support.wait import eventually

DEADLINE = 15.0


@dataclass
class Side:
    server: KithServer
    token: str

    @property
    def api(self) -> str:
        return f"{self.server.base_url}/api/v1"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.api}{path}", params=params, headers=self.auth, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.api}{path}", json=body, headers=self.auth, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()


@contextlib.contextmanager
def _databases(backend: str) -> Iterator[tuple[str | None, str | None]]:
    if backend == "sqlite":
        yield None, None
        return
    with postgres.fresh_database() as a_url, postgres.fresh_database() as b_url:
        yield a_url, b_url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[Side, Side, dict[str, Any]]]:
    """A starts alone and publishes 200 guides; then A and B start peered, and B must backfill them."""
    with _databases(request.param) as (a_db, b_db):
        a_port, b_port = free_port(), free_port()
        a = KithServer(database_url=a_db, port=a_port)
        b = KithServer(database_url=b_db, port=b_port, env={"KITH_PEERS": f"http://127.0.0.1:{a_port}"})
        try:
            a.start()
            side_a = Side(a, a.token())
            community = side_a.post("/communities", {"slug": "maintainers", "name": "Maintainers", "color": "#aa5500"})
            for n in range(200):
                side_a.post(
                    "/communities/maintainers/guides", {"title": f"Old guide {n}", "body_markdown": f"Body {n}"}
                )
            a.stop()
            a.env["KITH_PEERS"] = f"http://127.0.0.1:{b_port}"
            a.start()
            b.start()
            yield side_a, Side(b, b.token()), community
        finally:
            b.close()
            a.close()


def _peer(side: Side, host: str) -> dict[str, Any] | None:
    return next((p for p in side.get("/federation/peers") if p["host"] == host), None)


def test_peers_follow_each_other(pair):
    a, b, _ = pair
    following = lambda side, other: (_peer(side, other.server.host) or {}).get("state") == "following"  # noqa: E731
    eventually(lambda: following(a, b) and following(b, a), message="peers did not follow each other")
    peer = _peer(b, a.server.host)
    assert peer["followed_back"] is True
    assert peer["base_url"] == a.server.base_url


def test_backfill_brings_every_old_guide(pair):
    a, b, _ = pair
    total = lambda: len(_all(b, "/guides", origin="remote", community=f"maintainers@{a.server.host}"))  # noqa: E731
    eventually(lambda: total() == 200, timeout=120, message="B did not backfill 200 guides")


def test_new_guide_appears_on_peer_with_origin_attribution(pair):
    a, b, community = pair
    guide = a.post("/communities/maintainers/guides", {
        "title": "Welcoming new maintainers", "body_markdown": "# Hello\n\nBe *kind*.", "tags": ["onboarding"],
    })  # fmt: skip
    remote = eventually(lambda: _find(b, guide["uri"]), timeout=5, message="guide did not reach B in 5 s")
    assert remote["local"] is False
    assert remote["origin"] == {
        "instance": a.server.host,
        "uri": guide["uri"],
        "url": guide["url"],
        "former_peer": False,
    }
    assert remote["community"]["uri"] == community["uri"]
    assert remote["community"]["instance"] == a.server.host
    assert remote["community"]["color"] == "#aa5500"
    assert remote["author"]["instance"] == a.server.host
    assert remote["author"]["username"] == "admin"
    assert remote["body_html"] == guide["body_html"]
    assert remote["tags"] == ["onboarding"]
    assert remote["id"] != guide["id"]  # B's own row, never a re-authored copy of A's
    hits = eventually(lambda: b.get("/search", q="welcoming maintainers", origin="remote")["items"], timeout=5)
    assert hits[0]["instance"] == a.server.host and hits[0]["url"] == guide["url"]
    assert hits[0]["community"] == f"maintainers@{a.server.host}"
    forbidden = httpx.patch(f"{b.api}/guides/{remote['id']}", json={"title": "Mine now"}, headers=b.auth)
    assert forbidden.status_code == 403


def test_edit_and_delete_propagate(pair):
    a, b, _ = pair
    guide = a.post("/communities/maintainers/guides", {"title": "Release process", "body_markdown": "v1"})
    eventually(lambda: _find(b, guide["uri"]))
    edited = httpx.patch(f"{a.api}/guides/{guide['id']}", json={"body_markdown": "v2"}, headers=a.auth)
    assert edited.status_code == 200
    eventually(lambda: (_find(b, guide["uri"]) or {}).get("body_markdown") == "v2", message="edit did not arrive")
    assert httpx.delete(f"{a.api}/guides/{guide['id']}", headers=a.auth).status_code == 204
    eventually(lambda: _find(b, guide["uri"]) is None, message="delete did not arrive")


def test_offer_and_community_update_propagate(pair):
    a, b, _ = pair
    offer = a.post("/communities/maintainers/mentorship/offers", {
        "title": "Code review mentoring", "description_markdown": "Let us review together.", "topics": ["review"],
        "format": "group", "capacity": 3, "languages": ["en"],
    })  # fmt: skip
    remote = eventually(lambda: _find(b, offer["uri"], "/mentorship/offers"), message="offer did not arrive")
    assert remote["local"] is False and remote["topics"] == ["review"] and remote["capacity"] == 3
    assert remote["mentor"]["instance"] == a.server.host
    patched = httpx.patch(
        f"{a.api}/communities/maintainers", json={"description": "Keepers of the code"}, headers=a.auth
    )
    assert patched.status_code == 200
    ref = f"maintainers@{a.server.host}"
    eventually(
        lambda: b.get(f"/communities/{ref}")["description"] == "Keepers of the code",
        message="community update did not arrive",
    )
    assert b.get(f"/communities/{ref}")["local"] is False


def _find(side: Side, uri: str, path: str = "/guides") -> dict[str, Any] | None:
    for item in side.get(path, origin="remote", limit=100)["items"]:
        if item["uri"] == uri:
            return item
    return None


def _all(side: Side, path: str, **params: Any) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        page = side.get(path, limit=100, **params, **({"cursor": cursor} if cursor else {}))
        items.extend(page["items"])
        if not (cursor := page["next_cursor"]):
            return items
