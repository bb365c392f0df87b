"""HTTP message signatures: sign draft-cavage requests; verify draft-cavage and RFC 9421.

Pure functions over method, URL/path, headers and body: no web framework, no database.
Keys are PEM strings; the verifier asks an async callable for them so the caller decides
how they are cached and fetched.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import functools
import hashlib
import hmac
import operator
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Literal, Protocol
from urllib.parse import urldefrag, urlsplit

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

MAX_CLOCK_SKEW = timedelta(hours=1)

Scheme = Literal["draft-cavage", "rfc9421"]
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class SignatureError(Exception):
    """The request's signature is missing, malformed, stale or wrong; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    key_id: str
    scheme: Scheme

    @property
    def owner(self) -> str:
        return key_owner(self.key_id)


class PublicKeyGetter(Protocol):
    """Returns the PEM of `key_id` (cached unless `refresh`), or None if it cannot be had."""

    def __call__(self, key_id: str, refresh: bool) -> Awaitable[str | None]: ...


# --- URLs -------------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_of(url: str) -> str:
    """The authority of an http(s) URL as a Host header carries it: lowercase, default port
    omitted. Raises ValueError for anything else."""
    return _host_of(url)


# Every signed request asks this of its keyId, and every delivery of its target; the same
# few URLs come back again and again. A bad URL raises and so is never cached.
@functools.lru_cache(maxsize=256)
def _host_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url[:200]!r}")
    return _authority(parts.hostname, parts.port, parts.scheme)


def key_owner(key_id: str) -> str:
    """The actor URI a key id belongs to: the key id without its #fragment."""
    return urldefrag(key_id).url


def _authority(hostname: str, port: int | None, scheme: str) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname
    return host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"


def _request_target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


# --- Keys -------------------------------------------------------------------------------


def generate_keypair() -> tuple[str, str]:
    """A new RSA-2048 key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem.decode("ascii"), public_pem.decode("ascii")


# Parsing a PEM costs far more than signing with the key; every delivery signs.
@functools.lru_cache(maxsize=128)
def _private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the signing key must be an RSA private key")
    return key


@functools.lru_cache(maxsize=1024)
def _public_key(pem: str) -> PublicKey | None:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return key if isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey) else None


_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_SHA512 = hashes.SHA512()
_PSS_SHA512_SIGN = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
_PSS_SHA512_VERIFY = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=padding.PSS.AUTO)


def _sign(key: rsa.RSAPrivateKey, alg: str, message: bytes) -> bytes:
    if alg == "rsa-v1_5-sha256":
        return key.sign(message, _PKCS1V15, _SHA256)
    if alg == "rsa-pss-sha512":
        return key.sign(message, _PSS_SHA512_SIGN, _SHA512)
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def _verifies(key: PublicKey, alg: str, signature: bytes, message: bytes) -> bool:
    try:
        if _is_ed25519(type(key)):
            if alg != "ed25519":
                return False
            key.verify(signature, message)
        elif alg == "rsa-v1_5-sha256":
            key.verify(signature, message, _PKCS1V15, _SHA256)
        elif alg == "rsa-pss-sha512":
            key.verify(signature, message, _PSS_SHA512_VERIFY, _SHA512)
        else:
            return False
    except InvalidSignature:
        return False
    return True


# isinstance() against cryptography's key classes goes through ABCMeta and costs about as much
# as the rest of a verification's bookkeeping; the answer depends on the class alone.
@functools.cache
def _is_ed25519(key_type: type) -> bool:
    return issubclass(key_type, ed25519.Ed25519PublicKey)


_BY_KEY_TYPE = ("rsa-v1_5-sha256", "rsa-pss-sha512", "ed25519")
# hs2019 (and an RFC 9421 signature without alg) leave the algorithm to the key; the
# fediverse signs those with RSASSA-PKCS1-v1_5 SHA-256, which is tried first.
_ALGORITHMS: dict[str | None, tuple[str, ...]] = {
    "rsa-sha256": ("rsa-v1_5-sha256",),
    "rsa-v1_5-sha256": ("rsa-v1_5-sha256",),
    "rsa-pss-sha512": ("rsa-pss-sha512",),
    "ed25519": ("ed25519",),
    "hs2019": _BY_KEY_TYPE,
    None: _BY_KEY_TYPE,
}


def _algorithms(name: str | None) -> tuple[str, ...]:
    algorithms = _ALGORITHMS.get(name.lower() if name is not None else None)
    if algorithms is None:
        raise SignatureError(f"unsupported signature algorithm {str(name)[:40]!r}")
    return algorithms


# --- Signing ----------------------------------------------------------------------------

_OWN_HEADERS = {"host", "date", "digest", "content-digest", "signature", "signature-input"}


def sign_request(
    method: str,
    url: str,
    body: bytes | None,
    key_id: str,
    private_key_pem: str,
    extra_headers: Mapping[str, str] | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers for a draft-cavage signed request (rsa-sha256): `extra_headers` plus Host,
    Date, Digest (when there is a body) and Signature."""
    headers = _base_headers(url, extra_headers, now)
    covered = ["(request-target)", "host", "date"]
    if body is not None:
        headers["Digest"] = "SHA-256=" + _b64encode(hashlib.sha256(body).digest())
        covered.append("digest")
    elif any(name.lower() == "accept" for name in headers):
        covered.append("accept")
    request = _Request(method, _request_target(url), urlsplit(url).scheme, _lowercase(headers))
    message = _cavage_base(covered, request, {}).encode()
    signature = _sign(_private_key(private_key_pem), "rsa-v1_5-sha256", message)
    headers["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(covered)}",signature="{_b64encode(signature)}"'
    )
    return headers


