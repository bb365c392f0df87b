"""Notifications: who is told of each step of a mentorship request, reading and marking them through the API, and
the mail each one sends through a local SMTP server (aiosmtpd), never a real one.

The exchange goes through the request API. Steps it cannot make on one instance (an answer or a delivery failure
from a peer, a remote person asking) are recorded here as the request service records them: the rows written and
the event recorded in one transaction. Steps with a remote party are told to the notifications alone, since
carrying them to a peer needs one (tests/federation has that).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiosmtpd.controller import Controller
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.app import create_app
from server.db import create_engine, create_sessionmaker, utcnow
from server.mentorship import events
from server.mentorship.events import RequestEvent, Step
from server.models import Job, MentorshipMessage, MentorshipRequest, Notification, User
from server.notifications.mail import MailJobs
from server.notifications.service import on_request_event
from server.settings import Settings
from tests.api.test_registration_mail import Inbox
from tests.conftest import People, Person, join
from tests.support.limits import ROOMY
from tests.support.server import free_port

T = TypeVar("T")
NOTIFICATIONS = "/api/v1/me/notifications"


def in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def _person(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    assert user is not None
    return user


def make_offer(client: TestClient, admin: Person, community: dict, mentor: Person, title: str = "Rust") -> str:
    join(client, admin, community, mentor)
    body = {"title": title, "description_markdown": "Pairing.", "topics": ["rust"], "format": "group", "capacity": 5}
    response = client.post(f"/api/v1/communities/{community['slug']}/mentorship/offers", json=body, headers=mentor.auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _record(session: AsyncSession, settings: Settings, event: RequestEvent, notifications_only: bool) -> None:
    if notifications_only:
        await on_request_event(session, settings, event)
    else:
        await events.record(session, settings, event)


def ask(settings: Settings, offer_id: str, requester: str, *, notifications_only: bool = False) -> uuid.UUID:
    """`requester` (local or remote) asks for a seat: the request is stored and `asked` recorded."""

    async def work(session: AsyncSession) -> uuid.UUID:
        person = await _person(session, requester)
        request_id = uuid.uuid4()
        request = MentorshipRequest(
            id=request_id, uri=f"{settings.base_url}/mentorship/requests/{request_id}",
            offer_id=uuid.UUID(offer_id), requester_id=person.id, message="May I join?", local=person.local,
        )  # fmt: skip
        session.add(request)
        await session.flush()
        await session.refresh(request, ["offer", "requester"])
        await _record(session, settings, RequestEvent("asked", request, person), notifications_only)
        return request_id

    return in_session(settings, work)


def step(
    settings: Settings, request_id: uuid.UUID | str, what: Step, by: str | None, *, state: str | None = None,
    body: str | None = None, notifications_only: bool = False,
) -> None:  # fmt: skip
    """Record a later step of a request: an answer (with its new `state`), a withdrawal, a message (`body`)."""

    async def work(session: AsyncSession) -> None:
        request = await session.get(MentorshipRequest, uuid.UUID(str(request_id)))
        assert request is not None
        person = await _person(session, by) if by else None
        if state is not None:
            request.state = state
        message = None
        if body is not None:
            assert person is not None
            message_id = uuid.uuid4()
            message = MentorshipMessage(
                id=message_id, uri=f"{settings.base_url}/mentorship/messages/{message_id}", request_id=request.id,
                author_id=person.id, body_markdown=body, body_html=f"<p>{body}</p>", local=person.local,
            )  # fmt: skip
            session.add(message)
            await session.flush()
            await session.refresh(message, ["author"])
        await _record(session, settings, RequestEvent(what, request, person, message), notifications_only)

    in_session(settings, work)


def remote_person(settings: Settings, instance: str = "elsewhere.example") -> str:
    async def work(session: AsyncSession) -> str:
        username = f"far-{uuid.uuid4().hex[:8]}"
        uri = f"https://{instance}/u/{username}"
        session.add(User(username=username, instance=instance, local=False, uri=uri, url=uri, display_name="Far"))
        return username

    return in_session(settings, work)


def notifications(client: TestClient, person: Person, **params: Any) -> list[dict]:
    response = client.get(NOTIFICATIONS, params=params, headers=person.auth)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def unread(client: TestClient, person: Person) -> int:
    return len(notifications(client, person, unread="true", limit=100))


def api_ask(client: TestClient, offer_id: str, requester: Person) -> str:
    response = client.post(
        f"/api/v1/mentorship/offers/{offer_id}/requests", json={"message": "May I join?"}, headers=requester.auth
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def api_do(client: TestClient, request_id: str, action: str, person: Person) -> None:
    response = client.post(f"/api/v1/mentorship/requests/{request_id}/{action}", headers=person.auth)
    assert response.status_code == 200, response.text


def api_write(client: TestClient, request_id: str, person: Person, body: str) -> None:
    response = client.post(
        f"/api/v1/mentorship/requests/{request_id}/messages", json={"body_markdown": body}, headers=person.auth
    )
    assert response.status_code == 201, response.text


def test_unread_counts_move_as_the_exchange_goes_on(client, settings, people, admin, community):
    mentor, requester = people.make("mentor"), people.make("asker")
    offer_id = make_offer(client, admin, community, mentor)
    request_id = api_ask(client, offer_id, requester)

    [asked] = notifications(client, mentor)
    assert asked["kind"] == "request" and asked["read"] is False
    assert asked["subject"] == {
        "type": "mentorship_request", "id": request_id,
        "url": f"{settings.base_url}/mentorship/requests/{request_id}",
    }  # fmt: skip
    assert asked["actor"]["username"] == requester.username and asked["actor"]["instance"] == settings.host
    assert notifications(client, requester) == []  # never the person who did it

    api_do(client, request_id, "accept", mentor)
    [accepted] = notifications(client, requester)
    assert accepted["kind"] == "accepted" and accepted["actor"]["username"] == mentor.username
    assert unread(client, mentor) == 1 and unread(client, requester) == 1

    api_write(client, request_id, requester, "When do we start?")
    api_write(client, request_id, mentor, "Monday.")
    assert [n["kind"] for n in notifications(client, mentor)] == ["message", "request"]
    assert [n["kind"] for n in notifications(client, requester)] == ["message", "accepted"]
    assert notifications(client, mentor)[0]["actor"]["username"] == requester.username

    api_do(client, request_id, "withdraw", requester)
    assert [n["kind"] for n in notifications(client, mentor)] == ["withdrawn", "message", "request"]
    assert unread(client, mentor) == 3 and unread(client, requester) == 2

    declined = api_ask(client, offer_id, requester)
    api_do(client, declined, "decline", mentor)
    assert notifications(client, requester)[0]["kind"] == "declined" and unread(client, mentor) == 4


def test_answers_from_elsewhere_reach_the_requester(client, settings, people, admin, community):
    """What a peer's answers and a failed delivery record on the requester's side; `received` tells nobody."""
    mentor, requester = people.make("mentor"), people.make("asker")
    offer_id = make_offer(client, admin, community, mentor)
    received = api_ask(client, offer_id, requester)
    step(settings, received, "received", mentor.username, state="pending")
    failed = api_ask(client, make_offer(client, admin, community, mentor, "Go"), requester)
    step(settings, failed, "failed", None, state="failed")
    refused = api_ask(client, make_offer(client, admin, community, mentor, "Zig"), requester)
    step(settings, refused, "refused", mentor.username, state="refused")
    told = notifications(client, requester)
    assert [(n["kind"], n["subject"]["id"]) for n in told] == [("refused", refused), ("failed", failed)]
    assert told[0]["actor"]["username"] == mentor.username and told[1]["actor"] is None
    assert unread(client, mentor) == 3  # the three requests, nothing more


def test_remote_people_are_told_by_their_own_instance(client, settings, people, admin, community):
    mentor = people.make("mentor")
    offer_id = make_offer(client, admin, community, mentor)
    stranger = remote_person(settings)
    request_id = ask(settings, offer_id, stranger, notifications_only=True)
    [asked] = notifications(client, mentor)
    assert asked["actor"]["username"] == stranger and asked["actor"]["instance"] == "elsewhere.example"

    step(settings, request_id, "accepted", mentor.username, state="accepted", notifications_only=True)
    step(settings, request_id, "message", mentor.username, body="Welcome!", notifications_only=True)
    step(settings, request_id, "message", stranger, body="Thanks!", notifications_only=True)

    async def rows_for_stranger(session: AsyncSession) -> int:
        told = select(Notification).join(User, Notification.user_id == User.id).where(User.username == stranger)
        return len(list(await session.scalars(told)))

    assert in_session(settings, rows_for_stranger) == 0
    assert [n["kind"] for n in notifications(client, mentor)] == ["message", "request"]


def test_marking_read_by_ids_and_all_touches_only_my_own(client, settings, people, admin, community):
    mentor, requester, other = people.make("mentor"), people.make("asker"), people.make("other")
    offer_id = make_offer(client, admin, community, mentor)
    request_id = api_ask(client, offer_id, requester)
    for body in ("one", "two", "three"):
        api_write(client, request_id, requester, body)
    mine = notifications(client, mentor)
    assert len(mine) == 4 and unread(client, mentor) == 4

    # Someone else's ids are not theirs to mark: nothing changes, and their own count (none) comes back.
    ids = [n["id"] for n in mine]
    stolen = client.post(f"{NOTIFICATIONS}/read", json={"ids": ids}, headers=other.auth)
    assert stolen.status_code == 200 and stolen.json() == {"unread": 0}
    assert unread(client, mentor) == 4

    marked = client.post(f"{NOTIFICATIONS}/read", json={"ids": ids[:2]}, headers=mentor.auth)
    assert marked.status_code == 200 and marked.json() == {"unread": 2}
    assert [n["read"] for n in notifications(client, mentor)] == [True, True, False, False]
    assert [n["id"] for n in notifications(client, mentor, unread="true")] == ids[2:]
    again = client.post(f"{NOTIFICATIONS}/read", json={"ids": ids[:1]}, headers=mentor.auth)
    assert again.json() == {"unread": 2}

    everything = client.post(f"{NOTIFICATIONS}/read", json={"all": True}, headers=mentor.auth)
    assert everything.status_code == 200 and everything.json() == {"unread": 0}
    assert notifications(client, mentor, unread="true") == []
    assert all(n["read"] for n in notifications(client, mentor))


def test_the_list_pages_newest_first_with_a_cursor(client, settings, people, admin, community):
    mentor, requester = people.make("mentor"), people.make("asker")
    offer_id = make_offer(client, admin, community, mentor)
    request_id = api_ask(client, offer_id, requester)
    for n in range(4):
        api_write(client, request_id, requester, f"message {n}")
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get(NOTIFICATIONS, params=params, headers=mentor.auth)
        assert response.status_code == 200
        page = response.json()
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            assert "link" not in response.headers
            break
        assert response.headers["link"].endswith(f'cursor={cursor}>; rel="next"')
    assert pages == 3 and len({n["id"] for n in seen}) == 5
    assert [n["created_at"] for n in seen] == sorted((n["created_at"] for n in seen), reverse=True)
    assert seen[-1]["kind"] == "request"

    unread_page = client.get(NOTIFICATIONS, params={"unread": "true", "limit": 4}, headers=mentor.auth).json()
    assert len(unread_page["items"]) == 4 and unread_page["next_cursor"] is not None


def test_signed_in_only_and_marking_needs_the_write_scope(client, people):
    assert client.get(NOTIFICATIONS).status_code == 401
    assert client.post(f"{NOTIFICATIONS}/read", json={"all": True}).status_code == 401
    reader = people.make("reader", scope="read")
    assert client.get(NOTIFICATIONS, headers=reader.auth).status_code == 200
    assert client.post(f"{NOTIFICATIONS}/read", json={"all": True}, headers=reader.auth).status_code == 403


@pytest.mark.parametrize(
    "body",
    [{}, {"all": False}, {"ids": []}, {"ids": ["not-an-id"]}, {"ids": [str(uuid.uuid4())], "all": True}, {"x": 1}],
)
def test_marking_read_wants_ids_or_all(client, people, body):
    response = client.post(f"{NOTIFICATIONS}/read", json=body, headers=people.make("marker").auth)
    assert response.status_code == 422, response.text


def test_bad_cursor_and_limit_are_refused(client, people):
    person = people.make("pager")
    assert client.get(NOTIFICATIONS, params={"cursor": "nonsense"}, headers=person.auth).status_code == 422
    for limit in (0, 101):
        assert client.get(NOTIFICATIONS, params={"limit": limit}, headers=person.auth).status_code in (400, 422)


# -- mail ------------------------------------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def confirm_email(settings: Settings, username: str, email: str, *, confirmed: bool = True) -> None:
    async def work(session: AsyncSession) -> None:
        person = await _person(session, username)
        person.email, person.email_confirmed_at = email, utcnow() if confirmed else None

    in_session(settings, work)


def run_mail_jobs(settings: Settings) -> int:
    async def work() -> int:
        engine = create_engine(settings.database_url)
        try:
            return await MailJobs(settings, create_sessionmaker(engine))()
        finally:
            await engine.dispose()

    return asyncio.run(work())


def mail_jobs(settings: Settings) -> list[Job]:
    async def work(session: AsyncSession) -> list[Job]:
        return list(await session.scalars(select(Job).where(Job.kind == "mail").order_by(Job.created_at)))

    return in_session(settings, work)


@pytest.fixture
def mailing(fresh_database: str, tmp_path: Path, smtp) -> Iterator[tuple[Settings, TestClient, People, Inbox]]:
    """An instance of its own that mails through the local SMTP server: the worker's mail step claims every
    due mail job, which must be this test's alone."""
    inbox, port = smtp
    mail_settings = Settings(
        base_url="http://127.0.0.1:8000", instance_name="Kith Test", data_dir=tmp_path, database_url=fresh_database,
        secret_key="test-secret", rate_limits=ROOMY, smtp_host="127.0.0.1", smtp_port=port, mail_from="kith@test",
    )  # fmt: skip
    with TestClient(app=create_app(mail_settings), base_url=mail_settings.base_url) as client:
        yield mail_settings, client, People(mail_settings), inbox


