from __future__ import annotations

from tests.conftest import join


def _offer(client, mentor, community, **fields):
    body = {"title": "Julia for newcomers", "description_markdown": "Weekly *pairing*.", "topics": ["Julia"],
            "format": "one_to_one", "capacity": 1, **fields}  # fmt: skip
    return client.post(f"/api/v1/communities/{community['slug']}/mentorship/offers", json=body, headers=mentor.auth)


def _mentor(client, admin, people, community):
    mentor = people.make("mentor")
    join(client, admin, community, mentor)
    return mentor


def test_member_offers_mentorship(client, admin, people, community):
    mentor = _mentor(client, admin, people, community)
    response = _offer(client, mentor, community, languages=["EN", "de"], availability="Tuesdays")
    assert response.status_code == 201, response.text
    offer = response.json()
    assert offer["topics"] == ["julia"] and offer["languages"] == ["en", "de"]
    assert offer["description_html"] == "<p>Weekly <em>pairing</em>.</p>\n"
    assert offer["seats_taken"] == 0 and offer["status"] == "open"
    assert offer["mentor"]["username"] == mentor.username
    assert offer["uri"] == f"http://127.0.0.1:8000/mentorship/offers/{offer['id']}"
    assert offer["local"] is True and offer["origin"]["instance"] == "127.0.0.1:8000"
    assert response.headers["etag"]


def test_offer_validation(client, admin, community):
    for fields in ({"topics": []}, {"capacity": 0}, {"format": "lecture"}, {"topics": ["x" * 51]}):
        assert _offer(client, admin, community, **fields).status_code == 422, fields


def test_request_accept_capacity_and_withdraw(client, admin, people, community):
    mentor = _mentor(client, admin, people, community)
    offer = _offer(client, mentor, community, capacity=1).json()
    alice, bob = people.make("alice"), people.make("bob")
    requests_url = f"/api/v1/mentorship/offers/{offer['id']}/requests"

    first = client.post(requests_url, json={"message": "Hi!"}, headers=alice.auth)
    assert first.status_code == 201 and first.json()["state"] == "pending"
    assert client.post(requests_url, json={"message": "again"}, headers=alice.auth).status_code == 409
    second = client.post(requests_url, json={"message": "me too"}, headers=bob.auth).json()

    assert client.get(requests_url, headers=alice.auth).status_code == 403
    queue = client.get(requests_url, headers=mentor.auth).json()["items"]
    assert {r["requester"]["username"] for r in queue} == {alice.username, bob.username}

    accept_url = f"/api/v1/mentorship/requests/{first.json()['id']}/accept"
    assert client.post(accept_url, headers=alice.auth).status_code == 403
    accepted = client.post(accept_url, headers=mentor.auth)
    assert accepted.status_code == 200 and accepted.json()["state"] == "accepted"
    assert client.get(f"/api/v1/mentorship/offers/{offer['id']}").json()["seats_taken"] == 1

    # The last seat is gone: whoever still waited is told so at once, with the reason.
    refused = client.get(f"/api/v1/mentorship/requests/{second['id']}", headers=bob.auth).json()
    assert refused["state"] == "refused" and refused["reason"] == "Every seat of this offer is taken."
    full = client.post(f"/api/v1/mentorship/requests/{second['id']}/accept", headers=mentor.auth)
    assert full.status_code == 409
    assert client.post(requests_url, json={}, headers=people.make().auth).status_code == 409  # full

    withdrawn = client.post(f"/api/v1/mentorship/requests/{first.json()['id']}/withdraw", headers=alice.auth)
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
    assert client.get(f"/api/v1/mentorship/offers/{offer['id']}").json()["seats_taken"] == 0
    again = client.post(requests_url, json={"message": "a seat is free"}, headers=bob.auth).json()
    assert client.post(f"/api/v1/mentorship/requests/{again['id']}/accept", headers=mentor.auth).status_code == 200


def test_decline_and_my_requests(client, admin, people, community):
    mentor = _mentor(client, admin, people, community)
    offer = _offer(client, mentor, community, capacity=3).json()
    asker = people.make("asker")
    request = client.post(
        f"/api/v1/mentorship/offers/{offer['id']}/requests", json={"message": "please"}, headers=asker.auth
    ).json()
    declined = client.post(f"/api/v1/mentorship/requests/{request['id']}/decline", headers=mentor.auth)
    assert declined.json()["state"] == "declined"
    assert client.post(f"/api/v1/mentorship/requests/{request['id']}/accept", headers=mentor.auth).status_code == 409
    mine = client.get("/api/v1/mentorship/requests?mine=true", headers=asker.auth).json()["items"]
    assert [(r["id"], r["state"]) for r in mine] == [(request["id"], "declined")]
    queue = client.get("/api/v1/mentorship/requests?mine=false", headers=mentor.auth).json()["items"]
    assert request["id"] in {r["id"] for r in queue}
    assert client.get("/api/v1/mentorship/requests").status_code == 401


def test_mentor_cannot_request_own_offer_and_closed_offer_refuses(client, admin, people, community):
    mentor = _mentor(client, admin, people, community)
    offer = _offer(client, mentor, community, status="closed").json()
    url = f"/api/v1/mentorship/offers/{offer['id']}/requests"
    assert client.post(url, json={}, headers=mentor.auth).status_code == 403
    assert client.post(url, json={}, headers=people.make().auth).status_code == 409


def test_patch_with_stale_etag_is_412_and_capacity_cannot_drop_below_seats(client, admin, people, community):
    mentor = _mentor(client, admin, people, community)
    offer = _offer(client, mentor, community, capacity=2).json()
    url = f"/api/v1/mentorship/offers/{offer['id']}"
    etag = client.get(url).headers["etag"]
    assert client.patch(url, json={"title": "New"}, headers={**mentor.auth, "If-Match": etag}).status_code == 200
    stale = client.patch(url, json={"title": "Old"}, headers={**mentor.auth, "If-Match": etag})
    assert stale.status_code == 412
    assert client.get(url).json()["title"] == "New"
    asker = people.make()
    request = client.post(f"{url}/requests", json={}, headers=asker.auth).json()
    client.post(f"/api/v1/mentorship/requests/{request['id']}/accept", headers=mentor.auth)
    assert client.patch(url, json={"capacity": 0}, headers=mentor.auth).status_code == 422
    assert client.patch(url, json={"capacity": 1}, headers=mentor.auth).status_code == 200


def test_filters_by_topic_language_and_status(client, admin, people, community):
    mentor = _mentor(client, admin, people, community)
    rust = _offer(client, mentor, community, topics=["rust"], languages=["fr"]).json()
    _offer(client, mentor, community, topics=["go"], status="closed")
    base = f"/api/v1/mentorship/offers?community={community['slug']}"
    assert [o["id"] for o in client.get(f"{base}&topic=rust").json()["items"]] == [rust["id"]]
    assert [o["id"] for o in client.get(f"{base}&language=fr").json()["items"]] == [rust["id"]]
    assert [o["topics"] for o in client.get(f"{base}&status=closed").json()["items"]] == [["go"]]


def test_only_mentor_or_moderator_deletes_offer(client, admin, people, community):
    mentor = _mentor(client, admin, people, community)
    offer = _offer(client, mentor, community).json()
    url = f"/api/v1/mentorship/offers/{offer['id']}"
    assert client.delete(url, headers=people.make().auth).status_code == 403
    assert client.delete(url, headers=mentor.auth).status_code == 204
    assert client.get(url).status_code == 404
