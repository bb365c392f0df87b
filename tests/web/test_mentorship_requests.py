"""A mentorship request's page, in-process on both databases: who may see it, its actions, and its private
thread posted with and without htmx. The same exchange across two instances is in
tests/web/test_mentorship_requests_browser.py."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import update

from server.app import create_app
from server.db import create_engine
from server.models import MentorshipRequest
from server.settings import Settings
from tests.conftest import Person, join
from tests.support.html import assert_safe, elements
from tests.support.limits import ROOMY
from tests.web.conftest import csrf_token, sign_in, submit

HX = {"HX-Request": "true"}


@dataclass
class Exchange:
    mentor: Person
    learner: Person
    offer: dict[str, Any]
    request: dict[str, Any]

    @property
    def url(self) -> str:
        return f"/mentorship/requests/{self.request['id']}"


def _set_state(settings: Settings, request_id: str, state: str, reason: str = "") -> None:
    """Puts a request where no local step leads (a remote offer's failed delivery), as the service would."""

    async def go() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    update(MentorshipRequest)
                    .where(MentorshipRequest.id == uuid.UUID(request_id))
                    .values(state=state, reason=reason)
                )
        finally:
            await engine.dispose()

    asyncio.run(go())


@pytest.fixture
def exchange(client: TestClient, admin: Person, people, community: dict) -> Exchange:  # type: ignore[no-untyped-def]
    mentor, learner = people.make("mentor"), people.make("learner")
    join(client, admin, community, mentor)
    body = {
        "title": f"Soil and compost {uuid.uuid4().hex[:4]}", "description_markdown": "Let us dig.",
        "topics": ["gardening"], "format": "one_to_one", "capacity": 2,
    }  # fmt: skip
    offer = client.post(f"/api/v1/communities/{community['slug']}/mentorship/offers", json=body, headers=mentor.auth)
    assert offer.status_code == 201, offer.text
    asked = client.post(
        f"/api/v1/mentorship/offers/{offer.json()['id']}/requests", json={"message": "I grow tomatoes"},
        headers=learner.auth,
    )  # fmt: skip
    assert asked.status_code == 201, asked.text
    return Exchange(mentor, learner, offer.json(), asked.json())


def _as(browser: TestClient, person: Person) -> TestClient:
    """The same browser, signed in as someone else: a second client on the one app would start its lifespan
    (and its database pool) a second time."""
    browser.cookies.clear()
    sign_in(browser, person.username)
    return browser


def _thread(html: str) -> list[str]:
    return [attrs["id"] for tag, attrs in elements(html) if tag == "li" and attrs.get("id", "").startswith("message-")]


def _forms(html: str) -> list[str]:
    return [attrs.get("action", "") for tag, attrs in elements(html) if tag == "form"]