def sign_request_rfc9421(
    method: str,
    url: str,
    body: bytes | None,
    key_id: str,
    private_key_pem: str,
    extra_headers: Mapping[str, str] | None = None,
    *,
    components: Sequence[str] | None = None,
    alg: Literal["rsa-v1_5-sha256", "rsa-pss-sha512"] = "rsa-v1_5-sha256",
    label: str = "sig1",
    digest_algorithm: Literal["sha-256", "sha-512"] = "sha-256",
    now: datetime | None = None,
    expires_in: timedelta | None = None,
) -> dict[str, str]:
    """Headers for an RFC 9421 signed request: `extra_headers` plus Host, Date,
    Content-Digest (when there is a body), Signature-Input and Signature. By default it
    covers @method, @target-uri and content-digest, with created, keyid and alg."""
    when = now or datetime.now(UTC)
    headers = _base_headers(url, extra_headers, when)
    if body is not None:
        digest = _HASHES[digest_algorithm](body).digest()
        headers["Content-Digest"] = f"{digest_algorithm}={_sf_bare(digest)}"
    if components is None:
        components = ("@method", "@target-uri") + (("content-digest",) if body is not None else ())
    params: dict[str, _Bare] = {"created": int(when.timestamp()), "keyid": key_id, "alg": alg}
    if expires_in is not None:
        params["expires"] = int((when + expires_in).timestamp())
    spec = _InnerList(tuple(_Item(name, {}) for name in components), params)
    request = _Request(method, _request_target(url), urlsplit(url).scheme, _lowercase(headers))
    signature = _sign(_private_key(private_key_pem), alg, _rfc9421_base(spec, request).encode())
    headers["Signature-Input"] = f"{label}={_sf_inner_list(spec)}"
    headers["Signature"] = f"{label}={_sf_bare(signature)}"
    return headers


def _base_headers(url: str, extra_headers: Mapping[str, str] | None, now: datetime | None) -> dict[str, str]:
    headers = {k: v for k, v in (extra_headers or {}).items() if k.lower() not in _OWN_HEADERS}
    headers["Host"] = host_of(url)
    when = (now or datetime.now(UTC)).astimezone(UTC)
    headers["Date"] = email.utils.format_datetime(when, usegmt=True)
    return headers


# --- Verification -----------------------------------------------------------------------

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_DIGEST_HEADERS = {"digest": "Digest", "content-digest": "Content-Digest"}


# _Request and _Signature are made once per request and never changed; not frozen, because a
# frozen dataclass's __init__ costs several times as much.
@dataclass(slots=True)
class _Request:
    method: str
    target: str
    url_scheme: str
    headers: Mapping[str, str]

    @property
    def authority(self) -> str:
        host = self.headers.get("host")
        if host is None:
            raise SignatureError("the request has no Host header")
        return _host_authority(host, self.url_scheme)


