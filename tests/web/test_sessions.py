"""Sign-ins kept on the server: signing out and changing a password end them, wherever the cookie went."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from litestar.testing import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.service import AccountService
from server.app import create_app
from server.models import User, WebSession
from server.settings import Settings
from tests.support.accounts import execute, password_works, with_session
from tests.web.conftest import PASSWORD, sign_in, submit

NEW_PASSWORD = "a brand new passphrase"


def _signed_in_as(browser: TestClient) -> str | None:
    home = browser.get("/")
    assert home.status_code == 200
    if "Sign out" not in home.text:
        return None
    return home.text.split('<span class="who">', 1)[1].split("</span>", 1)[0]


def _browser(settings: Settings) -> TestClient:
    """Another browser, served by an app of its own (as by another server process): two test clients on one
    app would share its connection pool across their event loops."""
    return TestClient(app=create_app(settings), base_url=settings.base_url)


def _change(browser: TestClient, current: str, new: str, again: str | None = None):  # type: ignore[no-untyped-def]
    fields = {"current_password": current, "new_password": new, "new_password_again": new if again is None else again}
    return submit(browser, "/settings/password", "/settings/password", fields, follow_redirects=False)


def test_a_cookie_copied_before_sign_out_signs_in_nobody_after(visitor, people, settings):
    person = people.make("stolen")
    sign_in(visitor, person.username)
    with _browser(settings) as thief:
        thief.cookies.update(visitor.cookies)
        assert _signed_in_as(thief) == person.username
        assert submit(visitor, "/", "/logout", {}, follow_redirects=False).status_code == 303
        assert _signed_in_as(visitor) is None
        assert _signed_in_as(thief) is None
        assert thief.get("/settings/tokens", follow_redirects=False).status_code == 303


def test_a_lapsed_sign_in_signs_in_nobody(visitor, people, settings):
    person = people.make("lapsed")
    sign_in(visitor, person.username)
    assert _signed_in_as(visitor) == person.username
    # Fourteen days pass: the sign-in's expiry is moved into the past, as the clock would.
    user_id = select(User.id).where(User.username == person.username).scalar_subquery()
    past = datetime.now(UTC) - timedelta(seconds=1)
    execute(settings, update(WebSession).where(WebSession.user_id == user_id).values(expires_at=past))
    assert _signed_in_as(visitor) is None


def test_changing_the_password_signs_out_other_browsers_but_not_this_one(visitor, client, people, settings):
    person = people.make("mover")
    sign_in(visitor, person.username)
    with _browser(settings) as laptop:
        sign_in(laptop, person.username)
        response = _change(visitor, PASSWORD, NEW_PASSWORD)
        assert response.status_code == 303 and response.headers["location"] == "/settings/password"
        assert "Password changed" in visitor.get("/settings/password").text
        assert _signed_in_as(visitor) == person.username
        assert _signed_in_as(laptop) is None
    # The API token survives, as documented; the old password does not.
    assert client.get("/api/v1/me", headers=person.auth).status_code == 200
    assert password_works(settings, person.username, NEW_PASSWORD)
    assert not password_works(settings, person.username, PASSWORD)
    with _browser(settings) as fresh:
        sign_in(fresh, person.username, NEW_PASSWORD)
        assert _signed_in_as(fresh) == person.username


def test_a_wrong_current_password_changes_nothing(visitor, people, settings):
    person = people.make("wrong")
    sign_in(visitor, person.username)
    with _browser(settings) as laptop:
        sign_in(laptop, person.username)
        wrong = _change(visitor, "not the password", NEW_PASSWORD)
        assert wrong.status_code == 403
        assert wrong.headers["content-type"].startswith("text/html")
        assert 'id="current_password-error"' in wrong.text
        mismatch = _change(visitor, PASSWORD, NEW_PASSWORD, again="something else entirely")
        assert mismatch.status_code == 422 and 'id="new_password_again-error"' in mismatch.text
        short = _change(visitor, PASSWORD, "short")
        assert short.status_code == 422 and 'id="new_password-error"' in short.text
        assert _signed_in_as(laptop) == person.username
    assert password_works(settings, person.username, PASSWORD)
    assert not password_works(settings, person.username, NEW_PASSWORD)


def test_the_password_form_needs_its_csrf_token(visitor, people, settings):
    person = people.make("forged")
    sign_in(visitor, person.username)
    forged = visitor.post(
        "/settings/password",
        data={"current_password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD},
    )
    assert forged.status_code == 403
    assert password_works(settings, person.username, PASSWORD)


def test_a_password_change_through_the_api_signs_out_every_browser(visitor, client, people):
    person = people.make("apichange")
    sign_in(visitor, person.username)
    response = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=person.auth,
    )
    assert response.status_code == 204, response.text
    assert _signed_in_as(visitor) is None


def test_the_operator_sets_a_password_from_stdin_and_signs_the_person_out(visitor, people, settings, tmp_path):
    person = people.make("forgetful")
    sign_in(visitor, person.username)
    env = {**os.environ, "KITH_DATA_DIR": str(tmp_path), "KITH_DATABASE_URL": settings.database_url}

    def kith(*args: str, stdin: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "server.cli", *args]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=60)

    done = kith("user", "set-password", person.username, "--password-stdin", stdin=f"{NEW_PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert _signed_in_as(visitor) is None
    assert password_works(settings, person.username, NEW_PASSWORD)
    assert not password_works(settings, person.username, PASSWORD)

    short = kith("user", "set-password", person.username, "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr and "Traceback" not in short.stderr
    ghost = kith("user", "set-password", "ghost-" + uuid.uuid4().hex[:6], "--password-stdin", stdin="long enough pw\n")
    assert ghost.returncode != 0 and "no local user named" in ghost.stderr
    assert password_works(settings, person.username, NEW_PASSWORD)


def test_sign_in_checks_a_password_hash_whether_or_not_the_name_exists(visitor, people, settings, monkeypatch):
    known = people.make("known")

    async def oidc_only(session: AsyncSession) -> str:
        user = await AccountService(session, settings).oidc_user(
            "https://id.example", uuid.uuid4().hex, username_hint="elsewhere"
        )
        return user.username

    no_password = with_session(settings, oidc_only)
    calls: list[str] = []
    verify = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str, password: str) -> bool:  # noqa: A002 - argon2's own name
        calls.append(hash)
        return verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    for username in (known.username, f"nobody-{uuid.uuid4().hex[:6]}", no_password):
        calls.clear()
        response = submit(visitor, "/login", "/login", {"username": username, "password": "wrong password"})
        assert response.status_code == 400, username
        assert len(calls) == 1, username
        assert calls[0].startswith("$argon2")


def test_the_tokens_page_gives_tokens_a_lifetime(visitor, client, people):
    person = people.make("lifetime")
    sign_in(visitor, person.username)
    created = submit(
        visitor, "/settings/tokens", "/settings/tokens", {"name": "week", "scope": "read", "expires_in_days": "7"}
    )
    assert created.status_code == 200, created.text
    listed = {t["name"]: t for t in client.get("/api/v1/me/tokens", headers=person.auth).json()["items"]}
    expires_at = datetime.fromisoformat(listed["week"]["expires_at"])
    assert timedelta(days=6) < expires_at - datetime.now(UTC) <= timedelta(days=7)
    odd = submit(
        visitor, "/settings/tokens", "/settings/tokens", {"name": "odd", "scope": "read", "expires_in_days": "-3"}
    )
    assert odd.status_code == 422 and "odd" not in {
        t["name"] for t in client.get("/api/v1/me/tokens", headers=person.auth).json()["items"]
    }
