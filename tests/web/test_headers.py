"""Security headers on every kind of page, images without referrer, classes only for code, and an API reference
that loads nothing from elsewhere."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from litestar.testing import TestClient

from server.api_reference import REDOC_VERSION
from server.app import create_app
from server.settings import Settings
from tests.conftest import join
from tests.support.html import elements
from tests.web.conftest import sign_in

HTML = {"Accept": "text/html"}


def directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def assert_page_headers(response, *, https: bool = False) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert ("strict-transport-security" in response.headers) is https
    policy = directives(response.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, no other origin
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    return policy


def assert_no_inline_code_or_other_origin(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag != "style", "an inline <style> the policy would refuse"
        if tag == "script":
            assert attrs.get("src", "").startswith("/static/"), attrs  # never inline, never from elsewhere
        for name, value in attrs.items():
            assert not name.startswith(("on", "hx-on")), (tag, name)
            if name in ("src", "href") and tag in ("script", "link"):
                assert not urlsplit(value).netloc, (tag, value)


@pytest.fixture
def content(client: TestClient, admin, people, community: dict) -> dict[str, str]:  # type: ignore[no-untyped-def]
    writer = people.make("writer")
    join(client, admin, community, writer)
    guide = client.post(
        f"/api/v1/communities/{community['slug']}/guides",
        json={"title": f"Guide {uuid.uuid4().hex[:6]}", "body_markdown": "Some *text*."},
        headers=writer.auth,
    )
    assert guide.status_code == 201, guide.text
    offer = client.post(
        f"/api/v1/communities/{community['slug']}/mentorship/offers",
        json={
            "title": "Pairing",
            "description_markdown": "Let us *pair*.",
            "topics": ["python"],
            "format": "one_to_one",
            "capacity": 1,
            "languages": ["en"],
        },
        headers=writer.auth,
    )
    assert offer.status_code == 201, offer.text
    guide_path = f"/c/{community['slug']}/guides/{guide.json()['slug']}"
    return {
        "writer": writer.username,
        "community": f"/c/{community['slug']}",
        "guide": guide_path,
        "offer": f"/mentorship/offers/{offer.json()['id']}",
    }


ANONYMOUS_PAGES = [
    "/",
    "/login",
    "/mentorship",
    "/search",
    "/search?q=text",
    "{community}",
    "{guide}",
    "{guide}/revisions",
    "{offer}",
    "/no/such/page",
    "/mentorship/offers/00000000-0000-0000-0000-000000000000",
]
SIGNED_IN_PAGES = ["{guide}/edit", "/settings/tokens", "/mentorship/requests", "{community}/new-offer"]


def test_every_kind_of_page_carries_the_security_headers(visitor, content):
    for template in ANONYMOUS_PAGES:
        path = template.format(**content)
        for headers in (HTML, {**HTML, "HX-Request": "true"}):  # full page and htmx fragment alike
            response = visitor.get(path, headers=headers)
            assert response.status_code in (200, 404), (path, response.status_code)
            policy = assert_page_headers(response)
            assert "'unsafe-inline'" not in policy["style-src"] and "'unsafe-eval'" not in policy["script-src"]
            assert response.headers["x-frame-options"] == "DENY"
            assert_no_inline_code_or_other_origin(response.text)
    sign_in(visitor, content["writer"])
    for template in SIGNED_IN_PAGES:
        response = visitor.get(template.format(**content))
        assert response.status_code == 200, (template, response.text)
        assert_page_headers(response)
        assert_no_inline_code_or_other_origin(response.text)


def test_admin_pages_carry_the_security_headers(visitor, admin):
    sign_in(visitor, admin.username)
    for path in ("/admin/federation", "/communities/new"):
        response = visitor.get(path)
        assert response.status_code == 200, response.text
        assert_page_headers(response)
        assert_no_inline_code_or_other_origin(response.text)


def test_machine_responses_are_not_sniffed_and_carry_no_page_policy(visitor):
    for path in ("/api/v1/instance", "/healthz", "/.well-known/nodeinfo", "/static/js/htmx-2.0.11.min.js"):
        response = visitor.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" not in response.headers  # this instance is served over http
        assert "content-security-policy" not in response.headers


def test_hsts_only_when_the_instance_is_served_over_https(settings: Settings):
    https = replace(settings, base_url="https://kith.example")
    with TestClient(app=create_app(https), base_url=https.base_url) as browser:
        page = browser.get("/login")
        assert page.status_code == 200
        assert_page_headers(page, https=True)
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        api = browser.get("/api/v1/instance")
        assert "max-age=" in api.headers["strict-transport-security"]


def test_pages_let_htmx_run_without_inline_styles_or_eval(visitor):
    page = visitor.get("/")
    config = [attrs["content"] for tag, attrs in elements(page.text) if attrs.get("name") == "htmx-config"]
    assert config == ['{"includeIndicatorStyles": false, "allowEval": false, "allowScriptTags": false}']
    assert ".htmx-indicator" in visitor.get("/static/css/kith.css").text  # what htmx would have injected


def test_guide_images_load_without_referrer_and_code_keeps_only_its_language(client, visitor, admin, community):
    body = "![A compost heap](https://images.example/heap.png)\n\n```python\nprint('turn it weekly')\n```\n"
    guide = client.post(
        f"/api/v1/communities/{community['slug']}/guides",
        json={"title": "Compost", "body_markdown": body},
        headers=admin.auth,
    )
    assert guide.status_code == 201, guide.text
    page = visitor.get(f"/c/{community['slug']}/guides/{guide.json()['slug']}")
    assert page.status_code == 200
    found = elements(page.text)
    images = [attrs for tag, attrs in found if tag == "img"]
    assert images == [
        {
            "src": "https://images.example/heap.png",
            "alt": "A compost heap",
            "referrerpolicy": "no-referrer",
            "loading": "lazy",
        }
    ]
    assert ("code", {"class": "language-python"}) in found
    assert "img-src" in directives(page.headers["content-security-policy"])


def test_api_reference_loads_only_from_this_instance(visitor):
    page = visitor.get("/schema")
    assert page.status_code == 200
    policy = assert_page_headers(page)
    # Redoc writes its styles into <style> elements and indexes for search in a blob: worker: only here.
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"] and policy["worker-src"] == ["blob:"]
    assert policy["connect-src"] == ["'self'"] and policy["img-src"] == ["'self'", "data:"]
    assert_no_inline_code_or_other_origin(page.text)
    assert not re.search(r"https?://|//[a-z]", page.text)  # no other origin named anywhere on the page
    found = elements(page.text)
    script = next(attrs["src"] for tag, attrs in found if tag == "script")
    assert script == f"/static/js/redoc-{REDOC_VERSION}.standalone.js"
    bundle = visitor.get(script)
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("text/javascript")
    assert "cdn.redoc.ly" not in bundle.text and "fonts.googleapis" not in bundle.text
    assert len(bundle.content) < 2_000_000
    spec_url = next(attrs["spec-url"] for tag, attrs in found if tag == "redoc")
    spec = visitor.get(spec_url)
    assert spec.status_code == 200 and spec.json()["info"]["title"] == "Kith API"
    # The documentation sites Litestar would otherwise serve fetch their code from CDNs: none is served.
    for other in ("/schema/swagger", "/schema/elements", "/schema/rapidoc"):
        assert visitor.get(other).status_code == 404, other
    assert visitor.get("/schema/redoc").text == page.text