# A server sees its own Host header on nearly every request; parse each value once.
@functools.lru_cache(maxsize=256)
def _host_authority(host: str, url_scheme: str) -> str:
    try:
        parts = urlsplit(f"//{host}")
        if parts.hostname:
            return _authority(parts.hostname, parts.port, url_scheme)
    except ValueError:
        pass
    return host.lower()


@dataclass(slots=True)
class _Signature:
    scheme: Scheme
    key_id: str
    algorithms: tuple[str, ...]
    covered: frozenset[str]
    value: bytes
    message: bytes
    created: int | None
    expires: int | None


async def verify_request(
    method: str,
    path_with_query: str,
    headers: Mapping[str, str],
    body: bytes,
    get_public_key: PublicKeyGetter,
    *,
    now: datetime | None = None,
    url_scheme: str = "https",
    expected_host: str | None = None,
    max_skew: timedelta = MAX_CLOCK_SKEW,
) -> VerifiedSignature:
    """Verify a draft-cavage or RFC 9421 signature on an incoming request, or raise
    SignatureError. `url_scheme` is the scheme the request arrived on, for @target-uri;
    `expected_host` (as `host_of` gives it) is this instance's own host.
    If the signature fails with the key `get_public_key` has, it is asked once more with
    refresh=True, since the sender may have rotated its key."""
    request = _Request(method, path_with_query or "/", url_scheme, _lowercase(headers))
    signature = _parse_signature(request)
    _check_coverage(signature, request, has_body=bool(body) or method.upper() in _BODY_METHODS)
    if expected_host is not None:
        _check_host(request, expected_host)
    _check_freshness(signature, request, time.time() if now is None else now.timestamp(), max_skew)
    _check_digests(signature, request, body)
    pem = await get_public_key(signature.key_id, refresh=False)
    if pem is None or not _signed_by(signature, pem):
        await _check_refreshed_key(signature, get_public_key, pem)
    return _verified(signature.key_id, signature.scheme)


# A frozen dataclass costs as much to make as a whole check above; a peer's result is the same
# value every time, so it is made once.
@functools.lru_cache(maxsize=256)
def _verified(key_id: str, scheme: Scheme) -> VerifiedSignature:
    return VerifiedSignature(key_id, scheme)


def _parse_signature(request: _Request) -> _Signature:
    headers = request.headers
    if "signature-input" in headers:
        return _parse_rfc9421(request)
    if "signature" in headers:
        return _parse_cavage(headers["signature"], request)
    auth_scheme, _, params = headers.get("authorization", "").partition(" ")
    if auth_scheme.lower() == "signature":
        return _parse_cavage(params, request)
    raise SignatureError("the request is not signed: no Signature, Signature-Input or Authorization: Signature")


def _check_coverage(signature: _Signature, request: _Request, has_body: bool) -> None:
    covered = signature.covered
    cavage = signature.scheme == "draft-cavage"
    # What nearly every draft-cavage signature covers meets all its rules at once.
    if not (cavage and covered >= _CAVAGE_USUAL):
        for names, what in _CAVAGE_REQUIRED if cavage else _RFC9421_REQUIRED:
            if covered.isdisjoint(names):
                raise SignatureError(f"the signature does not cover {what}")
    if signature.scheme == "rfc9421":
        if "?" in request.target and covered.isdisjoint(_QUERY_COMPONENTS):
            raise SignatureError("the signature does not cover the query (@query)")
        if signature.created is None and "date" not in covered:
            raise SignatureError("the signature has no created parameter and does not cover Date")
    if has_body and covered.isdisjoint(_DIGEST_HEADERS):
        present = [label for name, label in _DIGEST_HEADERS.items() if name in request.headers]
        if present:
            raise SignatureError(f"the signature does not cover the {present[0]} header")
        raise SignatureError("the request has a body but no Digest or Content-Digest header")


