"""Signing up in Debian's Chromium against real servers: through a moderator's invite link (with JavaScript and
without), and asking to join an instance whose admins approve sign-ups. The sign-up pages are checked with
axe-core and photographed for docs/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402  (test_browser skips without it)

from tests.support.server import KithServer
from tests.web.test_browser import AXE, CHROMIUM, CHROMIUM_ARGS, PASSWORD, SCREENSHOTS, VIEWPORTS, person


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def invite_kith() -> Iterator[KithServer]:
    with KithServer(env={"KITH_REGISTRATION": "invite"}) as server:
        server.create_user("ines", PASSWORD)
        api = httpx.Client(base_url=f"{server.base_url}/api/v1", headers={"Authorization": f"Bearer {server.token()}"})
        assert api.post("/communities", json={"slug": "beekeepers", "name": "Beekeepers"}).status_code == 201
        made = api.post("/communities/beekeepers/members", json={"username": "ines", "role": "moderator"})
        assert made.status_code == 201
        api.close()
        yield server


@pytest.fixture(scope="module")
def approval_kith() -> Iterator[KithServer]:
    with KithServer(env={"KITH_REGISTRATION": "approval"}, worker=False) as server:
        yield server


def _serious_problems(page: Page) -> list[str]:
    page.evaluate(AXE.read_text(encoding="utf-8"))  # through the DevTools protocol: the policy refuses inline <script>
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']}: {v['help']} ({v['nodes'][0]['target']})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def moderator_makes_link(browser: Browser, kith: KithServer, *, js: bool) -> str:
    moderator = person(browser, kith, "ines", js=js)
    moderator.goto("/c/beekeepers")
    moderator.get_by_role("link", name="Invite people who have no account yet").click()
    expect(moderator.get_by_label("Community")).to_have_value("beekeepers")
    moderator.get_by_label("Uses").fill("1")
    moderator.get_by_label("Valid for").select_option(label="7 days")
    moderator.get_by_role("button", name="Create link").click()
    link = moderator.get_by_label("Invite link", exact=True)
    expect(link).to_have_value(re.compile(r"/join/"))
    copy = moderator.locator("button[data-copy=invite-link]")
    if js:
        expect(copy).to_have_text("Copy")
        copy.click()
        expect(copy).to_have_text("Copied")
    else:
        expect(copy).to_be_hidden()  # without JavaScript the field is selected and copied by hand
    url = link.input_value()
    moderator.context.close()
    return url


@pytest.mark.parametrize("js", [True, False], ids=["with-javascript", "without-javascript"])
def test_signing_up_through_an_invite_link(browser: Browser, invite_kith: KithServer, js: bool) -> None:
    url = moderator_makes_link(browser, invite_kith, js=js)
    username = "wren" if js else "ash"
    newcomer = browser.new_context(base_url=invite_kith.base_url, java_script_enabled=js).new_page()
    newcomer.goto(url)
    expect(newcomer.get_by_role("heading", level=1)).to_have_text("Join Beekeepers")
    newcomer.get_by_label("Username").fill(username)
    newcomer.get_by_label("Password").fill(PASSWORD)
    newcomer.get_by_role("button", name="Make my account").click()
    expect(newcomer.get_by_role("heading", level=1)).to_have_text("Beekeepers")
    expect(newcomer.get_by_role("button", name=re.compile("Sign out"))).to_contain_text(username)
    expect(newcomer.locator("#members")).to_contain_text(f"@{username}")
    newcomer.context.close()

    again = browser.new_context(base_url=invite_kith.base_url, java_script_enabled=js).new_page()
    again.goto(url)
    expect(again.get_by_role("alert")).to_contain_text("used as many times")
    again.context.close()


def test_asking_to_join_and_being_approved(browser: Browser, approval_kith: KithServer) -> None:
    asker = browser.new_context(base_url=approval_kith.base_url).new_page()
    asker.goto("/")
    asker.get_by_role("link", name="Sign up").click()
    asker.get_by_label("Username").fill("tamsin")
    asker.get_by_label("Password").fill(PASSWORD)
    asker.get_by_label("Why would you like to join?").fill("I run the seed library and would like to share guides.")
    asker.get_by_role("button", name="Ask to join").click()
    expect(asker.get_by_role("heading", level=1)).to_contain_text("Thank you")

    admin = person(browser, approval_kith, "admin", approval_kith.admin_password)
    admin.get_by_role("link", name="Sign-ups").click()
    expect(admin.locator("main")).to_contain_text("seed library")
    admin.get_by_role("button", name="Approve tamsin").click()
    expect(admin.get_by_role("status")).to_contain_text("tamsin can sign in now")
    admin.context.close()

    person(browser, approval_kith, "tamsin").context.close()
    asker.context.close()


def test_sign_up_pages_are_accessible_and_photographed(
    browser: Browser, invite_kith: KithServer, approval_kith: KithServer
) -> None:
    invite_url = moderator_makes_link(browser, invite_kith, js=True)
    api = httpx.Client(
        base_url=f"{approval_kith.base_url}/api/v1", headers={"Authorization": f"Bearer {approval_kith.token()}"}
    )
    waiting = {"username": "rowan", "password": PASSWORD, "reason": "I teach pruning at the community orchard."}
    assert api.post("/accounts", json=waiting).status_code == 201
    api.close()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: dict[str, list[str]] = {}
    for size, viewport in VIEWPORTS.items():
        shots = [
            ("signup-invite", invite_kith, None, invite_url),
            ("signup-approval", approval_kith, None, "/signup"),
            ("invites", invite_kith, ("ines", PASSWORD), "/settings/invites"),
            ("sign-ups", approval_kith, ("admin", approval_kith.admin_password), "/admin/sign-ups"),
        ]
        for name, kith, who, path in shots:
            page = person(browser, kith, *who) if who else browser.new_context(base_url=kith.base_url).new_page()
            page.set_viewport_size(viewport)
            response = page.goto(path)
            assert response is not None and response.status == 200, (name, response and response.status)
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"), full_page=True)
            if size == "desktop" and (found := _serious_problems(page)):
                problems[name] = found
            page.context.close()
    assert not problems, problems
