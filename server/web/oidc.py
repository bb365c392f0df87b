"""Sign-in through OpenID Connect providers: the authorization code flow with PKCE.

`GET /login/oidc/{name}` discovers the provider, keeps a random state, nonce and PKCE verifier in the session and
sends the browser to the provider. The provider sends it back to `/login/oidc/{name}/callback`, where the state
must match, the code is exchanged (with the verifier) for tokens, and the ID token is checked against the
provider's published keys, issuer, audience, expiry and nonce before anyone is signed in.

Only the configured issuers and the endpoints their discovery documents name are ever contacted.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from server import outbound
from server.accounts.service import AccountService
from server.errors import ProblemError
from server.settings import OIDCProvider, Settings
from server.web.auth import sign_in
from server.web.core import flash, safe_next, session_of

with warnings.catch_warnings():
    # Authlib would rather use the httpx2 package, and says so once on import; httpx does the same job here.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

log = logging.getLogger("kith.web.oidc")

SESSION_FLOW = "oidc_flow"
SCOPE = "openid profile email"
FLOW_MAX_AGE_SECONDS = 600
DISCOVERY_TTL_SECONDS = 3600
CLOCK_LEEWAY_SECONDS = 60
MAX_DOCUMENT_BYTES = 512_000
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Signatures by the provider's published keys only: never "none", never a shared secret.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class SignInFailed(ProblemError):
    """A sign-in that cannot go on; the detail is shown to the person on an error page."""


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    token_auth_method: str


class ProviderCache:
    """Discovery documents and key sets per issuer, for one app. Keys are fetched again for an unknown key id."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.metadata: dict[str, tuple[float, ProviderMetadata]] = {}
        self.keys: dict[str, KeySet] = {}

    async def discover(self, client: httpx.AsyncClient, provider: OIDCProvider) -> ProviderMetadata:
        cached = self.metadata.get(provider.issuer)
        if cached and self.clock() - cached[0] < DISCOVERY_TTL_SECONDS:
            return cached[1]
        document = await _get_json(client, f"{provider.issuer}/.well-known/openid-configuration")
        metadata = _parse_metadata(provider, document)
        self.metadata[provider.issuer] = (self.clock(), metadata)
        return metadata

    async def key_set(self, client: httpx.AsyncClient, metadata: ProviderMetadata, *, refresh: bool = False) -> KeySet:
        if refresh or metadata.jwks_uri not in self.keys:
            document = await _get_json(client, metadata.jwks_uri)
            try:
                self.keys[metadata.jwks_uri] = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise SignInFailed(502, "The sign-in provider publishes keys Kith cannot read.") from exc
        return self.keys[metadata.jwks_uri]


def cache_of(request: Request[Any, Any, Any]) -> ProviderCache:
    state = request.app.state
    if getattr(state, "oidc_cache", None) is None:
        state.oidc_cache = ProviderCache()
    return state.oidc_cache  # type: ignore[no-any-return]


def provider_named(settings: Settings, name: str) -> OIDCProvider:
    for provider in settings.oidc:
        if provider.name == name:
            return provider
    raise NotFoundException(f"There is no sign-in provider called {name!r}.")


def redirect_uri(settings: Settings, provider: OIDCProvider) -> str:
    return f"{settings.base_url}/login/oidc/{quote(provider.name, safe='')}/callback"


def _oauth_client(settings: Settings, provider: OIDCProvider) -> Any:
    return AsyncOAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        scope=SCOPE,
        redirect_uri=redirect_uri(settings, provider),
        code_challenge_method="S256",
        timeout=TIMEOUT,
        follow_redirects=False,
        trust_env=False,
        transport=outbound.transport(settings),
        headers={"User-Agent": outbound.USER_AGENT, "Accept": "application/json"},
    )


@asynccontextmanager
async def _provider_client(settings: Settings, provider: OIDCProvider) -> AsyncIterator[Any]:
    """A client for one provider's endpoints. Whatever else goes wrong over there is a readable page, not a 500."""
    try:
        async with _oauth_client(settings, provider) as client:
            yield client
    except SignInFailed:
        raise
    except Exception as exc:
        log.exception("OpenID provider %s: sign-in failed", provider.name)
        raise SignInFailed(502, f"Signing in with {provider.name} did not work. Please try again later.") from exc


async def _get_json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        # withhold_token: these are public documents, fetched before there is any token.
        response = await client.request("GET", url, withhold_token=True)
    except httpx.HTTPError as exc:
        log.warning("OpenID provider unreachable at %s: %s", url, exc)
        raise SignInFailed(502, "The sign-in provider could not be reached. Please try again later.") from exc
    if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
        log.warning("OpenID provider answered %s for %s", response.status_code, url)
        raise SignInFailed(502, "The sign-in provider did not answer as expected. Please try again later.")
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise SignInFailed(502, "The sign-in provider did not answer as expected. Please try again later.")
    return document


def _parse_metadata(provider: OIDCProvider, document: dict[str, Any]) -> ProviderMetadata:
    bad = SignInFailed(502, f"The sign-in provider {provider.name!r} is not set up correctly.")
    issuer = document.get("issuer")
    # OpenID Connect Discovery §4.3: the document's issuer is the one it was fetched for.
    if not isinstance(issuer, str) or issuer.rstrip("/") != provider.issuer:
        log.warning("OpenID provider %s: discovery names issuer %r", provider.name, issuer)
        raise bad
    secure_only = urlsplit(issuer).scheme == "https"
    endpoints = {}
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(key)
        scheme = urlsplit(value).scheme if isinstance(value, str) else ""
        if scheme not in (("https",) if secure_only else ("http", "https")) or not urlsplit(value).hostname:
            log.warning("OpenID provider %s: unusable %s %r", provider.name, key, value)
            raise bad
        endpoints[key] = value
    offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = tuple(a for a in offered if a in SIGNING_ALGORITHMS) if isinstance(offered, list) else ()
    if not algorithms:
        log.warning("OpenID provider %s: no usable ID token algorithm in %r", provider.name, offered)
        raise bad
    methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    methods = methods if isinstance(methods, list) else []
    if "client_secret_basic" in methods:
        method = "client_secret_basic"
    elif "client_secret_post" in methods:
        method = "client_secret_post"
    else:
        log.warning("OpenID provider %s: no client secret method in %r", provider.name, methods)
        raise bad
    return ProviderMetadata(issuer=issuer, algorithms=algorithms, token_auth_method=method, **endpoints)


