"""The journeys people take, in Debian's Chromium against a real server: with JavaScript and without.

One server per module; the accessibility check (axe-core) and the screenshots in docs/screenshots/ ride along.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import KithServer

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright  # noqa: E402

CHROMIUM = Path(os.environ.get("KITH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
PASSWORD = "correct horse battery"

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium package")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def kith() -> Iterator[KithServer]:
    with KithServer() as server:
        # Each CLI call is a process start; four at once keep the setup short.
        with ThreadPoolExecutor() as pool:
            list(pool.map(lambda name: server.create_user(name, PASSWORD), ("mira", "ola", "noor", "tove")))
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def journey() -> dict[str, str]:
    """What the journey made, for the screenshots and the accessibility check that follow it."""
    return {}


# What the pages' Content-Security-Policy refused, in any context a test opens (Chromium reports each refusal
# on the console). Kith's own pages, htmx and Redoc included, should never need one refused.
CSP_REFUSALS: list[str] = []


def open_context(browser: Browser, kith: KithServer, **options: Any) -> BrowserContext:
    context = browser.new_context(base_url=kith.base_url, **options)
    context.set_default_timeout(10_000)
    context.on(
        "console",
        lambda message: "Content Security Policy" in message.text and CSP_REFUSALS.append(message.text),
    )
    return context


def person(browser: Browser, kith: KithServer, username: str, password: str = PASSWORD, *, js: bool = True) -> Page:
    context = open_context(browser, kith, java_script_enabled=js)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.locator("main").get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name=re.compile("Sign out"))).to_be_visible()
    return page


def wait_until_indexed(kith: KithServer, word: str, timeout: float = 20.0) -> None:
    """The worker indexes after commit; typing before that would rightly find nothing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{kith.base_url}/api/v1/search", params={"q": word}, trust_env=False)
        if response.status_code == 200 and response.json()["total"]:
            return
        time.sleep(0.25)
    raise AssertionError(f"{word!r} was not indexed within {timeout} s")


def admin_creates_community(browser: Browser, kith: KithServer, slug: str, name: str, member: str, *, js: bool) -> None:
    admin = person(browser, kith, "admin", kith.admin_password, js=js)
    admin.goto("/")
    admin.get_by_role("link", name="New community").click()
    admin.get_by_label("Short name").fill(slug)
    admin.get_by_label("Name", exact=True).fill(name)
    admin.get_by_label("Description").fill("People who grow food together and write down what works.")
    admin.get_by_label("Colour").fill("#2e6b3a" if js else "#7a3e8e")
    admin.get_by_role("button", name="Create community").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text(name)
    admin.get_by_label("Add a member").fill(member)
    admin.get_by_role("button", name="Add", exact=True).click()
    expect(admin.locator("#members")).to_contain_text(f"@{member}")
    admin.context.close()


def member_writes_and_edits_guide(
    browser: Browser, kith: KithServer, slug: str, title: str, *, js: bool
) -> tuple[Page, str]:
    writer = person(browser, kith, "mira" if js else "noor", js=js)
    writer.goto(f"/c/{slug}")
    writer.get_by_role("link", name="Write a guide").click()
    writer.get_by_label("Title").fill(title)
    writer.get_by_label("Tags").fill("soil, compost")
    writer.get_by_label("Text (Markdown)").fill("Start with *brown* leaves.\n\nKeep it moist.")
    if js:
        expect(writer.locator("#preview em")).to_have_text("brown")  # the live preview, no button pressed
    else:
        writer.get_by_role("button", name="Preview").click()
        expect(writer.locator("#preview em")).to_have_text("brown")
        expect(writer.get_by_label("Title")).to_have_value(title)
    writer.get_by_role("button", name="Publish").click()
    expect(writer.get_by_role("heading", level=1)).to_have_text(title)
    guide_url = writer.url
    writer.get_by_role("link", name="Edit").click()
    writer.get_by_label("Text (Markdown)").fill("Start with *brown* leaves.\n\nKeep it as moist as a wrung sponge.")
    writer.get_by_label("What changed?").fill("wetness")
    writer.get_by_role("button", name="Save", exact=True).click()
    expect(writer.locator(".prose")).to_contain_text("wrung sponge")
    writer.get_by_role("link", name="Revision history").click()
    expect(writer.locator("#diff del")).to_contain_text("Keep it moist.")
    expect(writer.locator("#diff ins")).to_contain_text("wrung sponge")
    writer.get_by_label("Compare from revision 1").check()
    writer.get_by_label("Compare to revision 2").check()
    writer.get_by_role("button", name="Compare").click()
    expect(writer.locator("#diff ins")).to_contain_text("wrung sponge")
    return writer, guide_url


