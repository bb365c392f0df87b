"""Verifying an incoming request's signature, whichever scheme it uses.

The order matters: everything that can be checked from the request alone (coverage, host,
freshness, body digests) is checked before the key is asked for, so a bad request never makes
the caller fetch anything.
"""

from __future__ import annotations

import email.utils
import functools
import hmac
import re
import time
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from server.federation.signatures import cavage, keys, rfc9421
from server.federation.signatures.message import (
    DIGESTS,
    ParsedSignature,
    Request,
    Scheme,
    SignatureError,
    b64decode,
    lowercase,
)

MAX_CLOCK_SKEW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    key_id: str
    scheme: Scheme

    @property
    def owner(self) -> str:
        return keys.key_owner(self.key_id)


class PublicKeyGetter(Protocol):
    """Returns the PEM of `key_id` (cached unless `refresh`), or None if it cannot be had."""

    def __call__(self, key_id: str, refresh: bool) -> Awaitable[str | None]: ...


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
    request = Request(method, path_with_query or "/", url_scheme, lowercase(headers))
    signature = _parse(request)
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


def claimed_key_id(
    method: str, path_with_query: str, headers: Mapping[str, str], *, url_scheme: str = "https"
) -> str | None:
    """The keyId a request claims, read by the same parsers as verify_request but not verified: whom the caller
    would ask for the key. None when the request carries no signature; SignatureError when it cannot be read."""
    try:
        return _parse(Request(method, path_with_query or "/", url_scheme, lowercase(headers))).key_id
    except Unsigned:
        return None


class Unsigned(SignatureError):
    """The request carries no signature at all."""


def _parse(request: Request) -> ParsedSignature:
    headers = request.headers
    if "signature-input" in headers:
        return rfc9421.parse(request)
    if "signature" in headers:
        return cavage.parse(headers["signature"], request)
    auth_scheme, _, params = headers.get("authorization", "").partition(" ")
    if auth_scheme.lower() == "signature":
        return cavage.parse(params, request)
    raise Unsigned("the request is not signed: no Signature, Signature-Input or Authorization: Signature")


_BODY_METHODS = {"POST", "PUT", "PATCH"}
_DIGEST_HEADERS = {"digest": "Digest", "content-digest": "Content-Digest"}
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


def _check_coverage(signature: ParsedSignature, request: Request, has_body: bool) -> None:
    # A valid signature over too little proves nothing: one without the target could be replayed
    # to another inbox, one without the digest could carry any body.
    covered = signature.covered
    cavage_scheme = signature.scheme == "draft-cavage"
    # What nearly every draft-cavage signature covers meets all its rules at once.
    if not (cavage_scheme and covered >= _CAVAGE_USUAL):
        for names, what in _CAVAGE_REQUIRED if cavage_scheme else _RFC9421_REQUIRED:
            if covered.isdisjoint(names):
                raise SignatureError(f"the signature does not cover {what}")
    if not cavage_scheme:
        if "?" in request.target and covered.isdisjoint(_QUERY_COMPONENTS):
            raise SignatureError("the signature does not cover the query (@query)")
        if signature.created is None and "date" not in covered:
            raise SignatureError("the signature has no created parameter and does not cover Date")
    if has_body and covered.isdisjoint(_DIGEST_HEADERS):
        present = [label for name, label in _DIGEST_HEADERS.items() if name in request.headers]
        if present:
            raise SignatureError(f"the signature does not cover the {present[0]} header")
        raise SignatureError("the request has a body but no Digest or Content-Digest header")


def _check_host(request: Request, expected_host: str) -> None:
    # Without this, a request signed for one peer could be replayed verbatim to another.
    if request.authority != expected_host.lower():
        raise SignatureError(f"the request was signed for {request.authority[:100]}, not {expected_host}")


def _check_freshness(signature: ParsedSignature, request: Request, current: float, max_skew: timedelta) -> None:
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


def _check_digests(signature: ParsedSignature, request: Request, body: bytes) -> None:
    covered = signature.covered
    if "digest" in covered:
        _check_digest("Digest", _rfc3230_digests(request.headers["digest"]), body)
    if "content-digest" in covered:
        _check_digest("Content-Digest", rfc9421.content_digests(request), body)


def _rfc3230_digests(value: str) -> Iterator[tuple[str, bytes]]:
    """A Digest header's `SHA-256=<base64>` values (RFC 3230, possibly several, comma-separated).
    Base64 that does not decode yields no bytes, which match no digest."""
    for part in value.split(","):
        algorithm, _, encoded = part.strip().partition("=")
        try:
            expected = b64decode(encoded.strip())
        except ValueError:
            expected = b""
        yield algorithm, expected


def _check_digest(header: str, values: Iterable[tuple[str, bytes]], body: bytes) -> None:
    # Every digest we know must match; one we do not know is no proof either way.
    checked = False
    for algorithm, expected in values:
        hash_function = DIGESTS.get(algorithm.lower())
        if hash_function is None:
            continue
        if not hmac.compare_digest(expected, hash_function(body).digest()):
            raise SignatureError(f"the {header} header does not match the body")
        checked = True
    if not checked:
        raise SignatureError(f"the {header} header has no sha-256 or sha-512 value")


async def _check_refreshed_key(signature: ParsedSignature, get_public_key: PublicKeyGetter, pem: str | None) -> None:
    """The key `get_public_key` gave without a refresh, `pem`, is missing or did not verify the
    signature: reject it, or accept it if a refreshed key verifies it."""
    if pem is None:
        raise SignatureError(f"unknown key {signature.key_id}: no public key could be obtained")
    # The sender may have rotated its key since we cached it: fetch it once more.
    fresh = await get_public_key(signature.key_id, refresh=True)
    if fresh is not None and fresh != pem and _signed_by(signature, fresh):
        return
    if keys.public_key(fresh or pem) is None:
        raise SignatureError(f"key {signature.key_id} is not a usable RSA or Ed25519 public key")
    raise SignatureError("the signature does not match the request")


def _signed_by(signature: ParsedSignature, pem: str) -> bool:
    key = keys.public_key(pem)
    if key is None:
        return False
    for alg in signature.algorithms:  # noqa: SIM110 (a for loop costs less than any() on a generator)
        if keys.verifies(key, alg, signature.value, signature.message):
            return True
    return False