_CAVAGE_REQUIRED = (
    ({"(request-target)"}, "(request-target)"),
    ({"host"}, "the Host header"),
    ({"date", "(created)"}, "the Date header"),
)
_CAVAGE_USUAL = frozenset(("(request-target)", "host", "date"))
_RFC9421_REQUIRED = (
    ({"@method"}, "@method"),
    ({"@path", "@request-target", "@target-uri"}, "the path (@path or @target-uri)"),
    ({"@authority", "host", "@target-uri"}, "the host (@authority or @target-uri)"),
)
_QUERY_COMPONENTS = {"@query", "@request-target", "@target-uri"}


def _check_host(request: _Request, expected_host: str) -> None:
    # Without this, a request signed for one peer could be replayed verbatim to another.
    if request.authority != expected_host.lower():
        raise SignatureError(f"the request was signed for {request.authority[:100]}, not {expected_host}")


def _check_freshness(signature: _Signature, request: _Request, current: float, max_skew: timedelta) -> None:
    """`current` is the POSIX time now."""
    limit = max_skew.total_seconds()
    if "date" in signature.covered:
        try:
            drift = abs(current - _http_date(request.headers["date"]))
        except (TypeError, ValueError, IndexError, OverflowError):
            raise SignatureError("the Date header is not a valid HTTP date") from None
        if drift > limit:
            raise _stale("the Date header", drift, limit)
    if signature.created is not None:
        drift = abs(current - float(signature.created))
        if drift > limit:
            raise _stale("the signature's created time", drift, limit)
    if signature.expires is not None and current > signature.expires:
        raise SignatureError("the signature has expired")


def _stale(what: str, drift: float, limit: float) -> SignatureError:
    return SignatureError(f"{what} is {drift:.0f} s from now; at most {limit:.0f} s allowed")


# The IMF-fixdate every sender uses (RFC 9110 5.6.7), read without email.utils. Only four-digit
# years from 1000 on: email.utils reads 0000-0099 as two-digit years, so those go the slow way.
_IMF_FIXDATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"([1-9][0-9]{3}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}


# Requests sent within the same second carry the same Date, so each value is parsed once.
# Only the timestamp is cached; the skew is checked against the clock on every request.
@functools.lru_cache(maxsize=256)
def _http_date(value: str) -> float:
    """The POSIX time of an HTTP date, as email.utils reads it (a date without a zone is UTC).
    Raises ValueError (or TypeError, IndexError, OverflowError) if it is not one."""
    fixdate = _IMF_FIXDATE.fullmatch(value)
    if fixdate is not None:
        day, month, year, hour, minute, second = fixdate.groups()
        when = datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=UTC)
        return when.timestamp()
    when = email.utils.parsedate_to_datetime(value)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _check_digests(signature: _Signature, request: _Request, body: bytes) -> None:
    covered = signature.covered
    if "digest" in covered:
        _check_rfc3230_digest(request.headers["digest"], body)
    if "content-digest" in covered:
        _check_digest("Content-Digest", _content_digest_values(request), body)


_HASHES = {
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}


def _check_digest(header: str, values: Iterable[tuple[str, bytes]], body: bytes) -> None:
    checked = False
    for algorithm, expected in values:
        hash_function = _HASHES.get(algorithm.lower())
        if hash_function is None:
            continue
        if not hmac.compare_digest(expected, hash_function(body).digest()):
            raise SignatureError(f"the {header} header does not match the body")
        checked = True
    if not checked:
        raise SignatureError(f"the {header} header has no sha-256 or sha-512 value")


def _check_rfc3230_digest(value: str, body: bytes) -> None:
    """`_check_digest` for a Digest header (RFC 3230: `SHA-256=<base64>`, possibly several,
    comma-separated), in one loop: every inbox POST comes this way. Base64 that does not decode
    matches nothing."""
    checked = False
    for part in value.split(","):
        algorithm, _, encoded = part.strip().partition("=")
        hash_function = _HASHES.get(algorithm.lower())
        if hash_function is None:
            continue
        try:
            expected = binascii.a2b_base64(encoded, strict_mode=True)
        except ValueError:
            expected = _b64decode_or_empty(encoded)
        if not hmac.compare_digest(expected, hash_function(body).digest()):
            raise SignatureError("the Digest header does not match the body")
        checked = True
    if not checked:
        raise SignatureError("the Digest header has no sha-256 or sha-512 value")


