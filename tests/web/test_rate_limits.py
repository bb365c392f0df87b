"""Rate limits on sign-in, token creation, search and preview, on both databases.

Each test runs an instance of its own with low limits and a limiter whose clock the test moves, so a window
passes without waiting. The in-process client always comes from one address; tests/web/test_client_address.py
covers addresses, proxies and X-Forwarded-For against a real server.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.ratelimit import Limiter
from server.settings import RateLimits, Settings
from tests.support.limits import Clock
from tests.web.conftest import PASSWORD, csrf_token, sign_in, submit

HX = {"HX-Request": "true"}
LOW = RateLimits(
    sign_in_account="3/minute",
    sign_in_address="5/minute",
    token_create="2/hour",
    registration="2/hour",
    search="3/minute",
    preview="3/minute",
    inbox="3/minute",
)


@dataclass
class Limited:
    client: TestClient
    clock: Clock

    def browser(self) -> TestClient:
        """Another browser (its own cookies) on the same instance, from the same address."""
        return TestClient(app=self.client.app, base_url=str(self.client.base_url))


@pytest.fixture
def limited(settings: Settings) -> Iterator[Limited]:
    low = replace(settings, rate_limits=LOW)
    clock = Clock()
    app = create_app(low)
    app.state.limiter = Limiter(low.rate_limits, clock=clock)
    with TestClient(app=app, base_url=low.base_url) as client:
        yield Limited(client, clock)


def try_sign_in(client: TestClient, username: str, password: str):  # type: ignore[no-untyped-def]
    return submit(client, "/login", "/login", {"username": username, "password": password}, follow_redirects=False)


def retry_after(response) -> int:  # type: ignore[no-untyped-def]
    return int(response.headers["retry-after"])


def test_failed_sign_ins_to_one_account_are_refused_with_429_until_the_window_passes(limited, people):
    person = people.make("guessed")
    statuses = [try_sign_in(limited.client, person.username, "wrong").status_code for _ in range(3)]
    assert statuses == [400, 400, 400]
    refused = try_sign_in(limited.client, person.username, PASSWORD)  # even the right password waits
    assert refused.status_code == 429
    assert "Too many failed sign-in attempts" in refused.text and "text/html" in refused.headers["content-type"]
    assert 1 <= retry_after(refused) <= 60
    assert "kith_session" not in refused.headers.get("set-cookie", "")

    limited.clock.now += retry_after(refused)
    assert try_sign_in(limited.client, person.username, PASSWORD).status_code == 303


def test_the_account_limit_spares_other_accounts_and_the_address_limit_closes_them_all(limited, people):
    guessed, other, last = people.make("guessed"), people.make("other"), people.make("last")
    for _ in range(3):
        assert try_sign_in(limited.client, guessed.username, "wrong").status_code == 400
    assert try_sign_in(limited.client, guessed.username, PASSWORD).status_code == 429
    # The same address may still sign in to another account: only three of its five failures are spent.
    with limited.browser() as browser:
        assert try_sign_in(browser, other.username, PASSWORD).status_code == 303
    # Two more failures, on names that do not even exist, spend the address's five.
    for name in ("nobody-1", "nobody-2"):
        assert try_sign_in(limited.client, name, "wrong").status_code == 400
    with limited.browser() as browser:
        refused = try_sign_in(browser, last.username, PASSWORD)
    assert refused.status_code == 429 and "from your address" in refused.text
    limited.clock.now += 61
    with limited.browser() as browser:
        assert try_sign_in(browser, last.username, PASSWORD).status_code == 303


def test_token_creation_is_limited_per_person_on_the_api_and_the_page(limited, people):
    person = people.make("minter")
    auth = person.auth
    for n in range(2):
        assert limited.client.post("/api/v1/me/tokens", json={"name": f"t{n}"}, headers=auth).status_code == 201
    refused = limited.client.post("/api/v1/me/tokens", json={"name": "one too many"}, headers=auth)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["status"] == 429 and "Too many tokens" in refused.json()["detail"]
    assert 1 <= retry_after(refused) <= 3600
    names = [t["name"] for t in limited.client.get("/api/v1/me/tokens", headers=auth).json()["items"]]
    assert "one too many" not in names and len(names) == 3  # the fixture's token and the two above

    with limited.browser() as browser:
        sign_in(browser, person.username)
        page = submit(browser, "/settings/tokens", "/settings/tokens", {"name": "from the page", "scope": "read"})
        assert page.status_code == 429 and "Too many tokens" in page.text and "retry-after" in page.headers
        limited.clock.now += 3600
        page = submit(browser, "/settings/tokens", "/settings/tokens", {"name": "from the page", "scope": "read"})
        assert page.status_code == 200 and "from the page" in page.text


def test_search_is_limited_per_address_for_strangers_and_per_person_for_people(limited, people):
    for _ in range(3):
        assert limited.client.get("/api/v1/search", params={"q": "compost"}).status_code != 429
    refused = limited.client.get("/api/v1/search", params={"q": "compost"})
    assert refused.status_code == 429 and refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= retry_after(refused) <= 60
    # The search page from the same address shares the count, and says so in words.
    page = limited.client.get("/search", params={"q": "compost"}, headers={"Accept": "text/html"})
    assert page.status_code == 429 and "Too many searches" in page.text and "retry-after" in page.headers
    # A signed-in person counts on their own.
    with limited.browser() as browser:
        sign_in(browser, people.make("reader").username)
        assert browser.get("/search", params={"q": "compost"}).status_code == 200
    limited.clock.now += 60
    assert limited.client.get("/api/v1/search", params={"q": "compost"}).status_code != 429


def test_markdown_preview_is_limited_per_person_live_and_without_javascript(limited, people, admin):
    slug = "preview-" + people.make("x").username[-8:]
    made = limited.client.post("/api/v1/communities", json={"slug": slug, "name": "Previews"}, headers=admin.auth)
    assert made.status_code == 201, made.text
    with limited.browser() as browser:
        sign_in(browser, admin.username)
        token = csrf_token(browser.get(f"/c/{slug}/new-guide").text)
        for _ in range(3):
            live = browser.post("/preview", data={"_csrf_token": token, "body_markdown": "*soft*"}, headers=HX)
            assert live.status_code == 200 and "<em>soft</em>" in live.text
        refused = browser.post("/preview", data={"_csrf_token": token, "body_markdown": "*soft*"}, headers=HX)
        assert refused.status_code == 429 and "Too many previews" in refused.text and "retry-after" in refused.headers
        form = {"title": "Compost", "body_markdown": "*soft*", "action": "preview"}
        no_js = submit(browser, f"/c/{slug}/new-guide", f"/c/{slug}/guides", form)
        assert no_js.status_code == 429 and "Too many previews" in no_js.text
        limited.clock.now += 60
        assert submit(browser, f"/c/{slug}/new-guide", f"/c/{slug}/guides", form).status_code == 200


def test_wrong_current_passwords_count_as_failed_sign_ins(limited, people):
    # A stolen token or session must not become a way to guess the password it cannot change.
    person = people.make("changer")
    change = {"current_password": "wrong guess", "new_password": "a brand new password"}
    for _ in range(3):
        assert limited.client.post("/api/v1/me/password", json=change, headers=person.auth).status_code == 403
    right = {"current_password": PASSWORD, "new_password": "a brand new password"}
    refused = limited.client.post("/api/v1/me/password", json=right, headers=person.auth)
    assert refused.status_code == 429 and retry_after(refused) >= 1
    assert try_sign_in(limited.client, person.username, "a brand new password").status_code == 429  # unchanged
    limited.clock.now += retry_after(refused)
    assert try_sign_in(limited.client, person.username, PASSWORD).status_code == 303
