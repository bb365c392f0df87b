"""A real OpenID provider for tests, built on Authlib's server side and served over HTTP on 127.0.0.1.

    with OpenIDProvider(client_id="kith", client_secret="s3cret", redirect_uris=[callback]) as op:
        op.user = ProviderUser(sub="1234", preferred_username="ada")   # who the provider signs in
        op.id_token_overrides = {"nonce": "something else"}            # make it misbehave
        op.rotate_key()                                                # publish a new signing key
        ... Settings(oidc=(OIDCProvider("test", op.issuer, "kith", "s3cret"),)) ...

The provider approves every authorization request at once for `user` (no login page), issues single-use
authorization codes, insists on PKCE S256, and signs ID tokens with a fresh RSA key published as its JWKS.
Everything it refuses at the token endpoint is recorded in `refusals`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, OpenIDCode, UserInfo
from joserfc.jwk import KeySet, RSAKey

from tests.support.server import LOOPBACK, free_port


@dataclass
class ProviderUser:
    sub: str
    preferred_username: str
    name: str = ""


@dataclass
class RegisteredClient(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(s for s in (scope or "openid").split() if s in ("openid", "profile", "email"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class IssuedCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: ProviderUser
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


class WSGIPayload(OAuth2Payload):
    """Query string and form body together, as Authlib's framework integrations present them."""

    def __init__(self, args: dict[str, str], form: dict[str, str], pairs: list[tuple[str, str]]) -> None:
        self._data = {**args, **form}
        self._pairs = pairs

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @cached_property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in self._pairs:
            values[key].append(value)
        return values


class WSGIOAuth2Request(OAuth2Request):
    def __init__(self, environ: dict[str, Any]) -> None:
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        query = environ.get("QUERY_STRING", "")
        uri = f"http://{host}{environ.get('PATH_INFO', '')}" + (f"?{query}" if query else "")
        headers = {
            key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        super().__init__(environ["REQUEST_METHOD"], uri, headers=headers)
        query_pairs = parse_qsl(query, keep_blank_values=True)
        form_pairs: list[tuple[str, str]] = []
        if environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length).decode() if length else ""
            form_pairs = parse_qsl(body, keep_blank_values=True)
        self._args = dict(query_pairs)
        self._form = dict(form_pairs)
        self.payload = WSGIPayload(self._args, self._form, query_pairs + form_pairs)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class RequirePKCE(CodeChallenge):
    """PKCE with S256 on every authorization request, confidential clients included."""

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        if grant.request.payload.data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE with code_challenge_method=S256 is required.")
        super().validate_code_challenge(grant, redirect_uri)


