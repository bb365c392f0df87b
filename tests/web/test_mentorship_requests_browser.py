"""Mentorship across two real instances, done in Debian's Chromium: a person on B asks for a seat on A's offer from
B's page of it, the mentor answers on A, and they write to each other, each on their own instance. Screenshots of
both request pages in docs/screenshots/, checked with axe-core."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.federation.test_two_instances import _databases
from tests.support.server import KithServer, free_port
from tests.support.wait import eventually
from tests.web.test_browser import AXE, CHROMIUM, CHROMIUM_ARGS, CSP_REFUSALS, PASSWORD, SCREENSHOTS, person

# Federation is asynchronous: each step waits this long for the other instance at most.
ARRIVAL = 30.0


class Api:
    def __init__(self, server: KithServer, user: str = "admin", scope: str = "admin") -> None:
        self.base = f"{server.base_url}/api/v1"
        self.auth = {"Authorization": f"Bearer {server.token(user, scope)}"}

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.base}{path}", params=params, headers=self.auth, trust_env=False, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.base}{path}", json=body, headers=self.auth, trust_env=False, timeout=10)
        assert response.status_code in (200, 201), response.text
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[KithServer, KithServer]]:
    """A (the mentor's instance) and B (the learner's), peered with each other."""
    with _databases(request.param) as (a_db, b_db):
        yield from _peered(a_db, b_db)


def _peered(a_db: str | None, b_db: str | None) -> Iterator[tuple[KithServer, KithServer]]:
    a_port, b_port = free_port(), free_port()
    a = KithServer(database_url=a_db, port=a_port, env={"KITH_PEERS": f"http://127.0.0.1:{b_port}"})
    b = KithServer(database_url=b_db, port=b_port, env={"KITH_PEERS": f"http://127.0.0.1:{a_port}"})
    try:
        a.start()
        b.start()
        a.create_user("mia", PASSWORD)
        b.create_user("bo", PASSWORD)
        a_admin, b_admin = Api(a), Api(b)
        a_admin.post("/communities", {"slug": "julia", "name": "Julia Learners", "color": "#6b3fa0"})
        a_admin.post("/communities/julia/members", {"username": "mia", "role": "member"})
        eventually(
            lambda: all(p["state"] == "following" for p in (*a_admin.get("/federation/peers"),
                                                             *b_admin.get("/federation/peers"))),
            timeout=ARRIVAL, message="peering did not complete",
        )  # fmt: skip
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


def _reload_until(page: Page, shows: Callable[[Page], bool], message: str) -> None:
    """The other instance's news arrives in the background: reload until the page shows it."""

    def check() -> bool:
        page.reload()
        return shows(page)

    eventually(check, timeout=ARRIVAL, interval=0.5, message=message)


def _photograph(page: Page, name: str) -> list[str]:
    """A screenshot, and axe-core's serious findings on the page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{name}: {v['id']}: {v['help']} ({v['nodes'][0]['target']})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_ask_on_b_answer_on_a_and_talk_across(browser: Browser, pair: tuple[KithServer, KithServer]) -> None:
    a, b = pair
    offer = Api(a, "mia", "write").post(
        "/communities/julia/mentorship/offers",
        {
            "title": "Julia for newcomers", "description_markdown": "We pair on *your* first package.",
            "topics": ["julia"], "format": "one_to_one", "capacity": 2, "languages": ["en"],
            "availability": "Tuesday evenings, CET",
        },
    )  # fmt: skip

    def copy_on_b() -> dict[str, Any] | None:
        remote = Api(b).get("/mentorship/offers", origin="remote")["items"]
        return next((o for o in remote if o["uri"] == offer["uri"]), None)

    copy = eventually(copy_on_b, timeout=ARRIVAL, message="the offer did not reach B")
    problems: list[str] = []

    # On B, B's page of A's offer: the form posts to B, which sends the request on to A.
    bo = person(browser, b, "bo")
    bo.set_viewport_size({"width": 1280, "height": 800})
    bo.goto("/mentorship")
    bo.locator("#offer-list").get_by_role("link", name="Julia for newcomers").click()
    expect(bo).to_have_url(re.compile(f"/mentorship/offers/{copy['id']}$"))
    expect(bo.get_by_role("heading", name="Julia for newcomers")).to_be_visible()
    bo.get_by_label(re.compile("A few words to the mentor")).fill("I write Python at work and want to try Julia.")
    bo.get_by_role("button", name="Send request").click()
    expect(bo.get_by_role("status").filter(has_text=f"Your request is on its way to {a.host}")).to_be_visible()
    problems += _photograph(bo, "mentorship-offer-b-asked")
    bo.get_by_role("link", name=re.compile("Open the request")).click()
    expect(bo).to_have_url(re.compile(r"/mentorship/requests/[0-9a-f-]+$"))
    b_request = bo.url
    expect(bo.locator(".badge-remote").filter(has_text=f"@mia@{a.host}")).to_be_visible()

    # On A, the mentor finds it among her requests, with B's person and their instance, and accepts.
    mia = person(browser, a, "mia")
    mia.set_viewport_size({"width": 1280, "height": 800})
    mia.goto("/mentorship/requests")
    _reload_until(mia, lambda p: p.get_by_text(f"@bo@{b.host}").count() > 0, "the request did not reach A")
    mia.get_by_role("link", name=re.compile("Open the request")).first.click()
    expect(mia.get_by_text("I write Python at work and want to try Julia.")).to_be_visible()
    mia.get_by_role("button", name="Accept").click()
    expect(mia.locator(".state-words")).to_contain_text("Accepted")
    a_request = mia.url
    mia.goto("/mentorship/requests")
    expect(mia.locator(".request", has_text=f"@bo@{b.host}").locator(".state")).to_have_text("accepted")
    problems += _photograph(mia, "mentorship-queue-a")

    # B hears the answer.
    bo.goto(b_request)
    _reload_until(bo, lambda p: "Accepted" in p.locator(".state-words").inner_text(), "B did not hear the answer")

    # One message each way, posted with htmx: it shows at once on the writer's side and arrives on the other.
    bo.get_by_label(re.compile("Write to mia")).fill("Thank you! *When* shall we start?")
    bo.get_by_role("button", name="Send message").click()
    expect(bo.locator("#thread li")).to_have_count(1)
    expect(bo.get_by_label(re.compile("Write to mia"))).to_have_value("")
    mia.goto(a_request)
    _reload_until(mia, lambda p: p.locator("#thread li").count() == 1, "B's message did not reach A")
    expect(mia.locator("#thread li em")).to_have_text("When")
    mia.get_by_label(re.compile("Write to bo")).fill("Tuesday at 19:00 CET. Bring a small project idea.")
    mia.get_by_role("button", name="Send message").click()
    expect(mia.locator("#thread li")).to_have_count(2)
    bo.goto(b_request)
    _reload_until(bo, lambda p: p.locator("#thread li").count() == 2, "A's reply did not reach B")
    expect(bo.locator("#thread li").nth(1)).to_contain_text("Tuesday at 19:00 CET")

    problems += _photograph(bo, "mentorship-request-b")
    problems += _photograph(mia, "mentorship-request-a")
    assert not problems, problems
    assert not CSP_REFUSALS, CSP_REFUSALS
