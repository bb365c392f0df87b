"""RFC 9421 HTTP Message Signatures, with RFC 9530 Content-Digest.

Signature-Input, Signature and Content-Digest are RFC 8941 structured fields, read and written
by http_sfv.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeGuard

import http_sfv

from server.federation.signatures import keys
from server.federation.signatures.message import (
    DIGESTS,
    ParsedSignature,
    Request,
    SignatureError,
    outgoing_headers,
)


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
    headers = outgoing_headers(url, extra_headers, when)
    if body is not None:
        digest = DIGESTS[digest_algorithm](body).digest()
        headers["Content-Digest"] = f"{digest_algorithm}={http_sfv.Item(digest)}"
    if components is None:
        components = ("@method", "@target-uri") + (("content-digest",) if body is not None else ())
    spec = http_sfv.InnerList(list(components))
    spec.params.update(created=int(when.timestamp()), keyid=key_id, alg=alg)
    if expires_in is not None:
        spec.params["expires"] = int((when + expires_in).timestamp())
    message = signing_base(spec, Request.outgoing(method, url, headers)).encode()
    signature = keys.sign(keys.private_key(private_key_pem), alg, message)
    headers["Signature-Input"] = f"{label}={spec}"
    headers["Signature"] = f"{label}={http_sfv.Item(signature)}"
    return headers


def parse(request: Request) -> ParsedSignature:
    """The signature in Signature-Input and Signature. With several, the first label of
    Signature-Input that Signature also has."""
    inputs = dictionary(request, "signature-input", "Signature-Input")
    values = dictionary(request, "signature", "Signature")
    label = next((name for name in inputs if name in values), None)
    if label is None:
        raise SignatureError("Signature-Input and Signature have no label in common")
    spec, value = inputs[label], values[label]
    if not isinstance(spec, http_sfv.InnerList) or not all(_is_string(item.value) for item in spec):
        raise SignatureError(f"Signature-Input {label} is not a list of component names")
    if not isinstance(value, http_sfv.Item) or not isinstance(value.value, bytes):
        raise SignatureError(f"Signature {label} is not a byte sequence")
    key_id, alg = spec.params.get("keyid"), spec.params.get("alg")
    if not _is_string(key_id) or not key_id:
        raise SignatureError(f"Signature-Input {label} has no keyid")
    if alg is not None and not _is_string(alg):
        raise SignatureError(f"Signature-Input {label} has a malformed alg")
    keys.check_key_id(key_id)
    return ParsedSignature(
        "rfc9421",
        key_id,
        keys.algorithms(None if alg is None else str(alg)),
        frozenset(str(item.value) for item in spec),
        value.value,
        signing_base(spec, request).encode(),
        _integer(spec, "created"),
        _integer(spec, "expires"),
    )


def dictionary(request: Request, name: str, label: str) -> http_sfv.Dictionary:
    """The header `name` as a structured dictionary; an absent or empty header is an empty one."""
    parsed = http_sfv.Dictionary()
    value = request.headers.get(name, "")
    if value:
        try:
            # Non-ASCII fails the encoding with a ValueError too: RFC 8941 fields are ASCII.
            parsed.parse(value.encode("ascii"))
        except ValueError:
            raise SignatureError(f"the {label} header is not a valid structured field") from None
    return parsed


def content_digests(request: Request) -> Iterator[tuple[str, bytes]]:
    """RFC 9530: a structured dictionary `sha-256=:<base64>:`. A member that is not a byte
    sequence yields no bytes, which match no digest."""
    for algorithm, member in dictionary(request, "content-digest", "Content-Digest").items():
        value = member.value if isinstance(member, http_sfv.Item) else None
        yield algorithm, value if isinstance(value, bytes) else b""


# sf-string only: tokens, display strings (both str subclasses in http_sfv) and the rest are not
# names or key ids, and a token would serialize back without quotes, changing the signature base.
def _is_string(value: object) -> TypeGuard[str]:
    return type(value) is str


def _integer(spec: http_sfv.InnerList, name: str) -> int | None:
    value = spec.params.get(name)
    if value is None:
        return None
    if type(value) is not int:
        raise SignatureError(f"the signature's {name} parameter is not an integer")
    return value


def signing_base(spec: http_sfv.InnerList, request: Request) -> str:
    """The signature base of RFC 9421 section 2.5 for the components and parameters in `spec`."""
    lines, seen = [], set()
    for item in spec:
        name = item.value
        if name in seen:
            raise SignatureError(f"the component {name} is listed twice")
        if item.params:
            raise SignatureError(f"component parameters (on {name}) are not supported")
        seen.add(name)
        lines.append(f"{item}: {_component_value(name, request)}")
    try:
        lines.append(f'"@signature-params": {spec}')
    except ValueError:  # a parameter http_sfv read but cannot write back
        raise SignatureError("the signature's parameters cannot be serialized") from None
    return "\n".join(lines)


def _component_value(name: str, request: Request) -> str:
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
