"""The request as both signature schemes see it, what a parsed signature holds, and the one error."""

from __future__ import annotations

import base64
import binascii
import email.utils
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

Scheme = Literal["draft-cavage", "rfc9421"]


class SignatureError(Exception):
    """The request's signature is missing, malformed, stale or wrong; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Request and ParsedSignature are made once per request and never changed; not frozen, because a
# frozen dataclass's __init__ costs several times as much.
@dataclass(slots=True)
class Request:
    method: str
    target: str
    url_scheme: str
    headers: Mapping[str, str]  # names lowercased, values stripped

    @classmethod
    def outgoing(cls, method: str, url: str, headers: Mapping[str, str]) -> Request:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(method, target, parts.scheme, lowercase(headers))

    @property
    def authority(self) -> str:
        host = self.headers.get("host")
        if host is None:
            raise SignatureError("the request has no Host header")
        return _host_authority(host, self.url_scheme)


@dataclass(slots=True)
class ParsedSignature:
    scheme: Scheme
    key_id: str
    algorithms: tuple[str, ...]  # to try in turn; the key's type rules out the others
    covered: frozenset[str]
    value: bytes
    message: bytes
    created: int | None
    expires: int | None


_DEFAULT_PORTS = {"http": 80, "https": 443}


# Every signed request asks this of its keyId, and every delivery of its target; the same few
# URLs come back again and again. A bad URL raises and so is never cached.
@functools.lru_cache(maxsize=256)
def host_of(url: str) -> str:
    """The authority of an http(s) URL as a Host header carries it: lowercase, default port
    omitted. Raises ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url[:200]!r}")
    return _authority(parts.hostname, parts.port, parts.scheme)


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


def _authority(hostname: str, port: int | None, scheme: str) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname
    return host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"


_OWN_HEADERS = {"host", "date", "digest", "content-digest", "signature", "signature-input"}


def outgoing_headers(url: str, extra_headers: Mapping[str, str] | None, now: datetime | None) -> dict[str, str]:
    """`extra_headers` with Host and Date set for `url` and `now`; whatever the signer itself
    writes is dropped from them, so a caller cannot smuggle in a second Digest or Signature."""
    headers = {k: v for k, v in (extra_headers or {}).items() if k.lower() not in _OWN_HEADERS}
    headers["Host"] = host_of(url)
    when = (now or datetime.now(UTC)).astimezone(UTC)
    headers["Date"] = email.utils.format_datetime(when, usegmt=True)
    return headers


# The body digests both schemes know, by their RFC 3230 / RFC 9530 names lowercased.
DIGESTS = {
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}


def lowercase(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value.strip() for name, value in headers.items()}


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """base64.b64decode(text, validate=True), or its ValueError. binascii's strict mode takes a
    subset of what validate=True takes, to the same bytes, and is quicker: it goes first."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except ValueError:
        return base64.b64decode(text, validate=True)
