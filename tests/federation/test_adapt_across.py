"""Adapting a peer's guide, between two real Kith servers on loopback: the adaptation's attribution, the upstream's
edits arriving as news, merging them with and without conflicts, and the origin's list of its adaptations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.federation.test_two_instances import _databases
from tests.support.server import KithServer, free_port
from tests.support.wait import eventually
from tests.web.conftest import csrf_token

TEXT = "# Release checklist\n\n1. Tag the release\n2. Write the notes\n3. Announce it\n\nThanks for helping.\n"
AS2 = "application/activity+json"


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

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.api}{path}", json=body, headers=self.auth, timeout=10)

    def patch(self, guide: dict[str, Any], **fields: Any) -> httpx.Response:
        url = f"{self.api}/guides/{guide['id']}"
        etag = httpx.get(url, headers=self.auth, timeout=10).headers["etag"]
        return httpx.patch(url, json=fields, headers={**self.auth, "If-Match": etag}, timeout=10)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[Side, Side]]:
    """A (the origin) and B (the adopters), peered with each other, each with a community."""
    with _databases(request.param) as (a_db, b_db):
        a_port, b_port = free_port(), free_port()
        a = KithServer(database_url=a_db, port=a_port, env={"KITH_PEERS": f"http://127.0.0.1:{b_port}"})
        b = KithServer(database_url=b_db, port=b_port, env={"KITH_PEERS": f"http://127.0.0.1:{a_port}"})
        try:
            a.start()
            b.start()
            side_a, side_b = Side(a, a.token()), Side(b, b.token())
            for side, slug, name in ((side_a, "origin", "Origin"), (side_b, "adopters", "Adopters")):
                response = side.post("/communities", {"slug": slug, "name": name})
                assert response.status_code == 201, response.text

            def following(side: Side, other: Side) -> bool:
                peers = side.get("/federation/peers")
                return any(p["host"] == other.server.host and p["state"] == "following" for p in peers)

            eventually(lambda: following(side_a, side_b) and following(side_b, side_a), timeout=30)
            yield side_a, side_b
        finally:
            b.close()
            a.close()


def _signed_in_page(side: Side, path: str) -> str:
    """The page as the instance's admin sees it in a browser: signed in through the login form."""
    with httpx.Client(base_url=side.server.base_url, timeout=10) as browser:
        form = {"username": "admin", "password": side.server.admin_password}
        token = csrf_token(browser.get("/login").text)
        assert browser.post("/login", data={**form, "_csrf_token": token}).status_code in (200, 303)
        return browser.get(path).text


def _copy_on(side: Side, uri: str) -> dict[str, Any] | None:
    return next((g for g in side.get("/guides", origin="remote", limit=100)["items"] if g["uri"] == uri), None)


def _publish_on_a(a: Side, title: str, **fields: Any) -> dict[str, Any]:
    body = {"title": title, "body_markdown": TEXT, "license": "CC-BY-SA-4.0", **fields}
    response = a.post("/communities/origin/guides", body)
    assert response.status_code == 201, response.text
    return response.json()


def _adapt_on_b(a: Side, b: Side, original: dict[str, Any]) -> dict[str, Any]:
    eventually(lambda: _copy_on(b, original["uri"]), message="the guide did not reach B")
    response = b.post("/communities/adopters/guides", {"derived_from": original["uri"], "status": "published"})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_peers_guide_is_adapted_with_attribution_in_the_api_and_as2(pair):
    a, b = pair
    original = _publish_on_a(a, "Release checklist")
    adapted = _adapt_on_b(a, b, original)
    assert adapted["license"] == "CC-BY-SA-4.0" and adapted["body_markdown"] == TEXT
    upstream = adapted["upstream"]
    assert upstream["uri"] == original["uri"] and upstream["url"] == original["url"]
    assert upstream["instance"] == a.server.host and upstream["community"] == "Origin"
    assert upstream["title"] == "Release checklist" and upstream["license"] == "CC-BY-SA-4.0"
    assert upstream["base_revision"] == 1 and upstream["changed"] is False
    document = httpx.get(adapted["uri"], headers={"Accept": AS2}, timeout=10).json()
    assert document["derivedFrom"] == original["uri"] and document["license"] == "CC-BY-SA-4.0"
    page = httpx.get(f"{b.server.base_url}/c/adopters/guides/{adapted['slug']}", timeout=10).text
    assert 'aria-label="Attribution"' in page and original["url"] in page and a.server.host in page

    nd = _publish_on_a(a, "Logo rules", license="CC-BY-ND-4.0")
    eventually(lambda: _copy_on(b, nd["uri"]), message="the guide did not reach B")
    refused = b.post("/communities/adopters/guides", {"derived_from": nd["uri"]})
    assert refused.status_code == 422 and "does not allow adaptations" in refused.text


