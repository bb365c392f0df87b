"""Token expiry and password changes through the API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.service import AccountService
from server.models import ApiToken
from tests.support.accounts import execute, password_works, with_session

PASSWORD = "correct horse"  # what tests/conftest.py's People gives every user


def _tokens(client, person) -> list[dict]:  # type: ignore[no-untyped-def]
    return client.get("/api/v1/me/tokens", headers=person.auth).json()["items"]


def test_a_token_past_its_expiry_is_refused_with_401_and_still_listed(client, people, settings):
    person = people.make("expiring")
    expires_at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = client.post(
        "/api/v1/me/tokens",
        json={"name": "month", "scope": "read", "expires_at": expires_at.isoformat()},
        headers=person.auth,
    )
    assert created.status_code == 201, created.text
    token = created.json()
    assert datetime.fromisoformat(token["expires_at"]) == expires_at
    auth = {"Authorization": f"Bearer {token['secret']}"}
    assert client.get("/api/v1/me", headers=auth).status_code == 200

    # Time passes: the token's expiry is moved into the past, as the clock would.
    past = datetime.now(UTC) - timedelta(seconds=1)
    execute(settings, update(ApiToken).where(ApiToken.id == uuid.UUID(token["id"])).values(expires_at=past))
    refused = client.get("/api/v1/me", headers=auth)
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "expired" in refused.json()["detail"]
    assert refused.headers["www-authenticate"].startswith("Bearer")
    # Still listed, with its expiry, so its owner sees why it stopped working.
    listed = {t["id"]: t for t in _tokens(client, person)}
    assert listed[token["id"]]["expires_at"] is not None
    # A token without an expiry keeps working.
    assert client.get("/api/v1/me", headers=person.auth).status_code == 200
    assert all("expires_at" in t for t in listed.values())


def test_an_expiry_must_be_in_the_future_and_name_its_timezone(client, people):
    person = people.make("badexpiry")
    before = len(_tokens(client, person))
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
    far = "9999-12-31T23:59:59-23:59"  # beyond any real plan, and past year 9999 once in UTC
    for value in (past, naive, far, "next week"):
        response = client.post(
            "/api/v1/me/tokens", json={"name": "x", "scope": "read", "expires_at": value}, headers=person.auth
        )
        assert response.status_code == 422, (value, response.text)
        assert response.json()["errors"][0]["field"] == "expires_at"
    assert len(_tokens(client, person)) == before


def test_changing_the_password_needs_the_current_one_and_keeps_tokens(client, people, settings):
    person = people.make("changer")
    wrong = client.post(
        "/api/v1/me/password",
        json={"current_password": "not it at all", "new_password": "a brand new passphrase"},
        headers=person.auth,
    )
    assert wrong.status_code == 403
    assert wrong.headers["content-type"].startswith("application/problem+json")
    assert wrong.json()["errors"][0]["field"] == "current_password"
    assert password_works(settings, person.username, PASSWORD)
    assert not password_works(settings, person.username, "a brand new passphrase")

    changed = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=person.auth,
    )
    assert changed.status_code == 204, changed.text
    assert password_works(settings, person.username, "a brand new passphrase")
    assert not password_works(settings, person.username, PASSWORD)
    # API tokens are credentials of their own: they survive the change (revoke them one by one).
    assert client.get("/api/v1/me", headers=person.auth).status_code == 200


def test_a_bad_new_password_or_a_read_token_changes_nothing(client, people, settings):
    person = people.make("keeper")
    short = client.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=person.auth
    )
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "new_password"
    missing = client.post("/api/v1/me/password", json={"new_password": "long enough"}, headers=person.auth)
    assert missing.status_code in (400, 422)
    reader = people.make("reader", scope="read")
    read_only = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=reader.auth,
    )
    assert read_only.status_code == 403
    anonymous = client.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    )
    assert anonymous.status_code == 401
    assert password_works(settings, person.username, PASSWORD)
    assert password_works(settings, reader.username, PASSWORD)


def test_an_account_that_signs_in_elsewhere_has_no_password_to_change(client, settings):
    async def work(session: AsyncSession) -> str:
        service = AccountService(session, settings)
        user = await service.oidc_user("https://id.example", uuid.uuid4().hex, username_hint="oidc-person")
        return (await service.create_token(user, "script", "write")).secret

    secret = with_session(settings, work)
    response = client.post(
        "/api/v1/me/password",
        json={"current_password": "", "new_password": "a brand new passphrase"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 409
    assert "kith user set-password" in response.json()["detail"]
