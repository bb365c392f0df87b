"""Moving a community, the parts one instance decides alone: linking a community to its old Group (who may,
and which names are acceptable), an import keeping each entry's former URI, and a move that is refused because
the new home does not claim the community (nothing changes: not moved, no activity, no delivery, no job).
The whole move between two real servers is in test_community_move_servers.py."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from server.app import create_app
from server.federation import signatures
from server.federation.signatures.keys import generate_keypair
from server.models import Activity, Community, CommunityMovePeer, Delivery, Job
from server.settings import Settings
from tests.conftest import People, Person, join, migrated_database
from tests.support.accounts import with_session
from tests.support.fake_peer import FakePeer

AS2 = {"Accept": "application/activity+json"}


@pytest.fixture(scope="module")
def peer() -> Iterator[FakePeer]:
    with FakePeer() as fake:
        yield fake


@pytest.fixture(scope="module")
def old(
    settings: Settings, database_url: str, peer: FakePeer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The old instance, with the fake peer configured (it is where moves in this module try to go)."""
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    with migrated_database(backend, tmp_path_factory.mktemp("old")) as url:
        mine = replace(settings, database_url=url, data_dir=tmp_path_factory.mktemp("old-data"), peers=(peer.base_url,))
        with TestClient(app=create_app(mine), base_url=mine.base_url) as client:
            yield client