def _content_digest_values(request: _Request) -> Iterator[tuple[str, bytes]]:
    """RFC 9530: a structured dictionary `sha-256=:<base64>:`."""
    for algorithm, member in _sf_header(request, "content-digest", "Content-Digest").items():
        value = member.value if isinstance(member, _Item) else None
        yield algorithm, value if isinstance(value, bytes) else b""


async def _check_refreshed_key(signature: _Signature, get_public_key: PublicKeyGetter, pem: str | None) -> None:
    """The key `get_public_key` gave without a refresh, `pem`, is missing or did not verify the
    signature: reject it, or accept it if a refreshed key verifies it."""
    if pem is None:
        raise SignatureError(f"unknown key {signature.key_id}: no public key could be obtained")
    # The sender may have rotated its key since we cached it: fetch it once more.
    fresh = await get_public_key(signature.key_id, refresh=True)
    if fresh is not None and fresh != pem and _signed_by(signature, fresh):
        return
    if _public_key(fresh or pem) is None:
        raise SignatureError(f"key {signature.key_id} is not a usable RSA or Ed25519 public key")
    raise SignatureError("the signature does not match the request")


def _signed_by(signature: _Signature, pem: str) -> bool:
    key = _public_key(pem)
    if key is None:
        return False
    for alg in signature.algorithms:  # noqa: SIM110 (a for loop costs less than any() on a generator)
        if _verifies(key, alg, signature.value, signature.message):
            return True
    return False


# --- draft-cavage -----------------------------------------------------------------------

# name = "quoted" | name = bare, comma-separated. The quoted-string is unrolled, so that a long
# value (a signature is 344 characters) is matched a run at a time, not a character at a time.
_CAVAGE_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^",\s]+))\s*(?:,|\Z)')
_ESCAPED = re.compile(r"\\(.)")
_TIMESTAMP = re.compile(r"\d{1,12}")


def _parse_cavage(value: str, request: _Request) -> _Signature:
    value = value.strip()
    usual = _parse_cavage_usual(value, request)
    if usual is not None:
        return usual
    params = _cavage_params(value)
    key_id, encoded = params.get("keyId"), params.get("signature")
    if not key_id or not encoded:
        raise SignatureError("the Signature header lacks keyId or signature")
    _check_key_id(key_id)
    # Per the draft, a signature without a headers parameter covers only Date.
    names = params.get("headers", "date").lower().split()
    return _Signature(
        scheme="draft-cavage",
        key_id=key_id,
        algorithms=_algorithms(params.get("algorithm")),
        covered=frozenset(names),
        value=_b64decode(encoded),
        message=_cavage_base(names, request, params).encode(),
        created=_timestamp_param(params, "created"),
        expires=_timestamp_param(params, "expires"),
    )


def _parse_cavage_usual(value: str, request: _Request) -> _Signature | None:
    """The header as Mastodon, Kith and the rest of the fediverse write it:
    `keyId="…",algorithm="…",headers="…"` (the head, the same on every request from a sender),
    then `,signature="…"` last. What the head yields, checked as `_parse_cavage` checks it, is
    cached per head. None (the general path) for any other shape, or a head with any fault, so
    that every error is found, and reported, by the general path in its order."""
    head, marker, tail = value.rpartition(',signature="')
    encoded = tail[:-1]
    if not (marker and encoded and tail[-1] == '"') or '"' in encoded or "\\" in encoded:
        return None
    parsed = _cavage_head(head)
    if parsed is None:
        return None
    signature = _b64decode(encoded)
    try:
        values = None if parsed.values is None else parsed.values(request.headers)
    except KeyError:  # a signed header is missing: _cavage_base says which
        values = None
    if parsed.template is None or values is None:
        message = _cavage_base(parsed.names, request, parsed.params)
    else:
        message = parsed.template % (f"{request.method.lower()} {request.target}", *values)
    return _Signature(
        "draft-cavage",
        parsed.key_id,
        parsed.algorithms,
        parsed.covered,
        signature,
        message.encode(),
        parsed.created,
        parsed.expires,
    )