def test_one_mail_per_notification_to_a_confirmed_address(mailing):
    settings, client, people, inbox = mailing
    admin, mentor, requester = people.make("admin", admin=True), people.make("mentor"), people.make("asker")
    community = client.post("/api/v1/communities", json={"slug": "mail", "name": "Mail"}, headers=admin.auth).json()
    offer_id = make_offer(client, admin, community, mentor, title="Rust\nBcc: all@example.org")
    confirm_email(settings, mentor.username, "mentor@example.org")
    confirm_email(settings, requester.username, "asker@example.org", confirmed=False)

    request_id = api_ask(client, offer_id, requester)
    api_do(client, request_id, "accept", mentor)  # the requester's address is not confirmed: no mail
    api_write(client, request_id, requester, "Thank you!\nSee you Monday.")
    # Queued with the notifications, never sent in the writer's request.
    assert len(mail_jobs(settings)) == 2 and inbox.messages == []

    assert run_mail_jobs(settings) == 2
    assert len(inbox.messages) == 2
    assert all(m["To"] == "mentor@example.org" and m["From"] == "kith@test" for m in inbox.messages)
    # A line break in a title stays in the subject, as a space: it adds no header.
    subjects = [str(make_header(decode_header(m["Subject"]))) for m in inbox.messages]
    assert all("Bcc" not in m for m in inbox.messages)
    assert sorted(subjects) == [
        f"{requester.username} asked for a seat on “Rust Bcc: all@example.org”.",
        f"{requester.username} sent a message about “Rust Bcc: all@example.org”.",
    ]
    bodies = [m.get_payload(decode=True).decode().replace("\r\n", "\n") for m in inbox.messages]
    link = f"{settings.base_url}/mentorship/requests/{request_id}"
    assert all(link in body for body in bodies)
    assert any("> Thank you!\n> See you Monday." in body for body in bodies)
    assert {job.state for job in mail_jobs(settings)} == {"done"}
    assert run_mail_jobs(settings) == 0 and len(inbox.messages) == 2


def test_a_mail_server_that_is_down_is_tried_again_later(mailing):
    settings, client, people, inbox = mailing
    admin, mentor, requester = people.make("admin", admin=True), people.make("mentor"), people.make("asker")
    community = client.post("/api/v1/communities", json={"slug": "down", "name": "Down"}, headers=admin.auth).json()
    offer_id = make_offer(client, admin, community, mentor)
    confirm_email(settings, mentor.username, "mentor@example.org")
    api_ask(client, offer_id, requester)

    down = replace(settings, smtp_port=free_port())
    assert run_mail_jobs(down) == 1
    [job] = mail_jobs(settings)
    assert job.state == "pending" and job.attempts == 1 and job.last_error
    assert job.next_attempt_at > utcnow()
    assert unread(client, mentor) == 1  # the notification stands
    assert inbox.messages == []
