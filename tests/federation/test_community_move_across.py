"""A community moves between three real Kith servers on loopback, on SQLite and PostgreSQL.

A community on A is federated to B and C; C adapts one of its guides. A exports it, B imports it, links its
community to A's Group, and A moves it to B. Afterwards C holds every guide exactly once, attributed to B's Group
(the same entries it held, not new ones), search on C finds each once, A's old guide page answers 301 to B's,
an edit on B reaches C as an update of the same entry, and B, which held A's copies too, shows each guide once.
Last, a second community moves while C is stopped, and C catches up when it starts again.
"""

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

GUIDES = 4
DEADLINE = 60.0


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
        response = httpx.get(f"{self.api}{path}", params=params, headers=self.auth, timeout=30)
        response.raise_for_status()
        return response.json()

    def send(self, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.api}{path}", json=body, headers=self.auth, timeout=60, **kwargs)

    def guides(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.get("/guides", limit=100, **params)["items"])


@dataclass
class World:
    a: Side
    b: Side
    c: Side

    def community(self, side: Side, slug: str) -> str:
        return f"{side.server.base_url}/c/{slug}"


@contextlib.contextmanager
def _databases(backend: str) -> Iterator[tuple[str | None, ...]]:
    if backend == "sqlite":
        yield None, None, None
        return
    with postgres.fresh_database() as a, postgres.fresh_database() as b, postgres.fresh_database() as c:
        yield a, b, c


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with _databases(request.param) as databases:
        ports = [free_port() for _ in databases]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        servers = [
            KithServer(database_url=database, port=port, env={"KITH_PEERS": ",".join(u for u in urls if u != url)})
            for database, port, url in zip(databases, ports, urls, strict=True)
        ]
        try:
            for server in servers:
                server.start()
            a, b, c = (Side(server, server.token()) for server in servers)
            world = World(a, b, c)
            eventually(lambda: all(_follows(x, y) for x in (a, b, c) for y in (a, b, c) if x is not y),
                       timeout=DEADLINE, message="the three servers did not follow each other")  # fmt: skip
            yield world
        finally:
            for server in servers:
                server.close()


def _follows(side: Side, other: Side) -> bool:
    return any(
        p["host"] == other.server.host and p["state"] == "following" and p["followed_back"]
        for p in side.get("/federation/peers")
    )


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201, 202), response.text
    return dict(response.json())