@dataclass(frozen=True, slots=True)
class _CavageHead:
    key_id: str
    algorithms: tuple[str, ...]
    names: tuple[str, ...]
    covered: frozenset[str]
    created: int | None
    expires: int | None
    params: Mapping[str, str]
    # For the usual `headers="(request-target) h1 h2 …"` with two or more headers: the signature
    # base as a %-template for the request target and the headers' values, and a getter of those.
    template: str | None
    values: Callable[[Mapping[str, str]], tuple[str, ...]] | None


@functools.lru_cache(maxsize=256)
def _cavage_head(head: str) -> _CavageHead | None:
    # `head` is all of the header before `,signature="`; its parameters followed by that one are
    # the parameters of the whole header, unless it ends in a comma (`,,` is malformed) or has a
    # signature parameter of its own (to keep the last-one-wins rule in one place).
    if not head or head.rstrip().endswith(","):
        return None
    try:
        params = _cavage_params(head)
        key_id = params.get("keyId")
        if not key_id or "signature" in params:
            return None
        _check_key_id(key_id)
        names = tuple(params.get("headers", "date").lower().split())
        algorithms = _algorithms(params.get("algorithm"))
        created = _timestamp_param(params, "created")
        expires = _timestamp_param(params, "expires")
    except SignatureError:
        return None
    template, values = None, None
    headers = names[1:]
    if names[:1] == ("(request-target)",) and len(headers) >= 2 and not any(n.startswith("(") for n in headers):
        lines = ["(request-target): %s", *(f"{name.replace('%', '%%')}: %s" for name in headers)]
        template, values = "\n".join(lines), operator.itemgetter(*headers)
    frozen = MappingProxyType(params)
    return _CavageHead(key_id, algorithms, names, frozenset(names), created, expires, frozen, template, values)


def _cavage_params(value: str) -> dict[str, str]:
    """The parameters of a draft-cavage Signature header; a repeated name's last value wins.

    The header as every known sender writes it, `name="value"` comma-separated without a
    backslash, is read by splitting on double quotes: the odd pieces are the values, commas and
    all, and the even pieces the `, name=` between them. Anything else (a bare value, an escape,
    a stray character) is left to `_cavage_params_general`, which reads or rejects it. Whatever
    the split accepts, the general grammar accepts with the same result."""
    value = value.strip()
    pieces = value.split('"')
    if len(pieces) % 2 and len(pieces) >= 3 and "\\" not in value:
        names = _cavage_names(tuple(pieces[0::2]))
        if names is not None:
            return dict(zip(names, pieces[1::2], strict=True))
    return _cavage_params_general(value)


# The pieces between the values are the same on every request from a sender, so their check
# is cached; the values themselves (the signature above all) are never cached.
@functools.lru_cache(maxsize=64)
def _cavage_names(separators: tuple[str, ...]) -> tuple[str, ...] | None:
    """The parameter names in `name = `, `, name = `, ... pieces (the last piece: nothing or a
    comma), or None if a piece has any other shape."""
    first, *assignments, end = separators
    names = []
    for piece in ("," + first, *assignments):
        before, comma, assignment = piece.partition(",")
        name, equals, after = assignment.partition("=")
        name = name.strip()
        if before.strip() or not comma or not equals or after.strip() or not (name.isalpha() and name.isascii()):
            return None
        names.append(name)
    return tuple(names) if end.strip() in ("", ",") else None


