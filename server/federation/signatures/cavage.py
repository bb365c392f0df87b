"""draft-cavage-http-signatures: what Kith, Mastodon and most of the fediverse sign with."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from server.federation.signatures import keys
from server.federation.signatures.message import (
    ParsedSignature,
    Request,
    SignatureError,
    b64decode,
    b64encode,
    outgoing_headers,
)


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
    headers = outgoing_headers(url, extra_headers, now)
    covered = ["(request-target)", "host", "date"]
    if body is not None:
        headers["Digest"] = "SHA-256=" + b64encode(hashlib.sha256(body).digest())
        covered.append("digest")
    elif any(name.lower() == "accept" for name in headers):
        # A signed GET answers differently by Accept (HTML or ActivityPub); sign that choice too.
        covered.append("accept")
    message = signing_base(covered, Request.outgoing(method, url, headers), {}).encode()
    signature = keys.sign(keys.private_key(private_key_pem), "rsa-v1_5-sha256", message)
    headers["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(covered)}",signature="{b64encode(signature)}"'
    )
    return headers


def parse(value: str, request: Request) -> ParsedSignature:
    """The signature in a `Signature` header (or `Authorization: Signature` parameters)."""
    params = parameters(value)
    key_id, encoded = params.get("keyId"), params.get("signature")
    if not key_id or not encoded:
        raise SignatureError("the Signature header lacks keyId or signature")
    keys.check_key_id(key_id)
    algorithms = keys.algorithms(params.get("algorithm"))
    # Per the draft, a signature without a headers parameter covers only Date.
    names = params.get("headers", "date").lower().split()
    try:
        signature = b64decode(encoded)
    except ValueError:
        raise SignatureError("the signature is not valid base64") from None
    return ParsedSignature(
        "draft-cavage",
        key_id,
        algorithms,
        frozenset(names),
        signature,
        signing_base(names, request, params).encode(),
        _timestamp(params, "created"),
        _timestamp(params, "expires"),
    )


# name = "quoted" | name = bare, comma-separated; the last alternative takes any character that
# starts no parameter, so that findall() reads the whole header in one pass and a malformed one
# shows up as a non-empty last group. The quoted string is unrolled and possessive, so a long
# value (a signature is 344 characters) is matched a run at a time, without backtracking. Its
# runs, anything but a quote or a backslash, are written as ranges: the regex engine checks a
# range set with one table lookup a character, a negated pair by comparing with each in turn.
_UNQUOTED = r"[\x00-!#-\[\]-\U0010ffff]"
_PARAMETER = re.compile(
    rf'\s*+([A-Za-z]++)\s*+=\s*+(?:"({_UNQUOTED}*+(?:\\.{_UNQUOTED}*+)*+)"|([^",\s]++))\s*+(?:,|\Z)|([\s\S])'
)
_ESCAPED = re.compile(r"\\(.)")


def parameters(value: str) -> dict[str, str]:
    """The parameters of a draft-cavage Signature header; a repeated name's last value wins."""
    params = {}
    for name, quoted, bare, stray in _PARAMETER.findall(value.strip()):
        if stray:
            raise SignatureError("the Signature header is malformed")
        if bare:
            params[name] = bare
        else:
            params[name] = _ESCAPED.sub(r"\1", quoted) if "\\" in quoted else quoted
    return params


_TIMESTAMP = re.compile(r"\d{1,12}")


def _timestamp(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not _TIMESTAMP.fullmatch(value):
        raise SignatureError(f"the signature's {name} parameter is not a timestamp")
    return int(value)


def signing_base(names: Sequence[str], request: Request, params: Mapping[str, str]) -> str:
    """The lines `name: value` that a draft-cavage signature signs, in the order of `names`."""
    lines = []
    for name in names:
        if name == "(request-target)":
            value: str | None = f"{request.method.lower()} {request.target}"
        elif name == "(created)" or name == "(expires)":
            value = params.get(name[1:-1])
        else:
            value = request.headers.get(name)
        if value is None:
            raise SignatureError(f"the signed header {name} is missing from the request")
        lines.append(f"{name}: {value}")
    return "\n".join(lines)