class OpenIDProvider:
    def __init__(self, *, client_id: str, client_secret: str, redirect_uris: list[str], path: str = "/op") -> None:
        self.port = free_port()
        self.issuer = f"http://{LOOPBACK}:{self.port}{path}"
        self.client = RegisteredClient(client_id, client_secret, list(redirect_uris))
        self.key = signing_key("key-1")
        self.user = ProviderUser(sub="subject-0001", preferred_username="ada", name="Ada Lovelace")
        # Claims forced into the next ID tokens, and another key to sign them with: the ways to misbehave.
        self.id_token_overrides: dict[str, Any] = {}
        self.signing_key: RSAKey | None = None
        self.codes: dict[str, IssuedCode] = {}
        self.seen_nonces: set[str] = set()
        self.authorization_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.refusals: list[str] = []
        self.jwks_requests = 0
        self.discovery_requests = 0
        self._lock = threading.Lock()
        self.server = self._authorization_server()
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- the URLs a relying party discovers ------------------------------------------------------

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        }

    def reset(self) -> None:
        self.id_token_overrides = {}
        self.signing_key = None

    def rotate_key(self) -> None:
        """Sign with a new key from now on, and publish only that one."""
        number = int(str(self.key.kid).rsplit("-", 1)[1]) + 1
        self.key = signing_key(f"key-{number}")

    # -- Authlib's server, wired to this object's in-memory state -------------------------------

    def _authorization_server(self) -> AuthorizationServer:
        provider = self

        class Server(AuthorizationServer):
            def query_client(self, client_id: str) -> RegisteredClient | None:
                return provider.client if client_id == provider.client.client_id else None

            def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
                pass

            def create_oauth2_request(self, request: Any) -> OAuth2Request:
                return request if isinstance(request, OAuth2Request) else WSGIOAuth2Request(request)

            def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Any:
                return status, body, headers

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                pass

        class CodeGrant(AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                data = request.payload.data
                with provider._lock:
                    provider.seen_nonces.add(data.get("nonce") or "")
                    provider.codes[code] = IssuedCode(
                        code=code,
                        client_id=request.client.get_client_id(),
                        redirect_uri=request.payload.redirect_uri,
                        scope=request.scope,
                        user=request.user,
                        nonce=data.get("nonce"),
                        code_challenge=data.get("code_challenge"),
                        code_challenge_method=data.get("code_challenge_method"),
                    )

            def query_authorization_code(self, code: str, client: RegisteredClient) -> IssuedCode | None:
                with provider._lock:
                    issued = provider.codes.get(code)
                if issued is None or issued.client_id != client.get_client_id():
                    return None
                return issued

            def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
                # Single use: once exchanged, a code is gone.
                with provider._lock:
                    provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: IssuedCode) -> ProviderUser:
                return authorization_code.user

        class OpenIDCodeExtension(OpenIDCode):
            def resolve_client_private_key(self, client: RegisteredClient) -> RSAKey:
                return provider.signing_key or provider.key

            def get_encode_header(self, client: RegisteredClient) -> dict[str, str]:
                return {"alg": "RS256", "kid": str((provider.signing_key or provider.key).kid)}

            def get_client_claims(self, client: RegisteredClient) -> dict[str, Any]:
                return {"iss": provider.issuer, "aud": [client.get_client_id()]}

            def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
                with provider._lock:
                    return nonce in provider.seen_nonces

            def generate_user_info(self, user: ProviderUser, scope: str) -> UserInfo:
                info = UserInfo(sub=user.sub)
                if "profile" in scope.split():
                    info["preferred_username"] = user.preferred_username
                    info["name"] = user.name
                # The last claims applied before signing, so an override can replace any of them.
                info.update(provider.id_token_overrides)
                return info

        server = Server(scopes_supported=["openid", "profile", "email"])
        server.register_token_generator("default", BearerTokenGenerator(lambda **_: generate_token(42)))
        server.register_grant(CodeGrant, [RequirePKCE(required=True), OpenIDCodeExtension(require_nonce=True)])
        return server

    # -- HTTP -------------------------------------------------------------------------------------

    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        prefix = self.issuer.split(f"{LOOPBACK}:{self.port}", 1)[1]
        route = path[len(prefix) :] if path.startswith(prefix) else None
        method = environ["REQUEST_METHOD"]
        if route == "/.well-known/openid-configuration" and method == "GET":
            self.discovery_requests += 1
            status, body, headers = 200, self.metadata, [("Content-Type", "application/json")]
        elif route == "/jwks" and method == "GET":
            self.jwks_requests += 1
            status, body, headers = 200, KeySet([self.key]).as_dict(private=False), []
        elif route == "/authorize" and method == "GET":
            status, body, headers = self._authorize(environ)
        elif route == "/token" and method == "POST":
            status, body, headers = self._token(environ)
        else:
            status, body, headers = 404, {"error": "not_found"}, []
        if isinstance(body, dict):
            body = json.dumps(body)
            headers = [*(h for h in headers if h[0].lower() != "content-type"), ("Content-Type", "application/json")]
        payload = (body or "").encode()
        start_response(f"{status} {_REASONS.get(status, 'Status')}", [*headers, ("Content-Length", str(len(payload)))])
        return [payload]

    def _authorize(self, environ: dict[str, Any]) -> tuple[int, Any, list[tuple[str, str]]]:
        request = WSGIOAuth2Request(environ)
        self.authorization_requests.append(dict(request.args))
        try:
            grant = self.server.get_consent_grant(request, end_user=self.user)
        except OAuth2Error as error:
            # Per RFC 6749, errors before the redirect URI is trusted are shown, not redirected.
            return self.server.handle_error_response(request, error)  # type: ignore[no-any-return]
        return self.server.create_authorization_response(request, grant_user=self.user, grant=grant)  # type: ignore[no-any-return]

    def _token(self, environ: dict[str, Any]) -> tuple[int, Any, list[tuple[str, str]]]:
        request = WSGIOAuth2Request(environ)
        self.token_requests.append(dict(request.form))
        status, body, headers = self.server.create_token_response(request)
        if status >= 400:
            self.refusals.append(body.get("error", "error"))
        return status, body, headers

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> OpenIDProvider:
        self._httpd = make_server(LOOPBACK, self.port, self.wsgi_app, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openid-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenIDProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def signing_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the name is the base class's
        pass


_REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 500: "Error"}