@get("/login/oidc/{name:str}", name="oidc_start")
async def oidc_start(request: Request[Any, Any, Any], settings: Settings, name: str, next: str = "/") -> Redirect:
    provider = provider_named(settings, name)
    async with _provider_client(settings, provider) as client:
        metadata = await cache_of(request).discover(client, provider)
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        url, _ = client.create_authorization_url(
            metadata.authorization_endpoint, state=state, code_verifier=verifier, nonce=nonce
        )
    session = session_of(request)
    session[SESSION_FLOW] = {
        "provider": provider.name,
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "next": safe_next(next),
        "started": int(time.time()),
    }
    request.set_session(session)
    return Redirect(url, status_code=303)


@get("/login/oidc/{name:str}/callback", name="oidc_callback")
async def oidc_callback(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, name: str) -> Redirect:
    provider = provider_named(settings, name)
    params = request.query_params
    # Whatever happens next, this sign-in attempt is used up.
    session = session_of(request)
    flow = session.pop(SESSION_FLOW, None)
    if flow is not None:
        request.set_session(session)
    if not _flow_matches(flow, provider, params.get("state") or ""):
        raise SignInFailed(
            400, "This sign-in link is not valid any more: it expired or was already used. Please sign in again."
        )
    if params.get("error"):
        reason = (params.get("error_description") or params.get("error") or "")[:200]
        raise SignInFailed(400, f"{provider.name} did not sign you in: {reason}")
    code = params.get("code")
    if not code:
        raise SignInFailed(400, f"{provider.name} sent you back without a sign-in code. Please sign in again.")

    cache = cache_of(request)
    async with _provider_client(settings, provider) as client:
        metadata = await cache.discover(client, provider)
        client.token_endpoint_auth_method = metadata.token_auth_method
        token = await _exchange(client, provider, metadata, code, flow["verifier"])
        claims = await _verified_id_token(client, cache, provider, metadata, token, flow["nonce"])

    user = await AccountService(db, settings).oidc_user(
        metadata.issuer,
        claims["sub"],
        username_hint=_first_text(claims, "preferred_username", "nickname", "email", "name") or "user",
        display_name=_first_text(claims, "name", "preferred_username") or "",
    )
    await sign_in(request, db, user.id)
    flash(request, f"Welcome, {user.display_name or user.username}.")
    return Redirect(safe_next(flow.get("next")), status_code=303)


def _flow_matches(flow: Any, provider: OIDCProvider, state: str) -> bool:
    if not isinstance(flow, dict) or flow.get("provider") != provider.name:
        return False
    if time.time() - int(flow.get("started", 0)) > FLOW_MAX_AGE_SECONDS:
        return False
    expected = str(flow.get("state", ""))
    return bool(expected) and hmac.compare_digest(expected.encode(), state.encode())


async def _exchange(
    client: Any, provider: OIDCProvider, metadata: ProviderMetadata, code: str, verifier: str
) -> dict[str, Any]:
    try:
        token = await client.fetch_token(
            metadata.token_endpoint, grant_type="authorization_code", code=code, code_verifier=verifier
        )
    except OAuthError as exc:
        log.info("OpenID provider %s refused the code: %s %s", provider.name, exc.error, exc.description)
        raise SignInFailed(
            400, f"{provider.name} did not accept this sign-in ({exc.error}). Please sign in again."
        ) from exc
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("OpenID provider %s: token request failed: %s", provider.name, exc)
        raise SignInFailed(502, "The sign-in provider could not be reached. Please try again later.") from exc
    return dict(token)


async def _verified_id_token(
    client: Any,
    cache: ProviderCache,
    provider: OIDCProvider,
    metadata: ProviderMetadata,
    token: dict[str, Any],
    nonce: str,
) -> dict[str, Any]:
    refused = SignInFailed(400, f"The identity {provider.name} vouched for did not check out. Please sign in again.")
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        log.warning("OpenID provider %s: token response without an ID token", provider.name)
        raise refused
    try:
        try:
            decoded = jwt.decode(id_token, await cache.key_set(client, metadata), algorithms=list(metadata.algorithms))
        except InvalidKeyIdError:
            # The provider may have rotated its keys since they were fetched.
            keys = await cache.key_set(client, metadata, refresh=True)
            decoded = jwt.decode(id_token, keys, algorithms=list(metadata.algorithms))
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": metadata.issuer},
                "aud": {"essential": True, "value": provider.client_id},
                "sub": {"essential": True},
                "exp": {"essential": True},
                "nonce": {"essential": True, "value": nonce},
            },
            params={"nonce": nonce, "client_id": provider.client_id, "access_token": token.get("access_token")},
        )
        claims.validate(leeway=CLOCK_LEEWAY_SECONDS)
    except (JoseError, ValueError, TypeError) as exc:
        log.warning("OpenID provider %s: ID token refused: %r", provider.name, exc)
        raise refused from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise refused
    return dict(claims)


def _first_text(claims: dict[str, Any], *names: str) -> str | None:
    for claim in names:
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


oidc_handlers = [oidc_start, oidc_callback]
