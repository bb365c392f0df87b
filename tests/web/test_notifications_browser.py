"""Notifications in Debian's Chromium against a real server: the count in the header, the page (checked with
axe-core and photographed for docs/screenshots/), and marking everything read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402  (test_browser skips without it)

from server.settings import Settings
from tests.api.test_notifications import ask, remote_person, step
from tests.support.server import KithServer
from tests.web.test_browser import AXE, CHROMIUM, CHROMIUM_ARGS, CSP_REFUSALS, PASSWORD, SCREENSHOTS, VIEWPORTS, person


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def kith() -> Iterator[KithServer]:
    with KithServer(worker=False) as server:
        with ThreadPoolExecutor() as pool:
            list(pool.map(lambda name: server.create_user(name, PASSWORD), ("mira", "ola")))
        token = server.token()
        admin = httpx.Client(base_url=f"{server.base_url}/api/v1", headers={"Authorization": f"Bearer {token}"})
        assert admin.post("/communities", json={"slug": "potters", "name": "Potters"}).status_code == 201
        assert admin.post("/communities/potters/members", json={"username": "mira", "role": "member"}).is_success
        admin.close()
        yield server


def exchange(kith: KithServer) -> None:
    """Mira's offer gets two requests (one from another instance), a message and a withdrawal; the oldest is read."""

    def api(user: str) -> httpx.Client:
        token = kith.token(user, "write")
        return httpx.Client(base_url=f"{kith.base_url}/api/v1", headers={"Authorization": f"Bearer {token}"})

    mira, ola = api("mira"), api("ola")
    body = {"title": "Wheel throwing for beginners", "description_markdown": "Clay, water, patience.",
            "topics": ["pottery"], "format": "group", "capacity": 4}  # fmt: skip
    offer = mira.post("/communities/potters/mentorship/offers", json=body)
    assert offer.status_code == 201, offer.text
    offer_id = offer.json()["id"]
    asked = ola.post(f"/mentorship/offers/{offer_id}/requests", json={"message": "I have never touched clay."})
    assert asked.status_code == 201, asked.text
    # Someone from another instance: their steps are recorded as the inbox would, for the notifications alone.
    settings = Settings(
        base_url=kith.base_url, database_url=kith.database_url.replace("sqlite:///", "sqlite+aiosqlite:///", 1),
        secret_key="unused",
    )  # fmt: skip
    far = remote_person(settings, "clay.example")
    theirs = ask(settings, offer_id, far, notifications_only=True)
    wrote = ola.post(f"/mentorship/requests/{asked.json()['id']}/messages", json={"body_markdown": "Own clay?"})
    assert wrote.status_code == 201, wrote.text
    step(settings, theirs, "withdrawn", far, state="withdrawn", notifications_only=True)
    items = mira.get("/me/notifications").json()["items"]
    assert mira.post("/me/notifications/read", json={"ids": [items[-1]["id"]]}).json() == {"unread": 3}
    mira.close()
    ola.close()


def _serious_problems(page: Page) -> list[str]:
    page.evaluate(AXE.read_text(encoding="utf-8"))  # through the DevTools protocol: the policy refuses inline <script>
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']}: {v['help']} ({v['nodes'][0]['target']})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_mentor_sees_what_needs_them_and_marks_it_read(browser: Browser, kith: KithServer) -> None:
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(exchange, kith).result()
    mentor = person(browser, kith, "mira")
    header_link = mentor.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("Notifications"))
    expect(header_link).to_have_text(re.compile(r"Notifications\s*3 unread"))
    header_link.click()
    expect(mentor).to_have_url(f"{kith.base_url}/notifications")
    entries = mentor.locator(".notification")
    expect(entries).to_have_count(4)
    expect(entries.first).to_contain_text("Far withdrew their request for “Wheel throwing for beginners”.")
    expect(entries.first).to_contain_text("on clay.example")
    expect(entries.nth(1)).to_contain_text("ola sent a message about “Wheel throwing for beginners”.")
    expect(entries.last).not_to_contain_text("New")
    expect(mentor.locator(".notification.unread")).to_have_count(3)
    assert _serious_problems(mentor) == []
    for size, viewport in VIEWPORTS.items():
        mentor.set_viewport_size(viewport)
        mentor.screenshot(path=str(SCREENSHOTS / f"notifications-{size}.png"), full_page=True)
    mentor.set_viewport_size(VIEWPORTS["desktop"])

    mentor.get_by_role("button", name="Mark all read").click()
    expect(mentor.get_by_role("status")).to_have_text("All notifications are marked read.")
    expect(mentor.locator(".notification.unread")).to_have_count(0)
    expect(header_link).to_have_text("Notifications")
    mentor.get_by_role("link", name="Unread", exact=True).click()
    expect(mentor.get_by_text("You have read them all.")).to_be_visible()
    mentor.context.close()
    assert not CSP_REFUSALS, CSP_REFUSALS