def mentor_opens_offer(writer: Page, slug: str, title: str) -> str:
    writer.goto(f"/c/{slug}/new-offer")
    writer.get_by_label("Title").fill(title)
    writer.get_by_label("Description (Markdown)").fill("Weekly walks through the *allotment*.")
    writer.get_by_label("Topics").fill("gardening, compost")
    writer.get_by_label("Languages").fill("en")
    writer.get_by_label("Seats").fill("2")
    writer.get_by_role("button", name="Open the offer").click()
    expect(writer.get_by_role("heading", level=1)).to_have_text(title)
    return writer.url


def learner_finds_and_asks(
    browser: Browser, kith: KithServer, word: str, guide_title: str, offer_title: str, *, js: bool
) -> None:
    learner = person(browser, kith, "ola" if js else "tove", js=js)
    learner.goto("/search")
    box = learner.get_by_label("Search guides and mentorship offers")
    if js:
        box.press_sequentially(word, delay=40)  # search as you type: no Enter, no button
    else:
        box.fill(word)
        learner.locator("main").get_by_role("button", name="Search").click()
    expect(learner.locator("#results").get_by_role("link", name=guide_title)).to_be_visible()
    expect(learner).to_have_url(re.compile(r"/search\?q=" + word))
    learner.get_by_role("link", name="Mentorship", exact=True).click()
    learner.get_by_label("Topic", exact=True).fill("gardening")
    learner.get_by_role("button", name="Filter").click()
    learner.locator("#offer-list").get_by_role("link", name=offer_title).click()
    learner.get_by_label(re.compile("A few words to the mentor")).fill("I have a balcony and big hopes.")
    learner.get_by_role("button", name="Send request").click()
    expect(learner.locator(".requests")).to_contain_text("pending")
    learner.context.close()


def mentor_accepts(writer: Page, learner: str) -> None:
    writer.goto("/mentorship/requests")
    row = writer.locator(".request", has_text="I have a balcony")
    row.get_by_role("button", name=re.compile("^Accept")).click()
    expect(writer.locator(".request", has_text="I have a balcony").locator(".state")).to_have_text("accepted")
    expect(writer.get_by_role("button", name=re.compile(f"^Accept {learner}"))).to_have_count(0)


# Each run of the journey writes its own community, guide and offer, named as people would name them. The
# search word is in one run's guide only, so waiting for it to be indexed waits for that run's guide.
JOURNEYS = {
    True: ("balcony-growers", "Balcony Growers", "mulch", "Good mulch in small spaces", "Allotment walks on Saturdays"),
    False: ("rooftop-growers", "Rooftop Growers", "wormery", "A wormery on the roof", "Allotment walks on Sundays"),
}


@pytest.mark.parametrize("js", [True, False], ids=["with-javascript", "without-javascript"])
def test_the_whole_journey(browser: Browser, kith: KithServer, journey: dict[str, str], js: bool) -> None:
    slug, name, word, guide_title, offer_title = JOURNEYS[js]
    admin_creates_community(browser, kith, slug, name, "mira" if js else "noor", js=js)
    writer, guide_url = member_writes_and_edits_guide(browser, kith, slug, guide_title, js=js)
    offer_url = mentor_opens_offer(writer, slug, offer_title)
    wait_until_indexed(kith, word)
    learner = "ola" if js else "tove"
    learner_finds_and_asks(browser, kith, word, guide_title, offer_title, js=js)
    mentor_accepts(writer, learner)
    writer.context.close()
    assert not CSP_REFUSALS, CSP_REFUSALS  # htmx did all of the above under the policy, and it refused nothing
    if js:
        journey.update(slug=slug, word=word, guide=guide_url, offer=offer_url)


MAIN_PAGES = {
    "home": "/",
    "community": "/c/{slug}",
    "guide": "{guide}",
    "editor": "{guide}/edit",
    "revisions": "{guide}/revisions",
    "mentorship": "/mentorship",
    "offer": "{offer}",
    "requests": "/mentorship/requests",
    "search": "/search?q={word}",
    "tokens": "/settings/tokens",
    "password": "/settings/password",
    "federation": "/admin/federation",
}