def test_the_parties_see_the_request_page_and_nobody_else(visitor, people, exchange):
    anonymous = visitor.get(exchange.url, headers={"Accept": "text/html"}, follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == f"/login?next={exchange.url}"
    # The URL is also the request's id: dereferenced by a peer or a script, it is simply not there.
    for accept in ("application/activity+json", "*/*"):
        assert visitor.get(exchange.url, headers={"Accept": accept}).status_code == 404
    sign_in(visitor, exchange.learner.username)
    page = visitor.get(exchange.url)
    assert page.status_code == 200 and "<html" in page.text
    assert exchange.offer["title"] in page.text and "I grow tomatoes" in page.text
    assert "Waiting for" in page.text
    assert any(
        tag == "a" and attrs.get("href") == f"/mentorship/offers/{exchange.offer['id']}"
        for tag, attrs in elements(page.text)
    )
    # The requester may withdraw but not answer; the thread is open once the mentor has the request.
    assert f"{exchange.url}/withdraw" in _forms(page.text) and f"{exchange.url}/accept" not in _forms(page.text)
    assert f"{exchange.url}/messages" in _forms(page.text)
    _as(visitor, people.make("stranger"))
    stranger = visitor.get(exchange.url)
    assert stranger.status_code == 404 and exchange.offer["title"] not in stranger.text
    assert visitor.get(f"/mentorship/requests/{uuid.uuid4()}").status_code == 404


def test_a_moderator_of_the_offers_community_reads_but_does_not_write(
    client, admin, visitor, people, community, exchange
):
    moderator = people.make("moderator")
    join(client, admin, community, moderator, role="moderator")
    sign_in(visitor, moderator.username)
    page = visitor.get(exchange.url)
    assert page.status_code == 200 and "I grow tomatoes" in page.text
    assert not any(action.startswith(exchange.url) for action in _forms(page.text))


def test_a_message_posted_without_javascript_comes_back_to_the_page(visitor, exchange):
    sign_in(visitor, exchange.learner.username)
    posted = submit(
        visitor, exchange.url, f"{exchange.url}/messages", {"body_markdown": "When do we *start*?"},
        follow_redirects=False,
    )  # fmt: skip
    assert posted.status_code == 303 and posted.headers["location"].startswith(exchange.url + "#message-")
    page = visitor.get(exchange.url)
    assert "<em>start</em>" in page.text and len(_thread(page.text)) == 1
    mentor = _as(visitor, exchange.mentor)
    answer = submit(mentor, exchange.url, f"{exchange.url}/messages", {"body_markdown": "Tuesday."})
    assert answer.status_code == 200
    # Oldest first, for both parties.
    seen = _as(visitor, exchange.learner).get(exchange.url).text
    assert seen.index("<em>start</em>") < seen.index("Tuesday.")
    assert _thread(seen) == _thread(answer.text)


def test_a_message_posted_with_htmx_answers_the_fragment_and_an_empty_form(visitor, exchange):
    sign_in(visitor, exchange.learner.username)
    page = visitor.get(exchange.url)
    body = "Hello **there** <script>x</script>"
    form = {"_csrf_token": csrf_token(page.text), "body_markdown": body}
    posted = visitor.post(f"{exchange.url}/messages", data=form, headers=HX)
    assert posted.status_code == 200 and "<html" not in posted.text
    assert len(_thread(posted.text)) == 1 and "<strong>there</strong>" in posted.text
    form = next(attrs for tag, attrs in elements(posted.text) if tag == "form")
    assert form["hx-swap-oob"] == "outerHTML" and form["id"] == "message-form"
    assert "Hello" not in posted.text.split('id="body_markdown"')[1].split("</textarea>")[0]
    assert_safe(posted.text)


def test_a_message_that_cannot_be_sent_is_explained_at_the_form(visitor, settings, exchange):
    sign_in(visitor, exchange.learner.username)
    empty = submit(visitor, exchange.url, f"{exchange.url}/messages", {"body_markdown": "   "})
    assert empty.status_code == 422 and "must not be empty" in empty.text and "<html" in empty.text
    too_long = "x" * (10 * 1024 + 1)
    long = submit(visitor, exchange.url, f"{exchange.url}/messages", {"body_markdown": too_long})
    assert long.status_code == 422 and "at most 10 KB" in long.text and too_long in long.text  # the text is kept
    page = visitor.get(exchange.url)
    fragment = visitor.post(
        f"{exchange.url}/messages", data={"_csrf_token": csrf_token(page.text), "body_markdown": ""}, headers=HX
    )
    # htmx only swaps a 2xx answer: the form comes back with its error.
    assert fragment.status_code == 200 and "must not be empty" in fragment.text and not _thread(fragment.text)
    _set_state(settings, exchange.request["id"], "refused", "Every seat of this offer is taken.")
    refused = visitor.get(exchange.url)
    assert "Every seat of this offer is taken." in refused.text
    assert f"{exchange.url}/messages" not in _forms(refused.text)
    late = visitor.post(
        f"{exchange.url}/messages", data={"_csrf_token": csrf_token(page.text), "body_markdown": "still there?"}
    )
    assert late.status_code == 409 and "no thread" in late.text
    assert not _thread(visitor.get(exchange.url).text)


def test_too_many_messages_are_refused_readably(settings, exchange):
    tight = replace(settings, rate_limits=replace(ROOMY, messages="2/minute"))
    with TestClient(app=create_app(tight), base_url=tight.base_url) as limited:
        sign_in(limited, exchange.learner.username)
        for n in range(2):
            sent = submit(limited, exchange.url, f"{exchange.url}/messages", {"body_markdown": f"n{n}"})
            assert sent.status_code == 200
        refused = submit(limited, exchange.url, f"{exchange.url}/messages", {"body_markdown": "one more"})
        assert refused.status_code == 429 and "Try again in" in refused.text and "one more" in refused.text
        htmx = limited.post(
            f"{exchange.url}/messages", data={"_csrf_token": csrf_token(refused.text), "body_markdown": "and another"},
            headers=HX,
        )  # fmt: skip
        assert htmx.status_code == 200 and "Try again in" in htmx.text and "and another" in htmx.text


def test_the_mentor_accepts_or_declines_from_the_request_page(client, visitor, people, exchange):
    sign_in(visitor, exchange.mentor.username)
    page = visitor.get(exchange.url)
    assert f"{exchange.url}/accept" in _forms(page.text) and f"{exchange.url}/withdraw" not in _forms(page.text)
    accepted = submit(visitor, exchange.url, f"{exchange.url}/accept", {"next": exchange.url}, follow_redirects=False)
    assert accepted.status_code == 303 and accepted.headers["location"] == exchange.url
    after = visitor.get(exchange.url)
    assert "Accepted:" in after.text and f"{exchange.url}/accept" not in _forms(after.text)
    assert client.get(f"/api/v1/mentorship/offers/{exchange.offer['id']}").json()["seats_taken"] == 1
    other = people.make("other")
    second = client.post(
        f"/api/v1/mentorship/offers/{exchange.offer['id']}/requests", json={}, headers=other.auth
    ).json()
    url = f"/mentorship/requests/{second['id']}"
    declined = submit(visitor, url, f"{url}/decline", {"next": url})
    assert declined.status_code == 200 and "Declined by" in declined.text
    # An outside `next` is not followed.
    again = submit(visitor, url, f"{url}/decline", {"next": "//evil.example/"}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/mentorship/requests"


def test_a_failed_request_offers_send_again_only_to_the_requester(visitor, settings, exchange):
    _set_state(settings, exchange.request["id"], "failed", "peer.example could not be reached.")
    sign_in(visitor, exchange.learner.username)
    page = visitor.get(exchange.url)
    assert "Not delivered" in page.text and "peer.example could not be reached." in page.text
    assert f"{exchange.url}/retry" in _forms(page.text) and f"{exchange.url}/withdraw" not in _forms(page.text)
    listing = visitor.get("/mentorship/requests")
    assert f"{exchange.url}/retry" in _forms(listing.text)
    mentor_page = _as(visitor, exchange.mentor).get(exchange.url)
    assert f"{exchange.url}/retry" not in _forms(mentor_page.text)
    # Sending again is the requester's: the mentor is refused and nothing changes.
    refused = visitor.post(f"{exchange.url}/retry", data={"_csrf_token": csrf_token(mentor_page.text)})
    assert refused.status_code == 403
    assert "Not delivered" in visitor.get(exchange.url).text


def test_my_mentorship_links_each_request_to_its_page(visitor, exchange):
    sign_in(visitor, exchange.learner.username)
    mine = visitor.get("/mentorship/requests")
    assert any(tag == "a" and attrs.get("href") == exchange.url for tag, attrs in elements(mine.text))
    offer_page = visitor.get(f"/mentorship/offers/{exchange.offer['id']}")
    assert any(tag == "a" and attrs.get("href") == exchange.url for tag, attrs in elements(offer_page.text))
    assert f"/mentorship/offers/{exchange.offer['id']}/requests" not in _forms(offer_page.text)  # already asked
    queue = _as(visitor, exchange.mentor).get("/mentorship/requests")
    assert any(tag == "a" and attrs.get("href") == exchange.url for tag, attrs in elements(queue.text))
    row = visitor.post(f"{exchange.url}/decline", data={"_csrf_token": csrf_token(queue.text)}, headers=HX)
    assert row.status_code == 200 and "declined" in row.text and "<html" not in row.text
    assert any(tag == "a" and attrs.get("href") == exchange.url for tag, attrs in elements(row.text))


def test_an_unreadable_thread_cursor_is_a_clear_error(visitor, exchange):
    sign_in(visitor, exchange.learner.username)
    response = visitor.get(exchange.url, params={"cursor": "not-a-cursor"})
    assert 400 <= response.status_code < 500 and "<html" in response.text


def test_a_long_thread_shows_its_newest_messages_and_links_to_earlier_ones(client, visitor, monkeypatch, exchange):
    monkeypatch.setattr("server.web.mentorship.THREAD_PAGE", 2)
    for text in ("first", "second", "third"):
        sent = client.post(
            f"/api/v1{exchange.url}/messages", json={"body_markdown": text}, headers=exchange.learner.auth
        )
        assert sent.status_code == 201, sent.text
    sign_in(visitor, exchange.learner.username)
    page = visitor.get(exchange.url).text
    assert "<p>first</p>" not in page and page.index("<p>second</p>") < page.index("<p>third</p>")
    earlier = next(attrs["href"] for tag, attrs in elements(page) if tag == "a" and "?cursor=" in attrs.get("href", ""))
    older = visitor.get(earlier).text
    assert len(_thread(older)) == 1 and "<p>first</p>" in older