@pytest.fixture(scope="module")
def new(
    settings: Settings, database_url: str, peer: FakePeer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The new home, on another host, with the old instance and the fake peer configured."""
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    with migrated_database(backend, tmp_path_factory.mktemp("new")) as url:
        mine = replace(
            settings, base_url="http://127.0.0.1:8001", database_url=url,
            data_dir=tmp_path_factory.mktemp("new-data"), peers=(settings.base_url, peer.base_url),
        )  # fmt: skip
        with TestClient(app=create_app(mine), base_url=mine.base_url) as client:
            yield client


def _admin(client: TestClient) -> Person:
    return People(client.app.state.settings).make("admin", admin=True)


def _community(client: TestClient, admin: Person) -> dict:
    slug = f"mv-{uuid.uuid4().hex[:8]}"
    response = client.post("/api/v1/communities", json={"slug": slug, "name": "Movers"}, headers=admin.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _count(client: TestClient, model, *where) -> int:  # type: ignore[no-untyped-def]
    async def work(session) -> int:  # type: ignore[no-untyped-def]
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    return with_session(client.app.state.settings, work)


def test_a_moderator_links_a_community_to_its_old_group_and_the_group_shows_it(new: TestClient, old: TestClient):
    admin = _admin(new)
    community = _community(new, admin)
    moderator = People(new.app.state.settings).make("mod")
    join(new, admin, community, moderator, "moderator")
    old_group = f"{old.app.state.settings.base_url}/c/movers"
    response = new.patch(
        f"/api/v1/communities/{community['slug']}", json={"also_known_as": [old_group, old_group]},
        headers=moderator.auth,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["also_known_as"] == [old_group]
    assert new.get(f"/api/v1/communities/{community['slug']}").json()["also_known_as"] == [old_group]
    group = new.get(f"/c/{community['slug']}", headers=AS2).json()
    assert group["alsoKnownAs"] == [old_group]
    assert "movedTo" not in group
    context = new.get("/ns").json()["@context"]
    assert context["alsoKnownAs"]["@id"] == "as:alsoKnownAs" and context["formerUri"]["@id"] == "kith:formerUri"
    # Unlinking is a write like any other.
    response = new.patch(f"/api/v1/communities/{community['slug']}", json={"also_known_as": []}, headers=admin.auth)
    assert response.json()["also_known_as"] == []
    assert "alsoKnownAs" not in new.get(f"/c/{community['slug']}", headers=AS2).json()


@pytest.mark.parametrize(
    "names, message",
    [
        (["https://elsewhere.example/c/movers"], "not a configured peer"),
        (["/c/movers"], "absolute"),
        (["ftp://127.0.0.1:8000/c/movers"], "absolute"),
        (["http://127.0.0.1:8001/c/other"], "on this instance"),
        ([f"http://127.0.0.1:8000/c/m{n}" for n in range(6)], "at most 5"),
    ],
)
def test_linking_refuses_what_is_not_a_group_of_a_peer(new: TestClient, names: list[str], message: str):
    admin = _admin(new)
    community = _community(new, admin)
    response = new.patch(f"/api/v1/communities/{community['slug']}", json={"also_known_as": names}, headers=admin.auth)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert message in response.text
    assert new.get(f"/api/v1/communities/{community['slug']}").json()["also_known_as"] == []


def test_only_moderators_link(new: TestClient):
    admin = _admin(new)
    community = _community(new, admin)
    member = People(new.app.state.settings).make("mem")
    join(new, admin, community, member)
    response = new.patch(
        f"/api/v1/communities/{community['slug']}", json={"also_known_as": ["http://127.0.0.1:8000/c/x"]},
        headers=member.auth,
    )  # fmt: skip
    assert response.status_code == 403
    assert new.get(f"/api/v1/communities/{community['slug']}").json()["also_known_as"] == []


def test_an_imported_entry_keeps_the_uri_it_had_as_its_former_uri(old: TestClient, new: TestClient):
    old_admin, new_admin = _admin(old), _admin(new)
    community = _community(old, old_admin)
    guide = old.post(
        f"/api/v1/communities/{community['slug']}/guides", json={"title": "Packing", "body_markdown": "Boxes."},
        headers=old_admin.auth,
    ).json()  # fmt: skip
    offer = old.post(
        f"/api/v1/communities/{community['slug']}/mentorship/offers",
        json={"title": "Lifting", "description_markdown": "With the knees.", "topics": ["moving"],
              "format": "one_to_one", "capacity": 1},
        headers=old_admin.auth,
    ).json()  # fmt: skip
    assert guide["moved_from"] is None and offer["moved_from"] is None
    archive = old.get(f"/api/v1/communities/{community['slug']}/export", headers=old_admin.auth).content
    imported = new.post(
        "/api/v1/communities/import", content=archive, headers={**new_admin.auth, "Content-Type": "application/gzip"}
    )
    assert imported.status_code == 201, imported.text
    slug = imported.json()["slug"]
    [moved_guide] = new.get("/api/v1/guides", params={"community": slug}).json()["items"]
    [moved_offer] = new.get("/api/v1/mentorship/offers", params={"community": slug}).json()["items"]
    assert moved_guide["moved_from"] == guide["uri"] and moved_guide["uri"] != guide["uri"]
    assert moved_offer["moved_from"] == offer["uri"]
    article = new.get(f"/guides/{moved_guide['id']}", headers=AS2).json()
    assert article["formerUri"] == guide["uri"] and article["alsoKnownAs"] == [guide["uri"]]
    note = new.get(f"/mentorship/offers/{moved_offer['id']}", headers=AS2).json()
    assert note["formerUri"] == offer["uri"] and note["alsoKnownAs"] == [offer["uri"]]
    # The new home announces them with their former uri, so that peers fold them into the copies they hold.
    creates = new.get(f"/c/{slug}/outbox", params={"page": "true"}, headers=AS2).json()["orderedItems"]
    assert {a["object"].get("formerUri") for a in creates if a["type"] == "Create"} >= {guide["uri"], offer["uri"]}
    # Exported again from the new home, each entry's origin is its new uri: the archive's content is the same.
    again = new.get(f"/api/v1/communities/{slug}/export", headers=new_admin.auth).content
    with tarfile.open(fileobj=io.BytesIO(again), mode="r:gz") as tar:
        origins = [tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith("origin.json")]  # type: ignore[union-attr]
    assert any(moved_guide["uri"].encode() in o for o in origins)


def test_a_move_to_a_home_that_does_not_claim_the_community_changes_nothing(old: TestClient, peer: FakePeer):
    admin = _admin(old)
    community = _community(old, admin)
    stranger = peer.actor("/c/elsewhere", "Group", alsoKnownAs=["http://127.0.0.1:8000/c/someone-else"])
    activities, jobs = _count(old, Activity), _count(old, Job)
    response = old.post(
        f"/api/v1/communities/{community['slug']}/move", json={"target": stranger["id"]}, headers=admin.auth
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert "does not claim" in problem["detail"] and problem["errors"][0]["field"] == "target"
    _assert_unchanged(old, community, activities, jobs)


def test_a_move_to_a_home_that_cannot_be_fetched_changes_nothing(old: TestClient, peer: FakePeer):
    admin = _admin(old)
    community = _community(old, admin)
    activities, jobs = _count(old, Activity), _count(old, Job)
    response = old.post(
        f"/api/v1/communities/{community['slug']}/move", json={"target": f"{peer.base_url}/c/nowhere"},
        headers=admin.auth,
    )  # fmt: skip
    assert response.status_code == 502, response.text
    assert "could not be fetched" in response.json()["detail"]
    _assert_unchanged(old, community, activities, jobs)


def test_a_move_is_refused_before_any_fetch_to_a_stranger_or_by_a_member(old: TestClient, peer: FakePeer):
    admin = _admin(old)
    community = _community(old, admin)
    member = People(old.app.state.settings).make("mem")
    join(old, admin, community, member)
    fetched = len(peer.requests)
    target = {"target": f"{peer.base_url}/c/anything"}
    response = old.post(f"/api/v1/communities/{community['slug']}/move", json=target, headers=member.auth)
    assert response.status_code == 403
    stranger = {"target": "http://127.0.0.2:9/c/x"}
    response = old.post(f"/api/v1/communities/{community['slug']}/move", json=stranger, headers=admin.auth)
    assert response.status_code == 422 and "not a configured peer" in response.text
    assert len(peer.requests) == fetched


def _assert_unchanged(client: TestClient, community: dict, activities: int, jobs: int) -> None:
    after = client.get(f"/api/v1/communities/{community['slug']}").json()
    assert after["moved_to"] is None and after["moved_at"] is None
    assert _count(client, Activity) == activities
    assert _count(client, Activity, Activity.type == "Move") == 0
    assert _count(client, Delivery) == 0
    assert _count(client, Job) == jobs
    assert _count(client, CommunityMovePeer) == 0
    assert _count(client, Community, Community.moved_to.is_not(None)) == 0
    # Still writable.
    admin = _admin(client)
    response = client.post(
        f"/api/v1/communities/{community['slug']}/guides", json={"title": "Still here", "body_markdown": "Yes."},
        headers=admin.auth,
    )  # fmt: skip
    assert response.status_code == 201


def test_the_new_home_counts_a_peer_as_acknowledged_when_its_instance_actor_fetches_the_linked_group(
    new: TestClient, old: TestClient, peer: FakePeer
):
    admin = _admin(new)
    community = _community(new, admin)
    path = f"/c/{community['slug']}"
    linked = new.patch(
        f"/api/v1/communities/{community['slug']}", json={"also_known_as": [f"{old.app.state.settings.base_url}/c/x"]},
        headers=admin.auth,
    )  # fmt: skip
    assert linked.status_code == 200
    url = f"{new.app.state.settings.base_url}{path}"
    person = peer.actor("/u/sam", "Person")
    wrong_pem, _ = generate_keypair()
    fetches = [
        {},  # unsigned
        signatures.sign_request("GET", url, None, f"{person['id']}#main-key", peer.private_pem, {}),  # not the instance
        signatures.sign_request("GET", url, None, f"{peer.base_url}/actor#main-key", wrong_pem, {}),  # forged
    ]
    for headers in fetches:
        assert new.get(path, headers={**AS2, **headers}).status_code == 200  # answered all the same
    status = new.get(f"/api/v1/communities/{community['slug']}/move", headers=admin.auth).json()
    assert status["peers"] == []
    signed = signatures.sign_request("GET", url, None, f"{peer.base_url}/actor#main-key", peer.private_pem, {})
    assert new.get(path, headers={**AS2, **signed}).json()["alsoKnownAs"]
    status = new.get(f"/api/v1/communities/{community['slug']}/move", headers=admin.auth).json()
    assert [(p["instance"], bool(p["acknowledged_at"]), p["notified_at"]) for p in status["peers"]] == [
        (peer.host, True, None)
    ]