def _cavage_params_general(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    position = 0
    while position < len(value):
        match = _CAVAGE_PARAM.match(value, position)
        if match is None or match.end() == position:
            raise SignatureError("the Signature header is malformed")
        quoted, bare = match.group(2), match.group(3)
        if quoted is None:
            params[match.group(1)] = bare
        else:
            params[match.group(1)] = _ESCAPED.sub(r"\1", quoted) if "\\" in quoted else quoted
        position = match.end()
    return params


def _timestamp_param(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not _TIMESTAMP.fullmatch(value):
        raise SignatureError(f"the signature's {name} parameter is not a timestamp")
    return int(value)


def _cavage_base(names: Sequence[str], request: _Request, params: Mapping[str, str]) -> str:
    headers, lines = request.headers, []
    for name in names:
        # The usual names first, without a call: they are most of every signature.
        if name == "(request-target)":
            value = f"{request.method.lower()} {request.target}"
        else:
            value = None if name[0] == "(" else headers.get(name)
            if value is None:
                value = _cavage_value(name, request, params)
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


def _cavage_value(name: str, request: _Request, params: Mapping[str, str]) -> str:
    if name == "(request-target)":
        return f"{request.method.lower()} {request.target}"
    pseudo = name in ("(created)", "(expires)")
    value = params.get(name[1:-1]) if pseudo else request.headers.get(name)
    if value is None:
        raise SignatureError(f"the signed header {name} is missing from the request")
    return value


# --- RFC 9421 ---------------------------------------------------------------------------


def _parse_rfc9421(request: _Request) -> _Signature:
    inputs = _sf_header(request, "signature-input", "Signature-Input")
    values = _sf_header(request, "signature", "Signature")
    label = next((name for name in inputs if name in values), None)
    if label is None:
        raise SignatureError("Signature-Input and Signature have no label in common")
    spec, value = inputs[label], values[label]
    if not isinstance(spec, _InnerList) or not all(_is_sf_string(i.value) for i in spec.items):
        raise SignatureError(f"Signature-Input {label} is not a list of component names")
    if not isinstance(value, _Item) or not isinstance(value.value, bytes):
        raise SignatureError(f"Signature {label} is not a byte sequence")
    key_id, alg = spec.params.get("keyid"), spec.params.get("alg")
    if not _is_sf_string(key_id) or not key_id:
        raise SignatureError(f"Signature-Input {label} has no keyid")
    if alg is not None and not _is_sf_string(alg):
        raise SignatureError(f"Signature-Input {label} has a malformed alg")
    _check_key_id(str(key_id))
    return _Signature(
        scheme="rfc9421",
        key_id=str(key_id),
        algorithms=_algorithms(str(alg) if alg is not None else None),
        covered=frozenset(str(item.value) for item in spec.items),
        value=value.value,
        message=_rfc9421_base(spec, request).encode(),
        created=_int_param(spec, "created"),
        expires=_int_param(spec, "expires"),
    )


def _int_param(spec: _InnerList, name: str) -> int | None:
    value = spec.params.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise SignatureError(f"the signature's {name} parameter is not an integer")
    return value


def _rfc9421_base(spec: _InnerList, request: _Request) -> str:
    lines, seen = [], set()
    for item in spec.items:
        name = str(item.value)
        if name in seen:
            raise SignatureError(f"the component {name} is listed twice")
        if item.params:
            raise SignatureError(f"component parameters (on {name}) are not supported")
        seen.add(name)
        lines.append(f"{_sf_bare(name)}: {_component_value(name, request)}")
    lines.append(f'"@signature-params": {_sf_inner_list(spec)}')
    return "\n".join(lines)


def _component_value(name: str, request: _Request) -> str:
    path, _, query = request.target.partition("?")
    match name:
        case "@method":
            return request.method.upper()
        case "@target-uri":
            return f"{request.url_scheme}://{request.authority}{request.target}"
        case "@authority":
            return request.authority
        case "@scheme":
            return request.url_scheme
        case "@request-target":
            return request.target
        case "@path":
            return path or "/"
        case "@query":
            return f"?{query}"
    if name.startswith("@"):
        raise SignatureError(f"the derived component {name} is not supported")
    value = request.headers.get(name)
    if value is None:
        raise SignatureError(f"the signed header {name} is missing from the request")
    return value


def _check_key_id(key_id: str) -> None:
    try:
        _host_of(key_id)
    except ValueError:
        raise SignatureError("the signature's keyId is not an http(s) URL") from None


# --- Encoding helpers -------------------------------------------------------------------


def _lowercase(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value.strip() for name, value in headers.items()}


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except ValueError:
        pass
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise SignatureError("the signature is not valid base64") from None


def _b64decode_or_empty(text: str) -> bytes:
    try:
        return _b64decode_strict(text.strip())
    except ValueError:
        return b""


# base64.b64decode(text, validate=True), or its ValueError. What binascii's strict mode accepts
# (ASCII, the alphabet, padding only at the end) validate=True accepts too, with the same bytes,
# and strict mode is quicker; anything it refuses goes to b64decode, to be taken or refused as before.
def _b64decode_strict(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except ValueError:
        return base64.b64decode(text, validate=True)


# --- Structured fields (RFC 8941), the subset RFC 9421 and RFC 9530 use ------------------


class _Token(str):
    """An sf-token, kept apart from sf-string so that it serializes back unquoted."""


_Bare = bool | int | float | str | bytes


@dataclass(frozen=True, slots=True)
class _Item:
    value: _Bare
    params: dict[str, _Bare]


@dataclass(frozen=True, slots=True)
class _InnerList:
    items: tuple[_Item, ...]
    params: dict[str, _Bare]


_SF_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_SF_NUMBER = re.compile(r"-?\d{1,15}(?:\.\d{1,3})?")
_SF_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~:/A-Za-z0-9]*")
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_SF_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")
_SF_BOOLEAN = re.compile(r"\?([01])")


def _sf_header(request: _Request, name: str, label: str) -> dict[str, _Item | _InnerList]:
    try:
        return _SFParser(request.headers.get(name, "")).dictionary()
    except ValueError:
        raise SignatureError(f"the {label} header is not a valid structured field") from None


def _is_sf_string(value: object) -> bool:
    return isinstance(value, str) and not isinstance(value, _Token)


class _SFParser:
    """Raises ValueError on anything that is not a well-formed dictionary."""

    def __init__(self, text: str) -> None:
        self.text, self.position = text.strip(), 0

    def dictionary(self) -> dict[str, _Item | _InnerList]:
        members: dict[str, _Item | _InnerList] = {}
        while self.position < len(self.text):
            key = self._match(_SF_KEY)
            if self._take("="):
                members[key] = self._inner_list() if self._peek("(") else self._item()
            else:
                members[key] = _Item(True, self._params())
            self._skip_whitespace()
            if self.position == len(self.text):
                break
            if not self._take(","):
                raise ValueError("expected a comma between members")
            self._skip_whitespace()
            if self.position == len(self.text):
                raise ValueError("trailing comma")
        return members

    def _inner_list(self) -> _InnerList:
        self._take("(")
        items: list[_Item] = []
        while True:
            while self._take(" "):
                pass
            if self._take(")"):
                return _InnerList(tuple(items), self._params())
            items.append(self._item())
            if not (self._peek(" ") or self._peek(")")):
                raise ValueError("expected a space or ) in an inner list")

    def _item(self) -> _Item:
        return _Item(self._bare(), self._params())

    def _params(self) -> dict[str, _Bare]:
        params: dict[str, _Bare] = {}
        while self._take(";"):
            while self._take(" "):
                pass
            key = self._match(_SF_KEY)
            params[key] = self._bare() if self._take("=") else True
        return params

    def _bare(self) -> _Bare:
        char = self.text[self.position : self.position + 1]
        if char == '"':
            return _ESCAPED.sub(r"\1", self._match(_SF_STRING, group=1))
        if char == ":":
            return base64.b64decode(self._match(_SF_BYTES, group=1), validate=True)
        if char == "?":
            return self._match(_SF_BOOLEAN, group=1) == "1"
        if char == "-" or char in "0123456789":
            number = self._match(_SF_NUMBER)
            return float(number) if "." in number else int(number)
        return _Token(self._match(_SF_TOKEN))

    def _match(self, pattern: re.Pattern[str], group: int = 0) -> str:
        match = pattern.match(self.text, self.position)
        if match is None:
            raise ValueError(f"unexpected input at position {self.position}")
        self.position = match.end()
        return match.group(group)

    def _peek(self, char: str) -> bool:
        return self.text.startswith(char, self.position)

    def _take(self, char: str) -> bool:
        if self._peek(char):
            self.position += 1
            return True
        return False

    def _skip_whitespace(self) -> None:
        while self._take(" ") or self._take("\t"):
            pass


def _sf_bare(value: _Bare) -> str:
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, bytes):
        return f":{_b64encode(value)}:"
    if isinstance(value, _Token):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sf_params(params: Mapping[str, _Bare]) -> str:
    return "".join(f";{key}" if value is True else f";{key}={_sf_bare(value)}" for key, value in params.items())


def _sf_inner_list(inner: _InnerList) -> str:
    items = " ".join(_sf_bare(item.value) + _sf_params(item.params) for item in inner.items)
    return f"({items}){_sf_params(inner.params)}"
