"""Moving a community in Debian's Chromium, between two real servers: the moderator names the old Group on the new
home, a move to a home that does not claim it is refused with a readable message, the move then goes through
with a confirmation, and the old page lands on the new home, which says where the community came from.
Screenshots in docs/screenshots/, checked with axe-core."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.server import KithServer, free_port
from tests.support.wait import eventually
from tests.web.test_browser import AXE, CHROMIUM, CHROMIUM_ARGS, PASSWORD, SCREENSHOTS, person


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[KithServer, KithServer]]:
    a_port, b_port = free_port(), free_port()
    a = KithServer(port=a_port, env={"KITH_PEERS": f"http://127.0.0.1:{b_port}"})
    b = KithServer(port=b_port, env={"KITH_PEERS": f"http://127.0.0.1:{a_port}"})
    try:
        a.start(), b.start()
        a.create_user("mara", PASSWORD)
        yield a, b
    finally:
        b.close()
        a.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _api(kith: KithServer, token: str, method: str, path: str, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{kith.base_url}/api/v1{path}", headers=headers, timeout=30, **kwargs)


def _photograph(page: Page, name: str) -> list[str]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{name}: {v['id']}: {v['help']} ({v['nodes'][0]['target']})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_a_moderator_moves_a_community_from_its_page(browser: Browser, servers: tuple[KithServer, KithServer]):
    a, b = servers
    a_token, b_token = a.token(), b.token()
    assert _api(a, a_token, "POST", "/communities", json={"slug": "movers", "name": "Movers"}).status_code == 201
    _api(a, a_token, "POST", "/communities/movers/members", json={"username": "mara", "role": "moderator"})
    guide = _api(
        a, a_token, "POST", "/communities/movers/guides", json={"title": "Packing", "body_markdown": "Boxes first."}
    ).json()
    archive = _api(a, a_token, "GET", "/communities/movers/export").content
    imported = _api(
        b, b_token, "POST", "/communities/import", content=archive, headers={"Content-Type": "application/gzip"}
    )
    assert imported.status_code == 201, imported.text
    new_uri = imported.json()["uri"]
    # Mara came with the archive; the new home's operator lets her sign in there.
    b.cli("user", "set-password", "mara", "--password-stdin", stdin=PASSWORD + "\n")
    problems: list[str] = []

    on_a = person(browser, a, "mara")
    on_a.set_viewport_size({"width": 1280, "height": 900})
    on_a.goto("/c/movers")
    on_a.get_by_text("Move this community").first.click()
    on_a.get_by_label("The new home: the community's Group there").fill(new_uri)
    on_a.get_by_label(re.compile("I understand")).check()
    on_a.get_by_role("button", name="Move this community").click()
    # The new home does not claim it yet: refused, readably, and nothing moved.
    expect(on_a.get_by_text(re.compile("Not moved: .* does not claim to be"))).to_be_visible()
    problems += _photograph(on_a, "community-move-refused")
    assert _api(a, a_token, "GET", "/communities/movers").json()["moved_to"] is None

    on_b = person(browser, b, "mara")
    on_b.set_viewport_size({"width": 1280, "height": 900})
    on_b.goto("/c/movers")
    on_b.get_by_text("Move this community").first.click()
    on_b.get_by_label(re.compile("The old community's Group")).fill(f"{a.base_url}/c/movers")
    on_b.get_by_role("button", name="Save old names").click()
    expect(on_b.get_by_text("The old instance can now move the community here")).to_be_visible()
    assert _api(b, b_token, "GET", "/communities/movers").json()["also_known_as"] == [f"{a.base_url}/c/movers"]

    on_a.goto("/c/movers")
    on_a.get_by_text("Move this community").first.click()
    on_a.get_by_label("The new home: the community's Group there").fill(new_uri)
    on_a.get_by_label(re.compile("I understand")).check()
    problems += _photograph(on_a, "community-move-form")
    on_a.get_by_role("button", name="Move this community").click()
    expect(on_a.get_by_role("heading", name="Movers has moved")).to_be_visible()
    problems += _photograph(on_a, "community-moved")
    assert _api(a, a_token, "GET", "/communities/movers").json()["moved_to"] == new_uri

    # The old page lands on the new home, and so does a form of the community's.
    on_a.goto("/c/movers")
    assert on_a.url == new_uri
    on_a.goto(f"{a.base_url}/c/movers/new-guide")
    assert on_a.url == new_uri
    # The guide's page, once the old instance has learnt its new place, lands on the same guide there.
    eventually(
        lambda: httpx.get(guide["url"]).headers.get("location") == f"{b.base_url}/c/movers/guides/packing",
        timeout=30, message="the old guide page did not redirect to the guide's new page",
    )  # fmt: skip

    # The receiving side records where a community came from when it applies the Move; the page shows it
    # whenever it is set (set here by hand, as this side alone does not apply Moves).
    with sqlite3.connect(b.data_dir / "kith.db") as db:
        db.execute(
            "UPDATE communities SET moved_from = ?, arrived_at = ? WHERE slug = 'movers' AND local = 1",
            (f"{a.base_url}/c/movers", "2026-12-07 07:00:00.000000"),
        )
    on_b.goto("/c/movers")
    notice = on_b.locator(".moved-from")
    expect(notice).to_have_text(f"Moved here from {a.host} on 7 December 2026.")
    expect(notice.get_by_role("link")).to_have_attribute("href", f"{a.base_url}/c/movers")
    problems += _photograph(on_b, "community-moved-here")
    assert problems == []
