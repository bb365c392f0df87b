"""A request's private thread and who may see it, on one instance: the rules are the same across instances."""

from __future__ import annotations

from tests.conftest import join


def _offer(client, mentor, community, **fields):
    body = {"title": "Rust reviews", "description_markdown": "Code review.", "topics": ["rust"],
            "format": "group", "capacity": 5, **fields}  # fmt: skip
    response = client.post(f"/api/v1/communities/{community['slug']}/mentorship/offers", json=body, headers=mentor.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _setup(client, admin, people, community):
    mentor = people.make("mentor")
    join(client, admin, community, mentor)
    offer = _offer(client, mentor, community)
    asker = people.make("asker")
    request = client.post(
        f"/api/v1/mentorship/offers/{offer['id']}/requests", json={"message": "hi"}, headers=asker.auth
    )
    assert request.status_code == 201, request.text
    return mentor, offer, asker, request.json()


def test_both_parties_write_and_read_the_thread(client, admin, people, community):
    mentor, _, asker, request = _setup(client, admin, people, community)
    url = f"/api/v1/mentorship/requests/{request['id']}/messages"
    first = client.post(url, json={"body_markdown": "Hello **there**"}, headers=asker.auth)
    assert first.status_code == 201, first.text
    assert first.json()["body_html"] == "<p>Hello <strong>there</strong></p>\n"
    assert client.post(url, json={"body_markdown": "Hi! <script>x()</script>"}, headers=mentor.auth).status_code == 201
    thread = client.get(url, headers=asker.auth).json()["items"]
    assert [m["author"]["username"] for m in thread] == [mentor.username, asker.username]  # newest first
    assert "<script>" not in thread[0]["body_html"]
    assert client.get(url, headers=mentor.auth).json()["items"] == thread


def test_only_the_parties_moderators_and_admins_see_a_request(client, admin, people, community):
    _, _, asker, request = _setup(client, admin, people, community)
    moderator, stranger = people.make("mod"), people.make("stranger")
    join(client, admin, community, moderator, role="moderator")
    for path in (
        f"/api/v1/mentorship/requests/{request['id']}",
        f"/api/v1/mentorship/requests/{request['id']}/messages",
    ):
        assert client.get(path, headers=stranger.auth).status_code == 404
        assert client.get(path).status_code in (401, 404)
        assert client.get(path, headers=moderator.auth).status_code == 200
        assert client.get(path, headers=admin.auth).status_code == 200
    # Moderators read the thread; only the two parties write in it.
    url = f"/api/v1/mentorship/requests/{request['id']}/messages"
    assert client.post(url, json={"body_markdown": "I moderate"}, headers=moderator.auth).status_code == 403
    assert client.post(url, json={"body_markdown": "me"}, headers=stranger.auth).status_code == 404
    assert client.get(url, headers=asker.auth).json()["items"] == []


def test_bad_messages_change_nothing(client, admin, people, community):
    _, _, asker, request = _setup(client, admin, people, community)
    url = f"/api/v1/mentorship/requests/{request['id']}/messages"
    for body in ({"body_markdown": ""}, {"body_markdown": "   "}, {"body_markdown": "é" * 6000}, {"text": "x"}, {}):
        response = client.post(url, json=body, headers=asker.auth)
        assert response.status_code in (400, 422), (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert client.get(url, headers=asker.auth).json()["items"] == []


def test_a_person_has_at_most_twenty_requests_waiting(client, admin, people, community):
    mentor = people.make("busy-mentor")
    join(client, admin, community, mentor)
    asker = people.make("eager")
    for n in range(20):
        offer = _offer(client, mentor, community, title=f"Offer {n}")
        assert (
            client.post(f"/api/v1/mentorship/offers/{offer['id']}/requests", json={}, headers=asker.auth).status_code
            == 201
        )
    one_more = _offer(client, mentor, community, title="One more")
    refused = client.post(f"/api/v1/mentorship/offers/{one_more['id']}/requests", json={}, headers=asker.auth)
    assert refused.status_code == 409 and "20 requests waiting" in refused.json()["detail"]


def test_deleting_an_offer_refuses_whoever_waits(client, admin, people, community):
    mentor, offer, asker, request = _setup(client, admin, people, community)
    assert client.delete(f"/api/v1/mentorship/offers/{offer['id']}", headers=mentor.auth).status_code == 204
    after = client.get(f"/api/v1/mentorship/requests/{request['id']}", headers=asker.auth).json()
    assert after["state"] == "refused" and after["reason"] == "The mentor deleted this offer."


def test_a_request_for_a_local_offer_is_never_retried_or_sent(client, admin, people, community):
    _, _, asker, request = _setup(client, admin, people, community)
    assert request["state"] == "pending" and request["local"] is True
    retry = client.post(f"/api/v1/mentorship/requests/{request['id']}/retry", headers=asker.auth)
    assert retry.status_code == 409