def _community_on_a(world: World, slug: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    a = world.a
    _created(a.send("POST", "/communities", {"slug": slug, "name": slug.title()}))
    guides = [
        _created(
            a.send(
                "POST",
                f"/communities/{slug}/guides",
                {
                    "title": f"{slug.title()} crossing {n}",
                    "body_markdown": f"How to cross the {slug}, part {n}.",
                    "license": "CC-BY-SA-4.0",
                },
            )
        )  # fmt: skip
        for n in range(GUIDES)
    ]
    offer = _created(a.send("POST", f"/communities/{slug}/mentorship/offers", {
        "title": f"{slug.title()} ferry lessons", "description_markdown": "Rowing, mostly.",
        "topics": ["rowing"], "format": "one_to_one", "capacity": 2,
    }))  # fmt: skip
    for side in (world.b, world.c):
        for guide in guides:
            eventually(lambda side=side, guide=guide: _copy(side, guide["uri"]), timeout=DEADLINE,
                       message=f"{guide['uri']} never reached {side.server.host}")  # fmt: skip
    return guides, offer


def _copy(side: Side, uri: str) -> dict[str, Any] | None:
    return next((g for g in side.guides() if g["uri"] == uri), None)


def _move(world: World, slug: str) -> None:
    """Export from A, import on B, link, move: what the operators of A and B do."""
    archive = httpx.get(f"{world.a.api}/communities/{slug}/export", headers=world.a.auth, timeout=60)
    assert archive.status_code == 200, archive.text
    imported = httpx.post(
        f"{world.b.api}/communities/import", content=archive.content,
        headers={**world.b.auth, "Content-Type": "application/gzip"}, timeout=60,
    )  # fmt: skip
    assert imported.status_code == 201, imported.text
    old_group = world.community(world.a, slug)
    _created(world.b.send("PATCH", f"/communities/{slug}", {"also_known_as": [old_group]}))
    _created(world.a.send("POST", f"/communities/{slug}/move", {"target": world.community(world.b, slug)}))


def _moved_guides_on(side: Side, world: World, slug: str) -> list[dict[str, Any]]:
    return [g for g in side.guides() if g["title"].startswith(f"{slug.title()} crossing")]


def _all_under_b(world: World, side: Side, slug: str) -> list[dict[str, Any]] | None:
    guides = _moved_guides_on(side, world, slug)
    homes = {g["community"]["uri"] for g in guides}
    if len(guides) == GUIDES and homes == {world.community(world.b, slug)}:
        return guides
    return None


@pytest.fixture(scope="module")
def river(world: World) -> dict[str, Any]:
    """The community moved while every server is up; C's rows before the move, and C's adaptation."""
    guides, offer = _community_on_a(world, "river")
    _created(world.c.send("POST", "/communities", {"slug": "delta", "name": "Delta"}))
    adaptation = _created(
        world.c.send("POST", "/communities/delta/guides", {"derived_from": guides[0]["uri"], "title": "Delta crossing"})
    )
    before = {g["uri"]: _copy(world.c, g["uri"]) for g in guides}
    _move(world, "river")
    eventually(lambda: _all_under_b(world, world.c, "river"), timeout=DEADLINE,
               message="C did not re-point river's guides to B")  # fmt: skip
    return {"guides": guides, "offer": offer, "before": before, "adaptation": adaptation}


def test_c_holds_every_guide_exactly_once_under_bs_group(world, river):
    moved = _moved_guides_on(world.c, world, "river")
    assert len(moved) == GUIDES
    assert {g["id"] for g in moved} == {copy["id"] for copy in river["before"].values()}  # the same entries
    assert all(g["origin"]["instance"] == world.b.server.host for g in moved)
    assert {g["moved_from"] for g in moved} == {g["uri"] for g in river["guides"]}
    assert not [g for g in world.c.guides(instance=world.a.server.host) if g["title"].startswith("River")]


def test_c_holds_the_offer_once_under_bs_group(world, river):
    def moved() -> list[dict[str, Any]] | None:
        items = world.c.get("/mentorship/offers", limit=100)["items"]
        offers = [o for o in items if o["title"] == "River ferry lessons"]
        return offers if offers and offers[0]["community"]["instance"] == world.b.server.host else None

    offers = eventually(moved, timeout=DEADLINE, message="the offer did not move on C")
    assert len(offers) == 1 and offers[0]["moved_from"] == river["offer"]["uri"]


def test_search_on_c_finds_each_moved_guide_once_under_b(world, river):
    for guide in river["guides"]:

        def hits(title: str = guide["title"]) -> list[dict[str, Any]] | None:
            response = httpx.get(f"{world.c.api}/search", params={"q": f'"{title}"', "type": "guide"}, timeout=30)
            found = [h for h in response.json().get("items", []) if h["title"] == title] if response.is_success else []
            return found if len(found) == 1 and found[0]["instance"] == world.b.server.host else None

        eventually(hits, timeout=DEADLINE, message=f"search on C did not find {guide['title']!r} once, under B")


def test_the_adaptation_on_c_names_the_guide_on_b(world, river):
    new_uri = _copy_by_former(world.c, river["guides"][0]["uri"])["uri"]
    adaptation = world.c.get(f"/guides/{river['adaptation']['id']}")
    assert adaptation["derived_from"] == new_uri
    assert adaptation["upstream"]["instance"] == world.b.server.host


def test_b_the_new_home_shows_each_guide_once(world, river):
    on_b = eventually(lambda: (g := _moved_guides_on(world.b, world, "river")) and len(g) == GUIDES and g,
                      timeout=DEADLINE, message="B still shows A's copies beside its own")  # fmt: skip
    assert all(g["local"] for g in on_b)
    community = world.b.get("/communities/river")
    assert community["moved_from"] == world.community(world.a, "river")


def test_as_old_guide_page_answers_301_to_bs(world, river):
    old = river["guides"][1]
    new = eventually(lambda: _copy_by_former(world.b, old["uri"]), timeout=DEADLINE)

    def redirect() -> str | None:
        response = httpx.get(old["url"], follow_redirects=False, timeout=30)
        return response.headers.get("location") if response.status_code == 301 else None

    location = eventually(lambda: redirect() == new["url"] and new["url"], timeout=DEADLINE,
                          message="A's old guide page does not redirect to B's")  # fmt: skip
    assert location == new["url"]


def test_an_edit_on_b_reaches_c_as_an_update_of_the_same_entry(world, river):
    old = river["guides"][2]
    on_b = _copy_by_former(world.b, old["uri"])
    etag = httpx.get(f"{world.b.api}/guides/{on_b['id']}", headers=world.b.auth, timeout=30).headers["etag"]
    edited = httpx.patch(
        f"{world.b.api}/guides/{on_b['id']}", json={"title": "River crossing, revised on B"},
        headers={**world.b.auth, "If-Match": etag}, timeout=30,
    )  # fmt: skip
    assert edited.status_code == 200, edited.text
    before = river["before"][old["uri"]]
    eventually(lambda: world.c.get(f"/guides/{before['id']}")["title"] == "River crossing, revised on B",
               timeout=DEADLINE, message="B's edit did not reach C's row of the guide")  # fmt: skip
    assert len([g for g in world.c.guides() if g["title"] == "River crossing, revised on B"]) == 1


def test_c_down_during_a_move_catches_up_when_it_starts_again(world):
    # Last in the module: it stops C.
    guides, _ = _community_on_a(world, "lake")
    before = {g["uri"]: _copy(world.c, g["uri"]) for g in guides}
    world.c.server.stop()
    try:
        _move(world, "lake")
    finally:
        world.c.server.start()
    moved = eventually(lambda: _all_under_b(world, world.c, "lake"), timeout=3 * DEADLINE,
                       message="C did not catch up with the move it missed")  # fmt: skip
    assert {g["id"] for g in moved} == {copy["id"] for copy in before.values() if copy}


def _copy_by_former(side: Side, former_uri: str) -> dict[str, Any] | None:
    return next((g for g in side.guides() if g.get("moved_from") == former_uri), None)
