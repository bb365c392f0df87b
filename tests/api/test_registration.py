"""Registration modes through `POST /api/v1/accounts`, invites and approvals, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select, update

from server.app import create_app
from server.db import create_engine, create_sessionmaker, utcnow
from server.errors import ProblemError
from server.models import Invite, Membership, User
from server.registration.schemas import AccountCreate
from server.registration.service import RegistrationService
from server.settings import Settings
from tests.conftest import Person, join

PASSWORD = "a long passphrase"


@pytest.fixture
def in_mode(settings: Settings) -> Iterator[Callable[[str], TestClient]]:
    """A client of an instance in the given registration mode, over the same database as the others."""
    clients: list[TestClient] = []

    def make(mode: str) -> TestClient:
        client = TestClient(app=create_app(replace(settings, registration=mode)), base_url=settings.base_url)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _name(prefix: str = "new") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _run(settings: Settings, work):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _user(settings: Settings, username: str) -> User | None:
    return _run(settings, lambda s: s.scalar(select(User).where(User.username == username, User.local.is_(True))))


def _invite_row(settings: Settings, invite_id: str) -> Invite:
    return _run(settings, lambda s: s.get(Invite, uuid.UUID(invite_id)))


def _is_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def _invite(client: TestClient, person: Person, **body) -> dict:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/invites", json=body, headers=person.auth)
    assert response.status_code == 201, response.text
    return response.json()


def test_closed_mode_answers_403_and_writes_nothing(in_mode, settings):
    client = in_mode("closed")
    assert client.get("/api/v1/instance").json()["registration"] == "closed"
    assert in_mode("approval").get("/api/v1/instance").json()["registration"] == "approval"
    username = _name()
    problem = _is_problem(client.post("/api/v1/accounts", json={"username": username, "password": PASSWORD}), 403)
    assert "closed" in problem["detail"]
    assert _user(settings, username) is None


def test_open_mode_makes_an_active_account_with_an_unconfirmed_email(in_mode, settings):
    client = in_mode("open")
    username = _name()
    body = {"username": username, "password": PASSWORD, "email": "ada@example.org", "display_name": "Ada"}
    response = client.post("/api/v1/accounts", json=body)
    assert response.status_code == 201, response.text
    account = response.json()
    assert account["state"] == "active" and account["display_name"] == "Ada"
    assert account["email"] == "ada@example.org" and account["email_confirmed"] is False
    assert _user(settings, username).pending is False
    again = _is_problem(client.post("/api/v1/accounts", json=body), 409)
    assert "taken" in again["detail"]


@pytest.mark.parametrize("name", ["admin", "inbox", "Actor", "well-known", "signup", "join", "u", "api"])
def test_reserved_usernames_are_refused_with_a_field_problem(in_mode, settings, name):
    problem = _is_problem(in_mode("open").post("/api/v1/accounts", json={"username": name, "password": PASSWORD}), 422)
    assert problem["errors"][0]["field"] == "username" and "reserved" in problem["errors"][0]["message"]


def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(in_mode, settings):
    client = in_mode("open")
    username = _name()
    for body, field in (
        ({"username": username, "password": "short"}, "password"),
        ({"username": username, "password": PASSWORD, "email": "not an address"}, "email"),
        ({"username": "Not Valid!", "password": PASSWORD}, "username"),
        ({"username": username, "password": PASSWORD, "role": "admin"}, None),
    ):
        response = client.post("/api/v1/accounts", json=body)
        assert response.status_code in (400, 422), response.text
        if field:
            assert response.json()["errors"][0]["field"] == field
    assert _user(settings, username) is None


def test_invite_mode_needs_an_invite(in_mode, settings):
    client = in_mode("invite")
    username = _name()
    problem = _is_problem(client.post("/api/v1/accounts", json={"username": username, "password": PASSWORD}), 403)
    assert "invit" in problem["detail"]
    unknown = {"username": username, "password": PASSWORD, "invite": "no-such-code"}
    _is_problem(client.post("/api/v1/accounts", json=unknown), 404)
    assert _user(settings, username) is None


def test_community_invite_makes_a_member_and_counts_its_use(in_mode, settings, admin, people, community):
    client = in_mode("invite")
    moderator = people.make("mod")
    join(client, admin, community, moderator, "moderator")
    invite = _invite(client, moderator, community=community["slug"], max_uses=2)
    assert invite["url"] == f"{settings.base_url}/join/{invite['code']}"
    username = _name()
    body = {"username": username, "password": PASSWORD, "invite": invite["code"]}
    response = client.post("/api/v1/accounts", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["communities"] == [community["slug"]]
    members = client.get(f"/api/v1/communities/{community['slug']}/members").json()["items"]
    assert {m["username"]: m["role"] for m in members}[username] == "member"
    assert _invite_row(settings, invite["id"]).uses == 1
    listed = client.get("/api/v1/invites", headers=moderator.auth).json()["items"]
    assert [(i["id"], i["uses"], i["state"]) for i in listed] == [(invite["id"], 1, "active")]
    assert all("code" not in i and "url" not in i for i in listed)


def test_used_up_expired_and_withdrawn_invites_are_refused_and_change_nothing(in_mode, settings, admin):
    client = in_mode("invite")
    used = _invite(client, admin, max_uses=1)
    first = client.post("/api/v1/accounts", json={"username": _name(), "password": PASSWORD, "invite": used["code"]})
    assert first.status_code == 201
    late = _name()
    body = {"username": late, "password": PASSWORD, "invite": used["code"]}
    assert "used" in _is_problem(client.post("/api/v1/accounts", json=body), 409)["detail"]

    expired = _invite(client, admin)
    _run(settings, lambda s: _expire(s, expired["id"]))
    body["invite"] = expired["code"]
    assert "expired" in _is_problem(client.post("/api/v1/accounts", json=body), 403)["detail"]

    withdrawn = _invite(client, admin)
    assert client.delete(f"/api/v1/invites/{withdrawn['id']}", headers=admin.auth).status_code == 204
    body["invite"] = withdrawn["code"]
    assert "withdrawn" in _is_problem(client.post("/api/v1/accounts", json=body), 403)["detail"]

    assert _user(settings, late) is None
    assert [_invite_row(settings, i["id"]).uses for i in (used, expired, withdrawn)] == [1, 0, 0]


async def _expire(session, invite_id: str) -> None:  # type: ignore[no-untyped-def]
    await session.execute(
        update(Invite).where(Invite.id == uuid.UUID(invite_id)).values(expires_at=utcnow() - timedelta(seconds=1))
    )
    await session.commit()


def test_a_refused_sign_up_leaves_the_invite_and_the_community_untouched(in_mode, settings, admin, people, community):
    client = in_mode("invite")
    invite = _invite(client, admin, community=community["slug"])
    taken = people.make()
    body = {"username": taken.username, "password": PASSWORD, "invite": invite["code"]}
    _is_problem(client.post("/api/v1/accounts", json=body), 409)
    assert _invite_row(settings, invite["id"]).uses == 0
    members = client.get(f"/api/v1/communities/{community['slug']}/members").json()["items"]
    assert taken.username not in {m["username"] for m in members}


def test_who_may_make_invites(in_mode, admin, people, community):
    client = in_mode("invite")
    member, moderator = people.make("member"), people.make("mod")
    join(client, admin, community, member)
    join(client, admin, community, moderator, "moderator")
    assert client.post("/api/v1/invites", json={"community": community["slug"]}, headers=member.auth).status_code == 403
    assert client.post("/api/v1/invites", json={}, headers=moderator.auth).status_code == 403  # the instance alone
    assert client.post("/api/v1/invites", json={}).status_code == 401
    bad = client.post("/api/v1/invites", json={"max_uses": 0}, headers=admin.auth)
    assert _is_problem(bad, 422)["errors"][0]["field"] == "max_uses"
    invite = _invite(client, moderator, community=community["slug"])
    assert client.delete(f"/api/v1/invites/{invite['id']}", headers=member.auth).status_code == 403
    assert client.delete(f"/api/v1/invites/{invite['id']}", headers=moderator.auth).status_code == 204
    assert in_mode("closed").post("/api/v1/invites", json={}, headers=admin.auth).status_code == 403


def test_approval_mode_sign_ups_wait_for_an_admin(in_mode, settings, admin, people):
    client = in_mode("approval")
    username = _name()
    no_reason = _is_problem(client.post("/api/v1/accounts", json={"username": username, "password": PASSWORD}), 422)
    assert no_reason["errors"][0]["field"] == "reason"
    body = {"username": username, "password": PASSWORD, "reason": "I teach Julia at the library."}
    response = client.post("/api/v1/accounts", json=body)
    assert response.status_code == 201 and response.json()["state"] == "pending"
    assert _user(settings, username).pending is True

    person = people.make()
    assert client.get("/api/v1/accounts/pending", headers=person.auth).status_code == 403
    pending = client.get("/api/v1/accounts/pending", headers=admin.auth).json()["items"]
    assert {"username": username, "reason": "I teach Julia at the library."}.items() <= next(
        p for p in pending if p["username"] == username
    ).items()
    assert client.post(f"/api/v1/accounts/{username}/approve", headers=person.auth).status_code == 403
    approved = client.post(f"/api/v1/accounts/{username}/approve", headers=admin.auth)
    assert approved.status_code == 200 and approved.json()["state"] == "active"
    assert _user(settings, username).pending is False
    assert client.post(f"/api/v1/accounts/{username}/approve", headers=admin.auth).status_code == 404


def test_a_refused_sign_up_is_removed_and_its_name_is_free(in_mode, settings, admin):
    client = in_mode("approval")
    username = _name()
    body = {"username": username, "password": PASSWORD, "reason": "hello"}
    assert client.post("/api/v1/accounts", json=body).status_code == 201
    assert client.post(f"/api/v1/accounts/{username}/reject", headers=admin.auth).status_code == 204
    assert _user(settings, username) is None
    assert client.post("/api/v1/accounts", json=body).status_code == 201


def test_an_invite_skips_the_approval(in_mode, admin):
    client = in_mode("approval")
    invite = _invite(client, admin)
    body = {"username": _name(), "password": PASSWORD, "invite": invite["code"]}
    response = client.post("/api/v1/accounts", json=body)
    assert response.status_code == 201 and response.json()["state"] == "active"


def test_racing_sign_ups_take_exactly_the_invites_uses(in_mode, settings, admin, community):
    """Eight sign-ups at once for an invite with three uses, each in its own session and connection, all started
    before any has committed: the first look at the invite lets them through, and only the conditional count
    decides. Exactly three get an account and a membership; the others get 409 and leave nothing behind."""
    invite = _invite(in_mode("invite"), admin, community=community["slug"], max_uses=3)
    invite_settings = replace(settings, registration="invite")
    names = [_name("race") for _ in range(8)]

    async def sign_up(sessions, username: str) -> int:  # type: ignore[no-untyped-def]
        async with sessions() as session:
            data = AccountCreate(username=username, password=PASSWORD, invite=invite["code"])
            try:
                await RegistrationService(session, invite_settings).sign_up(data)
            except ProblemError as exc:
                return exc.status
            return 201

    async def race() -> list[int]:
        engine = create_engine(settings.database_url)
        try:
            sessions = create_sessionmaker(engine)
            return list(await asyncio.gather(*(sign_up(sessions, name) for name in names)))
        finally:
            await engine.dispose()

    statuses = asyncio.run(race())
    assert sorted(statuses) == [201] * 3 + [409] * 5
    assert _invite_row(settings, invite["id"]).uses == 3
    winners = [name for name, status in zip(names, statuses, strict=True) if status == 201]
    rows = _run(settings, lambda s: s.scalars(select(User.username).where(User.username.in_(names))))
    assert sorted(rows) == sorted(winners)
    members = _run(
        settings,
        lambda s: s.scalar(select(func.count()).select_from(Membership).join(User).where(User.username.in_(names))),
    )
    assert members == 3


def test_sign_ups_are_rate_limited_per_address_and_a_refused_one_writes_nothing(settings):
    from tests.support.limits import ROOMY

    strict = replace(settings, registration="open", rate_limits=replace(ROOMY, registration="2/hour"))
    names = [_name() for _ in range(3)]
    with TestClient(app=create_app(strict), base_url=settings.base_url) as client:
        statuses = [
            client.post("/api/v1/accounts", json={"username": name, "password": PASSWORD}).status_code
            for name in names[:2]
        ]
        refused = client.post("/api/v1/accounts", json={"username": names[2], "password": PASSWORD})
    assert statuses == [201, 201]
    assert _is_problem(refused, 429)["detail"].startswith("Too many sign-ups")
    assert int(refused.headers["retry-after"]) > 0
    assert _user(settings, names[2]) is None
