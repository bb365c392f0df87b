"""Moving a community on its page, in-process on both databases, with a fake peer as the new home: the forms'
refusals read as sentences, the move shows a confirmation, the old page answers 301, and a form posted to the
moved community is refused with a link to its new home."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import People, Person, join
from tests.support.fake_peer import FakePeer
from tests.support.html import elements
from tests.web.conftest import csrf_token, sign_in, submit


@pytest.fixture(scope="module")
def peer() -> Iterator[FakePeer]:
    with FakePeer() as fake:
        yield fake


@pytest.fixture(scope="module")
def app_settings(settings: Settings, peer: FakePeer) -> Settings:
    return replace(settings, peers=(peer.base_url,))


@pytest.fixture
def moderator(app_settings: Settings, peer: FakePeer) -> Iterator[tuple[TestClient, dict, Person]]:
    """A browser signed in as the moderator of a new community."""
    with TestClient(app=create_app(app_settings), base_url=app_settings.base_url) as client:
        people = People(app_settings)
        admin, mod = people.make("admin", admin=True), people.make("mod")
        slug = f"mv-{uuid.uuid4().hex[:8]}"
        created = client.post("/api/v1/communities", json={"slug": slug, "name": "Movers"}, headers=admin.auth)
        community = created.json()
        join(client, admin, community, mod, "moderator")
        sign_in(client, mod.username)
        yield client, community, admin


def test_the_move_forms_refuse_readably(moderator: tuple[TestClient, dict, Person], peer: FakePeer):
    client, community, _ = moderator
    here = f"/c/{community['slug']}"
    page = client.get(here)
    assert 'id="move-community"' in page.text and "Move this community" in page.text
    response = submit(client, here, f"{here}/move", {"target": f"{peer.base_url}/c/x"}, follow_redirects=True)
    assert "tick the box to confirm" in response.text
    elsewhere = peer.actor(f"/c/{uuid.uuid4().hex[:6]}", "Group")
    response = submit(
        client, here, f"{here}/move", {"target": elsewhere["id"], "confirm": "yes"}, follow_redirects=True
    )
    assert response.status_code == 200 and f"Not moved: {elsewhere['id']} does not claim to be" in response.text
    response = submit(client, here, f"{here}/also-known-as", {"also_known_as": "not a uri"}, follow_redirects=True)
    assert "Not saved: also_known_as: &#39;not a uri&#39; is not an absolute" in response.text
    assert client.get(f"/api/v1/communities/{community['slug']}").json()["moved_to"] is None


def test_a_moved_community_confirms_redirects_and_refuses_writes(
    moderator: tuple[TestClient, dict, Person], peer: FakePeer, app_settings: Settings
):
    client, community, admin = moderator
    here = f"/c/{community['slug']}"
    offer = client.post(
        f"/api/v1/communities/{community['slug']}/mentorship/offers",
        json={"title": "Lifting", "description_markdown": "Knees.", "topics": ["moving"], "format": "group",
              "capacity": 2},
        headers=admin.auth,
    ).json()  # fmt: skip
    home = peer.actor(f"/c/{uuid.uuid4().hex[:6]}", "Group", alsoKnownAs=[community["uri"]])
    token = csrf_token(client.get(here).text)
    response = client.post(f"{here}/move", data={"_csrf_token": token, "target": home["id"], "confirm": "yes"})
    assert response.status_code == 200
    assert "Movers has moved" in response.text and f'href="{home["id"]}"' in response.text
    page = client.get(here, follow_redirects=False)
    assert page.status_code == 301 and page.headers["location"] == home["id"]
    group = client.get(here, headers={"Accept": "application/activity+json"})
    assert group.status_code == 200 and group.json()["movedTo"] == home["id"]
    # A form of the community's page, posted after the move: refused, with the way onwards.
    refused = client.post(
        f"{here}/members", data={"_csrf_token": token, "username": "someone", "role": "member"},
        headers={"Accept": "text/html"},
    )  # fmt: skip
    assert refused.status_code == 409
    links = [attrs.get("href") for tag, attrs in elements(refused.text) if tag == "a"]
    assert home["id"] in links
    assert "has moved to" in refused.text
    # Nobody asks the old instance for a seat any more: the mentor answers on the new home.
    asker = People(app_settings).make("asker")
    asked = client.post(
        f"/api/v1/mentorship/offers/{offer['id']}/requests", json={"message": "May I?"}, headers=asker.auth
    )
    assert asked.status_code == 409 and asked.json()["moved_to"] == home["id"]