def test_the_origin_lists_the_peers_adaptation(pair):
    a, b = pair
    original = _publish_on_a(a, "Onboarding checklist")
    adapted = _adapt_on_b(a, b, original)

    def listed() -> list[dict[str, Any]]:
        return a.get(f"/guides/{original['id']}")["adaptations"]

    eventually(lambda: listed() != [], message="the adaptation did not reach the origin")
    (entry,) = listed()
    assert entry["uri"] == adapted["uri"] and entry["url"] == adapted["url"]
    assert entry["instance"] == b.server.host and entry["community"]["name"] == "Adopters"
    page = httpx.get(f"{a.server.base_url}/c/origin/guides/{original['slug']}", timeout=10).text
    assert "Adapted by 1 community on 1 instance" in page and adapted["url"] in page


def test_upstream_edits_arrive_and_merge_cleanly_then_with_conflicts(pair):
    a, b = pair
    original = _publish_on_a(a, "Release steps")
    adapted = _adapt_on_b(a, b, original)
    ours = TEXT.replace("Thanks for helping.", "Danke fürs Helfen.")
    assert b.patch(adapted, body_markdown=ours).status_code == 200

    assert (
        a.patch(original, body_markdown=TEXT.replace("3. Announce it", "3. Announce it\n4. Celebrate")).status_code
        == 200
    )
    url = f"/guides/{adapted['id']}"
    eventually(lambda: b.get(url)["upstream"]["changed"], message="B did not hear of the upstream's edit")
    page = _signed_in_page(b, f"/c/adopters/guides/{adapted['slug']}")
    assert "The upstream has changed since you adapted it" in page and "4. Celebrate" in page
    change = b.get(f"{url}/upstream")
    assert change["base_revision"] == 1 and change["current_revision"] == 2 and change["conflicts"] == 0
    assert "+4. Celebrate" in change["diff"]
    merged = b.post(f"{url}/upstream/merge")
    assert merged.status_code == 200, merged.text
    assert "4. Celebrate" in merged.json()["body_markdown"] and "Danke fürs Helfen." in merged.json()["body_markdown"]
    assert merged.json()["upstream"]["changed"] is False

    current = merged.json()["body_markdown"]
    assert b.patch(adapted, body_markdown=current.replace("Write the notes", "Notes")).status_code == 200
    theirs = TEXT.replace("3. Announce it", "3. Announce it\n4. Celebrate").replace("Write the notes", "Write the log")
    assert a.patch(original, body_markdown=theirs).status_code == 200
    eventually(lambda: b.get(url)["upstream"]["changed"], message="B did not hear of the second edit")
    refused = b.post(f"{url}/upstream/merge")
    assert refused.status_code == 409
    change = b.get(f"{url}/upstream")
    assert (
        change["conflicts"] == 1
        and "<<<<<<< your text\n2. Notes\n=======\n2. Write the log\n" in change["merged_markdown"]
    )
    with_markers = b.patch(adapted, body_markdown=change["merged_markdown"], upstream_revision=3)
    assert with_markers.status_code == 422 and "conflict blocks" in with_markers.text
    resolved = change["merged_markdown"].replace("<<<<<<< your text\n2. Notes\n=======\n", "")
    resolved = resolved.replace(">>>>>>> upstream revision 3\n", "")
    saved = b.patch(adapted, body_markdown=resolved, upstream_revision=3)
    assert saved.status_code == 200, saved.text
    assert "2. Write the log" in saved.json()["body_markdown"] and "Danke fürs Helfen." in saved.json()["body_markdown"]
    assert saved.json()["upstream"]["changed"] is False
    assert saved.json()["upstream"]["base_revision"] == 3


def test_a_deleted_upstream_is_shown_and_the_adaptation_keeps_its_text(pair):
    a, b = pair
    original = _publish_on_a(a, "Old process")
    adapted = _adapt_on_b(a, b, original)
    assert httpx.delete(f"{a.api}/guides/{original['id']}", headers=a.auth, timeout=10).status_code == 204
    url = f"/guides/{adapted['id']}"
    eventually(lambda: b.get(url)["upstream"]["deleted"], message="B did not hear of the deletion")
    assert b.get(url)["body_markdown"] == TEXT
