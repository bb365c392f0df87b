"""Adapting a guide in Debian's Chromium against a real server: adapt, the upstream changes, take the change, then
a conflicting change resolved in the editor. Screenshots in docs/screenshots/, checked with axe-core."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.server import KithServer
from tests.web.test_browser import AXE, CHROMIUM, CHROMIUM_ARGS, CSP_REFUSALS, PASSWORD, SCREENSHOTS, person

TEXT = "# Release checklist\n\n1. Tag the release\n2. Write the notes\n3. Announce it\n\nThanks for helping.\n"


@pytest.fixture(scope="module")
def kith() -> Iterator[KithServer]:
    with KithServer() as server:
        server.create_user("ines", PASSWORD)
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Api:
    def __init__(self, kith: KithServer) -> None:
        self.base = f"{kith.base_url}/api/v1"
        self.auth = {"Authorization": f"Bearer {kith.token()}"}

    def post(self, path: str, body: dict) -> dict:
        response = httpx.post(f"{self.base}{path}", json=body, headers=self.auth, trust_env=False)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def edit(self, guide: dict, body_markdown: str) -> None:
        url = f"{self.base}/guides/{guide['id']}"
        etag = httpx.get(url, trust_env=False).headers["etag"]
        response = httpx.patch(
            url, json={"body_markdown": body_markdown}, headers={**self.auth, "If-Match": etag}, trust_env=False
        )
        assert response.status_code == 200, response.text


def _photograph(page: Page, name: str) -> list[str]:
    """A screenshot, and axe-core's serious findings on the page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{name}: {v['id']}: {v['help']} ({v['nodes'][0]['target']})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_adapt_then_take_the_upstreams_changes(browser: Browser, kith: KithServer) -> None:
    api = Api(kith)
    api.post("/communities", {"slug": "growers", "name": "Growers", "color": "#2e6b3a"})
    api.post("/communities", {"slug": "gardeners", "name": "Gardeners", "color": "#7a3e8e"})
    api.post("/communities/gardeners/members", {"username": "ines", "role": "member"})
    original = api.post(
        "/communities/growers/guides",
        {"title": "Release checklist", "body_markdown": TEXT, "license": "CC-BY-SA-4.0", "summary": "How we ship"},
    )
    problems: list[str] = []
    ines = person(browser, kith, "ines")
    ines.set_viewport_size({"width": 1280, "height": 800})

    ines.goto("/c/growers/guides/release-checklist")
    ines.get_by_role("button", name="Adapt for Gardeners").click()
    expect(ines.get_by_text("Adapted for Gardeners as a draft")).to_be_visible()
    expect(ines.get_by_label("Attribution")).to_contain_text("Release checklist")
    expect(ines.get_by_label("Attribution")).to_contain_text("CC-BY-SA-4.0")
    problems += _photograph(ines, "adapt-attribution")

    ines.get_by_role("link", name="Edit").click()
    ines.get_by_label("Text (Markdown)").fill(TEXT.replace("Thanks for helping.", "Danke fürs Helfen."))
    ines.get_by_role("button", name="Publish").click()
    expect(ines.get_by_text("Saved as revision 2.")).to_be_visible()

    api.edit(original, TEXT.replace("3. Announce it", "3. Announce it\n4. Celebrate"))
    ines.reload()
    notice = ines.locator(".upstream-notice")
    expect(notice).to_contain_text("The upstream has changed since you adapted it")
    expect(notice.locator("ins")).to_contain_text("4. Celebrate")
    problems += _photograph(ines, "adapt-upstream-changed")
    notice.get_by_role("button", name="Take the change").click()
    expect(ines.get_by_text(re.compile("Took the upstream's change"))).to_be_visible()
    expect(ines.locator(".prose")).to_contain_text("Celebrate")
    expect(ines.locator(".prose")).to_contain_text("Danke fürs Helfen.")

    ines.get_by_role("link", name="Edit").click()
    mine = ines.get_by_label("Text (Markdown)").input_value().replace("Write the notes", "Notes")
    ines.get_by_label("Text (Markdown)").fill(mine)
    ines.get_by_role("button", name="Save", exact=True).click()
    theirs = TEXT.replace("3. Announce it", "3. Announce it\n4. Celebrate").replace("Write the notes", "Write the log")
    api.edit(original, theirs)
    ines.reload()
    ines.locator(".upstream-notice").get_by_role("button", name="Take the change").click()
    expect(ines.get_by_role("alert")).to_contain_text("conflicts with your edits in 1 place")
    text = ines.get_by_label("Text (Markdown)")
    expect(text).to_have_value(re.compile("<<<<<<< your text\n2. Notes\n=======\n2. Write the log\n>>>>>>> upstream"))
    problems += _photograph(ines, "adapt-conflict")
    ines.get_by_role("button", name="Save", exact=True).click()
    expect(ines.get_by_text("still has conflict blocks")).to_be_visible()
    resolved = re.sub(
        r"<<<<<<< your text\n2. Notes\n=======\n(2. Write the log\n)>>>>>>> upstream revision \d+\n",
        r"\1",
        text.input_value().replace("\r\n", "\n"),
    )
    text.fill(resolved)
    ines.get_by_role("button", name="Save", exact=True).click()
    expect(ines.get_by_text(re.compile(r"Saved as revision \d+\."))).to_be_visible()
    expect(ines.locator(".prose")).to_contain_text("Write the log")
    expect(ines.locator(".upstream-notice")).to_have_count(0)

    ines.goto("/c/growers/guides/release-checklist")
    expect(ines.get_by_role("heading", name="Adapted by 1 community on 1 instance")).to_be_visible()
    problems += _photograph(ines, "adapt-origin-reach")
    ines.context.close()
    assert not problems, problems
    assert not CSP_REFUSALS, CSP_REFUSALS