def test_main_pages_are_accessible_and_photographed(
    browser: Browser, kith: KithServer, journey: dict[str, str]
) -> None:
    assert journey, "runs after the journey, which makes the content to look at"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    axe = AXE.read_text(encoding="utf-8")
    problems: dict[str, list[str]] = {}
    for size, viewport in VIEWPORTS.items():
        page = person(browser, kith, "admin", kith.admin_password)
        page.set_viewport_size(viewport)
        shots = {"login": "/login", **MAIN_PAGES}
        for name, template in shots.items():
            if name == "login":
                anonymous = open_context(browser, kith, viewport=viewport)
                target = anonymous.new_page()
            else:
                target = page
            url = template.format(**journey)
            response = target.goto(url)
            assert response is not None and response.status == 200, (url, response and response.status)
            target.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"), full_page=True)
            if size == "desktop":
                target.evaluate(axe)  # through the DevTools protocol: the page's policy refuses inline <script>
                result = target.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
                serious = [
                    f"{v['id']}: {v['help']} ({len(v['nodes'])}× e.g. {v['nodes'][0]['target']})"
                    for v in result["violations"]
                    if v["impact"] in ("serious", "critical")
                ]
                if serious:
                    problems[name] = serious
            if name == "login":
                anonymous.close()
        page.context.close()
    assert not problems, problems
    assert not CSP_REFUSALS, CSP_REFUSALS


def test_api_reference_renders_from_this_instance_under_its_policy(browser: Browser, kith: KithServer) -> None:
    context = open_context(browser, kith, viewport=VIEWPORTS["desktop"])
    fetched: list[str] = []
    context.on("request", lambda request: fetched.append(request.url))
    page = context.new_page()
    page.goto("/schema")
    expect(page.get_by_role("heading", name=re.compile("^Kith API"))).to_be_visible()
    # Redoc's search runs in a blob: worker, which the policy allows on this page only.
    page.get_by_placeholder("Search...").fill("guide")
    expect(page.get_by_role("menuitem").filter(has_text="Get a guide").first).to_be_visible()
    page.get_by_placeholder("Search...").fill("")
    page.screenshot(path=str(SCREENSHOTS / "api-reference-desktop.png"))
    context.close()
    elsewhere = [url for url in fetched if not url.startswith((kith.base_url + "/", "blob:", "data:"))]
    assert not elsewhere, elsewhere
    assert f"{kith.base_url}/static/js/redoc-2.5.4.standalone.js" in fetched
    assert not CSP_REFUSALS, CSP_REFUSALS


@pytest.mark.parametrize("js", [True, False], ids=["with-javascript", "without-javascript"])
def test_any_two_revisions_compare_and_are_photographed(
    browser: Browser, kith: KithServer, journey: dict[str, str], js: bool
) -> None:
    """A third revision, then revision 1 against 3 picked on the revisions page, with htmx or a plain submit."""
    assert journey, "runs after the journey, which writes the guide and its second revision"
    writer = person(browser, kith, "mira", js=js)
    writer.goto(journey["guide"] + "/revisions")
    if not writer.get_by_label("Compare to revision 3").count():
        writer.goto(journey["guide"] + "/edit")
        writer.get_by_label("Text (Markdown)").fill(
            "Start with *brown* leaves and a few green ones.\n\nKeep it as moist as a wrung sponge.\n\nTurn it weekly."
        )
        writer.get_by_label("What changed?").fill("greens and turning")
        writer.get_by_role("button", name="Save", exact=True).click()
        expect(writer.locator(".prose")).to_contain_text("Turn it weekly")
        writer.goto(journey["guide"] + "/revisions")
    writer.get_by_label("Compare from revision 1").check()
    writer.get_by_label("Compare to revision 3").check()
    writer.get_by_role("button", name="Compare").click()
    expect(writer.get_by_role("heading", name="Changes from revision 1 to 3")).to_be_visible()
    expect(writer.locator("#diff del")).to_contain_text(["Start with *brown* leaves.", "Keep it moist."])
    expect(writer.locator("#diff ins").last).to_contain_text("Turn it weekly.")
    expect(writer).to_have_url(re.compile(r"/revisions\?(from=1&to=3|to=3&from=1)$"))  # htmx orders them its way
    if js:
        for size, viewport in VIEWPORTS.items():
            writer.set_viewport_size(viewport)
            writer.screenshot(path=str(SCREENSHOTS / f"revisions-compare-{size}.png"), full_page=True)
    writer.context.close()
    assert not CSP_REFUSALS, CSP_REFUSALS
