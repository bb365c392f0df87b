"""Sign-in through OpenID Connect, against a real provider (Authlib's server side) on a port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select

from server.app import create_app
from server.db import create_engine, create_sessionmaker
from server.models import OIDCIdentity, User
from server.settings import OIDCProvider, Settings
from tests.support.oidc_provider import OpenIDProvider, ProviderUser, signing_key
from tests.support.server import free_port
from tests.web.conftest import sign_in, submit

NAME = "test"
CLIENT_ID = "kith-test-client"
CLIENT_SECRET = "provider secret for tests"


@pytest.fixture(scope="module")
def provider(settings: Settings) -> Iterator[OpenIDProvider]:
    callback = f"{settings.base_url}/login/oidc/{NAME}/callback"
    with OpenIDProvider(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[callback]) as op:
        yield op


@pytest.fixture(scope="module")
def oidc_app(settings: Settings, provider: OpenIDProvider) -> Litestar:
    providers = (
        OIDCProvider(NAME, provider.issuer, CLIENT_ID, CLIENT_SECRET),
        # Nothing listens there: the provider is down.
        OIDCProvider("offline", f"http://127.0.0.1:{free_port()}", "kith", "secret"),
    )
    return create_app(replace(settings, oidc=providers))


@pytest.fixture
def browser(oidc_app: Litestar, settings: Settings, provider: OpenIDProvider) -> Iterator[TestClient]:
    provider.reset()
    provider.user = _someone()
    with TestClient(app=oidc_app, base_url=settings.base_url) as client:
        yield client


def _someone(**fields: str) -> ProviderUser:
    tag = uuid.uuid4().hex[:6]
    return ProviderUser(
        **{
            "sub": f"subject-{uuid.uuid4()}",
            "preferred_username": f"Ada.Lovelace+{tag}",
            "name": "Ada Lovelace",
            **fields,
        }
    )


def _approved(browser: TestClient, provider: OpenIDProvider, next_path: str = "/") -> str:
    """Start at Kith and let the provider approve: the callback URL the provider sends the browser back to."""
    start = browser.get(f"/login/oidc/{NAME}", params={"next": next_path}, follow_redirects=False)
    assert start.status_code == 303, start.text
    location = start.headers["location"]
    assert location.startswith(f"{provider.issuer}/authorize?")
    approved = httpx.get(location, follow_redirects=False)
    assert approved.status_code == 302, approved.text
    callback = approved.headers["location"]
    assert callback.startswith(f"http://127.0.0.1:8000/login/oidc/{NAME}/callback?"), callback
    return callback


def _with_params(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    params = {key: values[0] for key, values in parse_qs(parts.query).items()}
    params.update(changes)
    return parts._replace(query=urlencode(params)).geturl()


def _signed_in_as(browser: TestClient) -> str | None:
    home = browser.get("/")
    assert home.status_code == 200
    if "Sign out" not in home.text:
        return None
    return home.text.split('<span class="who">', 1)[1].split("</span>", 1)[0]


def _linked_usernames(settings: Settings, provider: OpenIDProvider, subject: str) -> list[str]:
    async def work() -> list[str]:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                rows = await session.scalars(
                    select(User.username)
                    .join(OIDCIdentity, OIDCIdentity.user_id == User.id)
                    .where(OIDCIdentity.issuer == provider.issuer, OIDCIdentity.subject == subject)
                )
                return list(rows)
        finally:
            await engine.dispose()

    return asyncio.run(work())


def _assert_refused_page(response: Any, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<main" in response.text and words in response.text


def test_the_sign_in_page_links_to_the_provider(browser):
    page = browser.get("/login")
    assert f'href="/login/oidc/{NAME}?next=/"' in page.text


def test_first_sign_in_creates_the_account_and_a_session(browser, provider, settings):
    who = provider.user
    callback = _approved(browser, provider, next_path="/search")
    done = browser.get(callback, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/search"
    cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie" and v.startswith("kith_session="))
    assert "HttpOnly" in cookie
    # A valid, unique Kith username made from preferred_username; the display name from the name claim.
    username = who.preferred_username.lower().replace("+", "-")
    assert "Welcome, Ada Lovelace." in browser.get("/search").text
    assert _signed_in_as(browser) == username
    assert _linked_usernames(settings, provider, who.sub) == [username]
    # The flow used PKCE S256, a nonce and a state; the code went back with its verifier.
    asked = provider.authorization_requests[-1]
    assert asked["code_challenge_method"] == "S256" and asked["nonce"] and asked["state"]
    assert asked["redirect_uri"] == f"{settings.base_url}/login/oidc/{NAME}/callback"
    assert provider.token_requests[-1]["code_verifier"]
    # An OpenID account has no password: the password form never signs it in.
    with TestClient(app=create_app(settings), base_url=settings.base_url) as other_browser:
        attempt = submit(other_browser, "/login", "/login", {"username": username, "password": ""})
        assert attempt.status_code == 400


def test_second_sign_in_reuses_the_account(browser, provider, settings, oidc_app):
    who = provider.user
    assert browser.get(_approved(browser, provider), follow_redirects=False).status_code == 303
    first = _signed_in_as(browser)
    assert first
    # Later the person renamed themselves at the provider: still the same account, found by (issuer, subject).
    provider.user = replace(who, preferred_username="someone-else-entirely")
    with TestClient(app=oidc_app, base_url=settings.base_url) as other_browser:
        again = other_browser.get(
            _approved(other_browser, provider, next_path="//evil.example/"), follow_redirects=False
        )
        assert again.status_code == 303 and again.headers["location"] == "/"
        assert _signed_in_as(other_browser) == first
    assert _linked_usernames(settings, provider, who.sub) == [first]


def test_a_taken_username_gets_a_suffix_and_never_the_existing_account(browser, provider, settings, people):
    local = people.make("taken")
    provider.user = _someone(preferred_username=local.username)
    assert browser.get(_approved(browser, provider), follow_redirects=False).status_code == 303
    assert _signed_in_as(browser) == f"{local.username}-2"
    # The local account still signs in with its password, as itself.
    with TestClient(app=create_app(settings), base_url=settings.base_url) as other_browser:
        sign_in(other_browser, local.username)
        assert _signed_in_as(other_browser) == local.username


def test_a_tampered_state_is_refused_and_leaves_no_session(browser, provider, settings):
    callback = _approved(browser, provider)
    exchanged_before = len(provider.token_requests)
    refused = browser.get(_with_params(callback, state="forged-" + uuid.uuid4().hex), follow_redirects=False)
    _assert_refused_page(refused, 400, "not valid any more")
    assert len(provider.token_requests) == exchanged_before  # the code never left Kith
    assert _signed_in_as(browser) is None
    # The attempt is used up: the genuine callback does not work afterwards either.
    _assert_refused_page(browser.get(callback, follow_redirects=False), 400, "not valid any more")
    assert _signed_in_as(browser) is None
    assert _linked_usernames(settings, provider, provider.user.sub) == []


def test_a_callback_without_a_started_sign_in_is_refused(browser):
    refused = browser.get(f"/login/oidc/{NAME}/callback?state=x&code=y", follow_redirects=False)
    _assert_refused_page(refused, 400, "not valid any more")
    assert _signed_in_as(browser) is None


def test_a_replayed_code_is_refused_by_the_provider(browser, provider, settings, oidc_app):
    first = _approved(browser, provider)
    assert browser.get(first, follow_redirects=False).status_code == 303
    used_code = parse_qs(urlsplit(first).query)["code"][0]
    with TestClient(app=oidc_app, base_url=settings.base_url) as attacker:
        # A sign-in of their own for a valid state, then the code someone else already used.
        fresh = _approved(attacker, provider)
        refusals = len(provider.refusals)
        replayed = attacker.get(_with_params(fresh, code=used_code), follow_redirects=False)
        _assert_refused_page(replayed, 400, "did not accept this sign-in (invalid_grant)")
        assert provider.refusals[refusals:] == ["invalid_grant"]
        assert _signed_in_as(attacker) is None


@pytest.mark.parametrize(
    "misbehaviour",
    [
        {"nonce": "not-the-nonce-kith-sent"},
        {"aud": ["some-other-client"]},
        {"iss": "http://127.0.0.1:9/impostor"},
        {"exp": int(time.time()) - 600},
        "signed-by-another-key",
    ],
    ids=["wrong-nonce", "wrong-audience", "wrong-issuer", "expired", "bad-signature"],
)
def test_an_id_token_that_does_not_check_out_is_refused(browser, provider, settings, misbehaviour):
    if misbehaviour == "signed-by-another-key":
        # Same key id as the published key, different key.
        provider.signing_key = signing_key(str(provider.key.kid))
    else:
        provider.id_token_overrides = dict(misbehaviour)
    refused = browser.get(_approved(browser, provider), follow_redirects=False)
    _assert_refused_page(refused, 400, "did not check out")
    assert _signed_in_as(browser) is None
    assert _linked_usernames(settings, provider, provider.user.sub) == []


def test_keys_are_fetched_again_when_the_provider_rotates_them(browser, provider, settings):
    assert browser.get(_approved(browser, provider), follow_redirects=False).status_code == 303
    fetched = provider.jwks_requests
    provider.rotate_key()
    provider.user = _someone()
    assert browser.get(_approved(browser, provider), follow_redirects=False).status_code == 303
    assert provider.jwks_requests == fetched + 1
    assert _linked_usernames(settings, provider, provider.user.sub) == [_signed_in_as(browser)]


def test_a_provider_that_says_no_gets_a_readable_page(browser, provider):
    callback = _approved(browser, provider)
    parts = urlsplit(callback)
    state = parse_qs(parts.query)["state"][0]
    denied = parts._replace(query=urlencode({"state": state, "error": "access_denied"})).geturl()
    _assert_refused_page(browser.get(denied, follow_redirects=False), 400, "did not sign you in: access_denied")
    assert _signed_in_as(browser) is None


def test_unknown_and_unreachable_providers_get_error_pages(browser):
    _assert_refused_page(browser.get("/login/oidc/nope", follow_redirects=False), 404, "We could not find that page")
    _assert_refused_page(browser.get("/login/oidc/offline", follow_redirects=False), 502, "could not be reached")


def test_a_provider_on_a_private_address_is_refused_unless_the_operator_allows_it(settings, provider):
    before = provider.discovery_requests
    refusing = replace(
        settings, allowed_private_networks=(), oidc=(OIDCProvider(NAME, provider.issuer, CLIENT_ID, CLIENT_SECRET),)
    )
    with TestClient(app=create_app(refusing), base_url=settings.base_url) as client:
        _assert_refused_page(client.get(f"/login/oidc/{NAME}", follow_redirects=False), 502, "could not be reached")
        assert _signed_in_as(client) is None
    assert provider.discovery_requests == before  # Kith never connected
