"""HTTP message signatures: sign draft-cavage and RFC 9421 requests; verify either.

Pure functions over method, URL/path, headers and body: no web framework, no database. Keys are
PEM strings; the verifier asks an async callable for them so the caller decides how they are
cached and fetched.

- `message`: the request as both schemes see it, the parsed signature, `SignatureError`.
- `keys`: generating and loading keys, signing and verifying bytes, key ids.
- `cavage`: draft-cavage-http-signatures, as the fediverse signs.
- `rfc9421`: RFC 9421 HTTP Message Signatures, with RFC 9530 Content-Digest.
- `verify`: `verify_request`, which checks either kind on an incoming request.
"""

from server.federation.signatures.cavage import sign_request
from server.federation.signatures.keys import generate_keypair, key_owner
from server.federation.signatures.message import SignatureError, host_of
from server.federation.signatures.rfc9421 import sign_request_rfc9421
from server.federation.signatures.verify import (
    MAX_CLOCK_SKEW,
    PublicKeyGetter,
    VerifiedSignature,
    claimed_key_id,
    verify_request,
)

__all__ = [
    "MAX_CLOCK_SKEW",
    "PublicKeyGetter",
    "SignatureError",
    "VerifiedSignature",
    "claimed_key_id",
    "generate_keypair",
    "host_of",
    "key_owner",
    "sign_request",
    "sign_request_rfc9421",
    "verify_request",
]
