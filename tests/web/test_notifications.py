"""The unread count in the header and the notifications page: reading, opening and marking read from a browser."""

from __future__ import annotations

import re

from litestar.testing import TestClient

from tests.api.test_notifications import NOTIFICATIONS, api_ask, api_do, api_write, make_offer
from tests.conftest import Person
from tests.web.conftest import sign_in, submit

COUNT = re.compile(r'<span class="count">([0-9+]+)<span class="visually-hidden"> unread</span></span>')


def header_count(browser: TestClient, path: str = "/") -> int:
    page = browser.get(path)
    assert page.status_code == 200, page.text
    found = COUNT.findall(page.text)
    assert len(found) <= 1
    return int(found[0]) if found else 0


def ids(client: TestClient, person: Person) -> list[str]:
    return [n["id"] for n in client.get(NOTIFICATIONS, headers=person.auth).json()["items"]]


def test_the_header_counts_what_is_unread_and_the_page_lists_it(
    client, visitor, people, admin, community
):  # fmt: skip
    mentor, requester = people.make("mentor"), people.make("asker")
    offer_id = make_offer(client, admin, community, mentor, title="Pottery <basics>")
    request_id = api_ask(client, offer_id, requester)
    api_write(client, request_id, requester, "Is Monday fine?")

    assert 'class="count"' not in visitor.get("/").text  # nobody signed in
    sign_in(visitor, mentor.username)
    assert header_count(visitor) == 2 and header_count(visitor, "/mentorship") == 2

    page = visitor.get("/notifications")
    assert page.status_code == 200
    assert f"{requester.username} asked for a seat on “Pottery &lt;basics&gt;”." in page.text
    assert f"{requester.username} sent a message about “Pottery &lt;basics&gt;”." in page.text
    assert page.text.count('class="badge badge-new"') == 2
    first, second = ids(client, mentor)
    assert f'href="/notifications/{first}"' in page.text

    # Opening one marks it read and goes to the request's page.
    opened = visitor.get(f"/notifications/{second}", follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == f"/mentorship/requests/{request_id}"
    assert header_count(visitor) == 1
    unread_only = visitor.get("/notifications?unread=true").text
    assert f'href="/notifications/{first}"' in unread_only and f'href="/notifications/{second}"' not in unread_only

    marked = submit(visitor, "/notifications", "/notifications/read", {"all": "1"}, follow_redirects=False)
    assert marked.status_code == 303 and marked.headers["location"] == "/notifications"
    assert header_count(visitor) == 0
    assert 'class="badge badge-new"' not in visitor.get("/notifications").text


def test_marking_one_read_from_the_page(client, visitor, people, admin, community):
    mentor, requester = people.make("mentor"), people.make("asker")
    offer_id = make_offer(client, admin, community, mentor)
    request_id = api_ask(client, offer_id, requester)
    api_do(client, request_id, "withdraw", requester)
    newest, oldest = ids(client, mentor)
    sign_in(visitor, mentor.username)
    assert visitor.post("/notifications/read", data={"id": oldest}).status_code == 403  # no CSRF token
    marked = submit(visitor, "/notifications", "/notifications/read", {"id": oldest}, follow_redirects=False)
    assert marked.status_code == 303
    assert header_count(visitor) == 1
    assert [n["read"] for n in client.get(NOTIFICATIONS, headers=mentor.auth).json()["items"]] == [False, True]
    nonsense = submit(visitor, "/notifications", "/notifications/read", {"id": "nonsense"}, follow_redirects=False)
    assert nonsense.status_code == 303 and header_count(visitor) == 1


def test_only_their_person_opens_a_notification_and_strangers_sign_in_first(
    client, visitor, people, admin, community
):  # fmt: skip
    mentor, requester = people.make("mentor"), people.make("asker")
    offer_id = make_offer(client, admin, community, mentor)
    api_ask(client, offer_id, requester)
    [notification] = ids(client, mentor)

    anonymous = visitor.get("/notifications", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=/notifications")
    sign_in(visitor, requester.username)
    assert visitor.get(f"/notifications/{notification}", follow_redirects=False).status_code == 404
    assert "Nothing yet." in visitor.get("/notifications").text
    assert client.get(NOTIFICATIONS, params={"unread": "true"}, headers=mentor.auth).json()["items"][0]["read"] is False


def test_a_refusal_says_why(client, visitor, people, admin, community):
    mentor, requester = people.make("mentor"), people.make("asker")
    offer_id = make_offer(client, admin, community, mentor, title="Glazes")
    api_ask(client, offer_id, requester)
    assert client.delete(f"/api/v1/mentorship/offers/{offer_id}", headers=mentor.auth).status_code == 204
    [refused] = client.get(NOTIFICATIONS, headers=requester.auth).json()["items"]
    assert refused["kind"] == "refused" and refused["actor"]["username"] == mentor.username
    sign_in(visitor, requester.username)
    assert "Your request for “Glazes” was refused: The mentor deleted this offer." in visitor.get("/notifications").text
