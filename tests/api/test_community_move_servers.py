"""A community moved between two real Kith servers on loopback, peered, with real signatures: A exports it, B
imports and links it, A moves it. Afterwards A's Group says where it went, A's pages answer 301 to B's (each guide
to its own new page), writes to it on A are refused with a pointer, and move-status on both sides lists the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import postgres
from tests.support.server import KithServer, ServerError, free_port
from tests.support.wait import eventually
from tests.web.conftest import sign_in

AS2 = {"Accept": "application/activity+json"}


@dataclass
class Side:
    server: KithServer
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.server.base_url}{path}", headers=headers, timeout=30, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == status, response.text
        return response.json()


@dataclass
class Moved:
    a: Side
    b: Side
    old: dict[str, Any]  # the community on A
    new: dict[str, Any]  # the imported community on B
    guides: list[dict[str, Any]]  # A's guides
    offer: dict[str, Any]  # A's offer
    refused: httpx.Response  # the move attempted before B claimed the community
    refused_state: dict[str, Any]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def moved(request: pytest.FixtureRequest) -> Iterator[Moved]:
    with postgres.database_for(request.param) as a_db, postgres.database_for(request.param) as b_db:
        a_port, b_port = free_port(), free_port()
        a = KithServer(database_url=a_db, port=a_port, env={"KITH_PEERS": f"http://127.0.0.1:{b_port}"})
        b = KithServer(database_url=b_db, port=b_port, env={"KITH_PEERS": f"http://127.0.0.1:{a_port}"})
        try:
            a.start(), b.start()
            yield _move(Side(a, a.token()), Side(b, b.token()))
        finally:
            b.close()
            a.close()


def _move(a: Side, b: Side) -> Moved:
    old = a.ok("POST", "/api/v1/communities", 201, json={"slug": "movers", "name": "Movers", "color": "#226644"})
    guides = [
        a.ok("POST", "/api/v1/communities/movers/guides", 201, json={"title": f"Box {n}", "body_markdown": f"# {n}"})
        for n in range(3)
    ]
    offer = a.ok(
        "POST", "/api/v1/communities/movers/mentorship/offers", 201,
        json={"title": "Lifting", "description_markdown": "Knees.", "topics": ["moving"], "format": "group",
              "capacity": 3},
    )  # fmt: skip
    for side, other in ((a, b), (b, a)):
        eventually(lambda side=side, other=other: _following(side, other), timeout=60, message="peers did not follow")
    archive = a.call("GET", "/api/v1/communities/movers/export").content
    new = b.ok("POST", "/api/v1/communities/import", 201, content=archive, headers={"Content-Type": "application/gzip"})
    # Before B claims it, the move is refused and nothing changes.
    refused = a.call("POST", "/api/v1/communities/movers/move", json={"target": new["uri"]})
    refused_state = a.ok("GET", "/api/v1/communities/movers")
    b.ok("PATCH", f"/api/v1/communities/{new['slug']}", json={"also_known_as": [old["uri"]]})
    a.ok("POST", "/api/v1/communities/movers/move", 202, json={"target": new["uri"]})
    return Moved(a, b, old, new, guides, offer, refused, refused_state)


def _following(side: Side, other: Side) -> bool:
    peers = side.ok("GET", "/api/v1/federation/peers")
    return any(p["host"] == other.server.host and p["state"] == "following" and p["followed_back"] for p in peers)


def _guide_on_b(moved: Moved, old_uri: str) -> dict[str, Any]:
    items = moved.b.ok("GET", "/api/v1/guides", params={"community": moved.new["slug"], "origin": "local"})["items"]
    return next(g for g in items if g["moved_from"] == old_uri)


def test_a_move_is_refused_until_the_new_home_claims_the_community(moved: Moved):
    assert moved.refused.status_code == 422
    assert moved.refused.headers["content-type"].startswith("application/problem+json")
    assert "does not claim" in moved.refused.json()["detail"]
    assert moved.refused_state["moved_to"] is None


def test_the_old_group_says_where_it_moved(moved: Moved):
    community = moved.a.ok("GET", "/api/v1/communities/movers")
    assert community["moved_to"] == moved.new["uri"] and community["moved_at"]
    group = moved.a.ok("GET", "/c/movers", headers=AS2)
    assert group["movedTo"] == moved.new["uri"]
    # The new home names the old Group; each moved entry names its old uri.
    assert moved.b.ok("GET", f"/c/{moved.new['slug']}", headers=AS2)["alsoKnownAs"] == [moved.old["uri"]]
    new_guide = _guide_on_b(moved, moved.guides[0]["uri"])
    article = moved.b.ok("GET", f"/guides/{new_guide['id']}", headers=AS2)
    assert article["formerUri"] == moved.guides[0]["uri"]


def test_the_move_is_in_the_outbox_as_the_spec_says(moved: Moved):
    items = moved.a.ok("GET", "/c/movers/outbox", params={"page": "true"}, headers=AS2)["orderedItems"]
    [move] = [item for item in items if item["type"] == "Move"]
    assert move["actor"] == move["object"] == moved.old["uri"]
    assert move["target"] == moved.new["uri"]
    assert move["cc"] == [f"{moved.old['uri']}/followers"]


def test_each_old_entry_learns_its_new_uri(moved: Moved):
    old_uri = moved.guides[1]["uri"]
    new_guide = _guide_on_b(moved, old_uri)
    article = eventually(
        lambda: (doc := moved.a.ok("GET", f"/guides/{moved.guides[1]['id']}", headers=AS2)).get("movedTo")
        == new_guide["uri"] and doc,
        timeout=30, message="A did not learn the guide's new uri",
    )  # fmt: skip
    assert article["id"] == old_uri  # still answered, for peers to check


def test_the_old_pages_answer_301_to_the_new_ones(moved: Moved):
    base = moved.a.server.base_url
    page = httpx.get(f"{base}/c/movers", follow_redirects=False)
    assert page.status_code == 301 and page.headers["location"] == moved.new["uri"]
    assert "Accept" in page.headers["vary"]  # the same URL answers ActivityPub clients with the Group itself
    new_guide = _guide_on_b(moved, moved.guides[2]["uri"])
    guide_page = eventually(
        lambda: (r := httpx.get(moved.guides[2]["url"], follow_redirects=False)).headers.get("location")
        == new_guide["url"] and r,
        timeout=30, message="A's guide page did not redirect to the guide's new page",
    )  # fmt: skip
    assert guide_page.status_code == 301
    # The guide's id, opened in a browser, lands there too; so do its history and its community's feed.
    assert httpx.get(moved.guides[2]["uri"], follow_redirects=True).url == httpx.URL(new_guide["url"])
    assert (
        httpx.get(f"{moved.guides[2]['url']}/revisions", follow_redirects=False).headers["location"]
        == (new_guide["url"])
    )
    feed = httpx.get(f"{base}/c/movers/feed.atom", follow_redirects=False)
    assert feed.status_code == 301 and feed.headers["location"] == f"{moved.new['uri']}/feed.atom"
    offer_page = httpx.get(moved.offer["url"], follow_redirects=False)
    assert offer_page.status_code == 301 and offer_page.headers["location"].startswith(moved.b.server.base_url)
    # A page followed to the end shows the community on its new home.
    landed = httpx.get(f"{base}/c/movers", follow_redirects=True)
    assert landed.status_code == 200 and landed.url == httpx.URL(moved.new["url"])


def test_writes_to_the_moved_community_are_refused_with_a_pointer(moved: Moved):
    attempts = [
        ("POST", "/api/v1/communities/movers/guides", {"title": "Late", "body_markdown": "Too late."}),
        ("PATCH", f"/api/v1/guides/{moved.guides[0]['id']}", {"title": "Renamed"}),
        ("PATCH", "/api/v1/communities/movers", {"name": "Renamed"}),
        ("POST", "/api/v1/communities/movers/members", {"username": "admin", "role": "member"}),
        ("PATCH", f"/api/v1/mentorship/offers/{moved.offer['id']}", {"title": "Renamed"}),
        ("POST", "/api/v1/communities/movers/move", {"target": moved.new["uri"]}),
    ]
    for method, path, body in attempts:
        response = moved.a.call(method, path, json=body)
        assert response.status_code == 409, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["moved_to"] == moved.new["uri"], path
    assert moved.a.call("DELETE", f"/api/v1/guides/{moved.guides[0]['id']}").status_code == 409
    assert moved.a.ok("GET", f"/api/v1/guides/{moved.guides[0]['id']}")["title"] == "Box 0"


def test_move_status_lists_the_peers_on_both_sides(moved: Moved):
    notified = eventually(
        lambda: "not yet" not in (out := moved.a.server.cli("community", "move-status", "movers"))
        and "0 still unknown" in out and out,
        timeout=30, message="A never recorded the Move's delivery to B, or the entries' new places",
    )  # fmt: skip
    assert moved.b.server.host in notified and f"moved to {moved.new['uri']}" in notified
    assert "entries: 4 redirect to their new page" in notified
    # B saw A's instance actor fetch the linked Group (A checked the link): B counts A as acknowledged.
    acknowledged = moved.b.server.cli("community", "move-status", moved.new["slug"])
    assert "acknowledged" in acknowledged and moved.a.server.host in acknowledged
    assert "not yet" not in acknowledged


def test_the_admin_federation_page_shows_the_move(moved: Moved):
    eventually(
        lambda: moved.a.ok("GET", "/api/v1/communities/movers/move")["peers"][0]["notified_at"],
        timeout=30, message="A never recorded the Move's delivery to B",
    )  # fmt: skip
    old_page, new_page = _moves_section(moved.a), _moves_section(moved.b)
    assert f'Moved to <a href="{moved.new["uri"]}"' in old_page
    assert "Notified" in old_page and moved.b.server.host in old_page and "not yet" not in old_page
    assert "Acknowledged" in new_page and moved.a.server.host in new_page and "not yet" not in new_page


def _moves_section(side: Side) -> str:
    """The admin federation page's part about moved communities, as the instance's admin sees it."""
    with httpx.Client(base_url=side.server.base_url, timeout=30) as browser:
        sign_in(browser, "admin", side.server.admin_password)  # type: ignore[arg-type]
        page = browser.get("/admin/federation")
    assert page.status_code == 200
    return page.text.split('id="moves"', 1)[1]


def test_the_command_line_moves_a_community_too(moved: Moved, tmp_path):  # type: ignore[no-untyped-def]
    a, b = moved.a, moved.b
    a.ok("POST", "/api/v1/communities", 201, json={"slug": "walkers", "name": "Walkers"})
    a.ok("POST", "/api/v1/communities/walkers/guides", 201, json={"title": "Boots", "body_markdown": "Dry."})
    archive = tmp_path / "walkers.tar.gz"
    a.server.cli("community", "export", "walkers", "-o", str(archive))
    b.server.cli("community", "import", str(archive))
    target = f"{b.server.base_url}/c/walkers"
    with pytest.raises(ServerError, match="does not claim to be"):
        a.server.cli("community", "move", "walkers", target)
    b.ok("PATCH", "/api/v1/communities/walkers", json={"also_known_as": [f"{a.server.base_url}/c/walkers"]})
    a.server.cli("community", "move", "walkers", target)
    assert a.ok("GET", "/api/v1/communities/walkers")["moved_to"] == target
    with pytest.raises(ServerError, match="has moved to"):
        a.server.cli("community", "move", "walkers", target)
    status = eventually(
        lambda: "not yet" not in (out := a.server.cli("community", "move-status", "walkers")) and out, timeout=30
    )
    assert f"walkers moved to {target}" in status and b.server.host in status
