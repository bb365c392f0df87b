from __future__ import annotations

import uuid

from tests.conftest import join


def test_admin_creates_community_with_uri_and_url(client, admin):
    slug = f"rust-{uuid.uuid4().hex[:6]}"
    body = {"slug": slug, "name": "Rust", "description": "Systems", "color": "#AA3300",
            "links": [{"title": "Home", "url": "https://rust.example"}]}  # fmt: skip
    response = client.post("/api/v1/communities", json=body, headers=admin.auth)
    assert response.status_code == 201
    community = response.json()
    assert community["uri"] == f"http://127.0.0.1:8000/c/{slug}"
    assert community["url"] == community["uri"]
    assert community["color"] == "#aa3300"
    assert community["local"] is True
    assert community["instance"] == "127.0.0.1:8000"
    assert community["stats"] == {"guides": 0, "offers": 0}
    assert client.get(f"/api/v1/communities/{slug}").json()["id"] == community["id"]
    assert client.get(f"/api/v1/communities/{slug}@127.0.0.1:8000").json()["id"] == community["id"]


def test_duplicate_slug_is_a_conflict(client, admin, community):
    response = client.post("/api/v1/communities", json={"slug": community["slug"], "name": "Again"}, headers=admin.auth)
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")


def test_member_cannot_create_community(client, people):
    person = people.make()
    response = client.post("/api/v1/communities", json={"slug": "nope", "name": "No"}, headers=person.auth)
    assert response.status_code == 403


def test_write_token_of_admin_is_not_enough_to_create_community(client, people):
    admin_user = people.make("adm", admin=True, scope="write")
    response = client.post("/api/v1/communities", json={"slug": "nope2", "name": "No"}, headers=admin_user.auth)
    assert response.status_code == 403


def test_creating_without_token_is_401(client):
    response = client.post("/api/v1/communities", json={"slug": "anon", "name": "Anon"})
    assert response.status_code == 401
    assert response.json()["status"] == 401


def test_moderator_edits_community_and_member_cannot(client, admin, people, community):
    moderator, member = people.make("mod"), people.make("mem")
    join(client, admin, community, moderator, "moderator")
    join(client, admin, community, member)
    url = f"/api/v1/communities/{community['slug']}"
    assert client.patch(url, json={"name": "Renamed"}, headers=member.auth).status_code == 403
    response = client.patch(url, json={"name": "Renamed", "color": "#112233"}, headers=moderator.auth)
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"
    assert response.json()["description"] == community["description"]


def test_members_are_listed_added_and_removed(client, admin, people, community):
    person = people.make()
    base = f"/api/v1/communities/{community['slug']}/members"
    response = client.post(base, json={"username": person.username, "role": "member"}, headers=admin.auth)
    assert response.status_code == 201
    assert response.json()["role"] == "member"
    response = client.post(base, json={"username": person.username, "role": "moderator"}, headers=admin.auth)
    assert response.status_code == 200
    members = {m["username"]: m["role"] for m in client.get(base).json()["items"]}
    assert members[person.username] == "moderator"
    assert members[admin.username] == "moderator"  # the founder moderates
    assert client.delete(f"{base}/{person.username}", headers=admin.auth).status_code == 204
    assert person.username not in {m["username"] for m in client.get(base).json()["items"]}
    assert client.delete(f"{base}/{person.username}", headers=admin.auth).status_code == 404


def test_adding_unknown_user_is_422(client, admin, community):
    response = client.post(
        f"/api/v1/communities/{community['slug']}/members",
        json={"username": "nobody-here", "role": "member"}, headers=admin.auth,
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "username"


def test_deleting_community_tombstones_its_guides(client, admin, community):
    guide = client.post(
        f"/api/v1/communities/{community['slug']}/guides",
        json={"title": "Soon gone", "body_markdown": "text"}, headers=admin.auth,
    ).json()  # fmt: skip
    assert client.delete(f"/api/v1/communities/{community['slug']}", headers=admin.auth).status_code == 204
    assert client.get(f"/api/v1/communities/{community['slug']}").status_code == 404
    assert client.get(f"/api/v1/guides/{guide['id']}").status_code == 404


def test_list_is_paginated_with_link_header(client, admin):
    created = []
    for _ in range(3):
        slug = f"p-{uuid.uuid4().hex[:8]}"
        client.post("/api/v1/communities", json={"slug": slug, "name": slug}, headers=admin.auth)
        created.append(slug)
    first = client.get("/api/v1/communities?limit=2&origin=local")
    assert first.status_code == 200
    page = first.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    assert 'rel="next"' in first.headers["link"]
    second = client.get(f"/api/v1/communities?limit=2&origin=local&cursor={page['next_cursor']}").json()
    assert not {c["id"] for c in page["items"]} & {c["id"] for c in second["items"]}
    # Other tests of the session may have mirrored remote communities: none of these is among them.
    remote = client.get("/api/v1/communities?origin=remote").json()["items"]
    assert all(not c["local"] for c in remote) and not {c["slug"] for c in remote} & set(created)


def test_bad_cursor_and_limit_are_422(client):
    assert client.get("/api/v1/communities?cursor=!!!").status_code == 422
    assert client.get("/api/v1/communities?limit=0").status_code in (400, 422)
    assert client.get("/api/v1/communities?limit=101").status_code in (400, 422)
    assert client.get("/api/v1/communities?origin=elsewhere").status_code in (400, 422)


def test_stats_count_published_guides_and_open_offers_only(client, admin):
    slug = f"stats-{uuid.uuid4().hex[:6]}"
    assert (
        client.post("/api/v1/communities", json={"slug": slug, "name": "Stats"}, headers=admin.auth).status_code == 201
    )
    other = f"stats-{uuid.uuid4().hex[:6]}"
    client.post("/api/v1/communities", json={"slug": other, "name": "Other"}, headers=admin.auth)

    def guide(where: str, **fields: str) -> dict:
        body = {"title": f"G {uuid.uuid4().hex[:6]}", "body_markdown": "text", **fields}
        response = client.post(f"/api/v1/communities/{where}/guides", json=body, headers=admin.auth)
        assert response.status_code == 201, response.text
        return response.json()

    def offer(status: str) -> None:
        body = {"title": "Pairing", "description_markdown": "x", "topics": ["python"], "format": "group",
                "capacity": 3, "status": status}  # fmt: skip
        response = client.post(f"/api/v1/communities/{slug}/mentorship/offers", json=body, headers=admin.auth)
        assert response.status_code == 201, response.text

    guide(slug), guide(slug), guide(slug, status="draft"), guide(other)
    deleted = guide(slug)
    assert client.delete(f"/api/v1/guides/{deleted['id']}", headers=admin.auth).status_code == 204
    offer("open"), offer("closed")
    expected = {"guides": 2, "offers": 1}
    assert client.get(f"/api/v1/communities/{slug}").json()["stats"] == expected
    listed = client.get("/api/v1/communities?limit=100&origin=local").json()["items"]
    by_slug = {c["slug"]: c["stats"] for c in listed}
    assert by_slug[slug] == expected and by_slug[other] == {"guides": 1, "offers": 0}
