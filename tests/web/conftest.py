"""Fixtures for the web UI: a browser-like client per test, signed in through the login form."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from server.app import create_app
from server.settings import Settings
from tests.support.html import elements

PASSWORD = "correct horse"  # what tests/conftest.py's People gives every user


@pytest.fixture(scope="session")
def web_app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
def visitor(web_app: Litestar, settings: Settings) -> Iterator[TestClient]:
    """A fresh browser: its own cookie jar, nobody signed in."""
    with TestClient(app=web_app, base_url=settings.base_url) as client:
        yield client


def csrf_token(html: str) -> str:
    for tag, attrs in elements(html):
        if tag == "input" and attrs.get("name") == "_csrf_token":
            return attrs["value"]
    raise AssertionError("no CSRF token in the page")


def submit(client: TestClient, page_url: str, action: str, data: dict[str, str], **kwargs):  # type: ignore[no-untyped-def]
    """Load a page, then post one of its forms the way a browser would: with the page's CSRF token."""
    page = client.get(page_url)
    assert page.status_code == 200, page.text
    return client.post(action, data={"_csrf_token": csrf_token(page.text), **data}, **kwargs)


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> None:
    response = submit(client, "/login", "/login", {"username": username, "password": password}, follow_redirects=False)
    assert response.status_code == 303, response.text
