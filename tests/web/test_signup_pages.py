"""The sign-up page, invite links and the sign-ups page, in each registration mode."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import join
from tests.web.conftest import csrf_token, sign_in, submit

PASSWORD = "a long passphrase"


@pytest.fixture
def browser_in(settings: Settings) -> Iterator[Callable[[str], TestClient]]:
    """A fresh browser (its own cookies) on an instance in the given registration mode."""
    clients: list[TestClient] = []

    def make(mode: str) -> TestClient:
        # An app of its own: one app's lifespan runs once at a time.
        client = TestClient(app=create_app(replace(settings, registration=mode)), base_url=settings.base_url)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _name() -> str:
    return f"web-{uuid.uuid4().hex[:8]}"


def _sign_up(client: TestClient, page: str, **fields: str):  # type: ignore[no-untyped-def]
    form = client.get(page)
    assert form.status_code == 200, form.text
    data = {"_csrf_token": csrf_token(form.text), "password": PASSWORD, **fields}
    code = re.search(r'name="invite" value="([^"]+)"', form.text)
    if code:
        data["invite"] = code.group(1)
    return client.post("/signup", data=data, follow_redirects=False)


def test_closed_mode_says_so_and_offers_no_sign_up(browser_in):
    browser = browser_in("closed")
    page = browser.get("/signup")
    assert page.status_code == 403 and "Registration is closed" in page.text
    assert 'href="/signup"' not in browser.get("/login").text
    token = csrf_token(browser.get("/login").text)
    refused = browser.post("/signup", data={"_csrf_token": token, "username": _name(), "password": PASSWORD})
    assert refused.status_code == 403


def test_open_mode_signs_up_and_signs_in(browser_in):
    browser = browser_in("open")
    assert 'href="/signup"' in browser.get("/").text
    username = _name()
    response = _sign_up(browser, "/signup", username=username, display_name="Wren")
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert f'Sign out <span class="who">{username}</span>' in browser.get("/").text


def test_form_errors_are_shown_beside_the_fields_and_keep_what_was_typed(browser_in):
    browser = browser_in("open")
    response = _sign_up(browser, "/signup", username="inbox", email="wren@example.org")
    assert response.status_code == 422
    assert 'id="username-error"' in response.text and "reserved" in response.text
    assert 'value="wren@example.org"' in response.text


def test_approval_mode_asks_why_and_waits_for_an_admin(browser_in, admin):
    browser = browser_in("approval")
    assert "Why would you like to join?" in browser.get("/signup").text
    username = _name()
    missing = _sign_up(browser, "/signup", username=username)
    assert missing.status_code == 422 and 'id="reason-error"' in missing.text
    waiting = _sign_up(browser, "/signup", username=username, reason="I keep bees.")
    assert waiting.status_code == 200 and "waiting for an admin" in waiting.text

    response = submit(browser, "/login", "/login", {"username": username, "password": PASSWORD})
    assert response.status_code == 403 and "waiting for an admin" in response.text

    desk = browser_in("approval")
    sign_in(desk, admin.username)
    queue = desk.get("/admin/sign-ups")
    assert "I keep bees." in queue.text
    approved = submit(desk, "/admin/sign-ups", f"/admin/sign-ups/{username}/approve", {}, follow_redirects=False)
    assert approved.status_code == 303
    after = desk.get("/admin/sign-ups").text
    assert f"{username} can sign in now." in after and f"@{username}" not in after
    sign_in(browser, username, PASSWORD)


def test_only_admins_see_the_sign_ups(browser_in, people):
    browser = browser_in("approval")
    sign_in(browser, people.make().username)
    assert browser.get("/admin/sign-ups").status_code == 403


def test_a_moderator_makes_an_invite_link_and_the_invited_person_joins_the_community(
    browser_in, client, admin, people, community
):
    moderator = people.make("mod")
    join(client, admin, community, moderator, "moderator")
    desk = browser_in("invite")
    sign_in(desk, moderator.username)
    page = desk.get(f"/settings/invites?community={community['slug']}")
    assert f'<option value="{community["slug"]}" selected>' in page.text
    assert "None: the instance only" not in page.text  # only admins invite to the instance alone
    made = desk.post(
        "/settings/invites",
        data={
            "_csrf_token": csrf_token(page.text),
            "community": community["slug"],
            "max_uses": "1",
            "expires_in_days": "7",
        },
    )
    assert made.status_code == 200
    link = re.search(r'id="invite-link" class="secret" readonly value="([^"]+)"', made.text).group(1)
    path = link.removeprefix("http://127.0.0.1:8000")

    newcomer = browser_in("invite")
    assert "by invitation" in newcomer.get("/signup").text
    assert community["name"] in newcomer.get(path).text
    username = _name()
    joined = _sign_up(newcomer, path, username=username)
    assert joined.status_code == 303 and joined.headers["location"] == f"/c/{community['slug']}"
    members = client.get(f"/api/v1/communities/{community['slug']}/members").json()["items"]
    assert {m["username"]: m["role"] for m in members}[username] == "member"

    used = browser_in("invite").get(path)
    assert used.status_code == 409 and "used as many times" in used.text
    assert browser_in("invite").get("/join/not-a-code").status_code == 404
    assert "1 of 1" in desk.get("/settings/invites").text


def test_a_member_who_moderates_nothing_cannot_make_invites(browser_in, people):
    browser = browser_in("invite")
    sign_in(browser, people.make().username)
    page = browser.get("/settings/invites")
    assert page.status_code == 200 and "Instance admins and community moderators make invite links." in page.text
    refused = browser.post("/settings/invites", data={"_csrf_token": csrf_token(page.text), "max_uses": "1"})
    assert refused.status_code == 403
