import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import http_sfv
import pytest
from cryptography.hazmat.primitives import serialization

from server.federation.signatures import (
    SignatureError,
    VerifiedSignature,
    generate_keypair,
    host_of,
    key_owner,
    rfc9421,
    sign_request,
    sign_request_rfc9421,
    verify_request,
)
from server.federation.signatures import keys as signing_keys
from server.federation.signatures.message import Request

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
KEY_ID = "https://a.example/actor#main-key"
INBOX = "https://b.example/inbox"
BODY = b'{"type": "Follow", "id": "https://a.example/follows/1"}'


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture(scope="module")
def other_keys() -> tuple[str, str]:
    return generate_keypair()


@dataclass
class KeyStore:
    """A get_public_key that serves `cached`, or `fresh` when asked to refresh."""

    cached: str | None
    fresh: str | None = None
    calls: list[tuple[str, bool]] = field(default_factory=list)

    async def __call__(self, key_id: str, refresh: bool) -> str | None:
        self.calls.append((key_id, refresh))
        return self.fresh if refresh else self.cached


async def verify(
    headers: dict[str, str],
    store: KeyStore,
    *,
    method: str = "POST",
    path: str = "/inbox",
    body: bytes = BODY,
    now: datetime = NOW,
) -> VerifiedSignature:
    return await verify_request(method, path, headers, body, store, now=now)


# --- Round trips --------------------------------------------------------------------------


async def test_cavage_post_round_trip(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    store = KeyStore(public)

    verified = await verify(headers, store)

    assert verified == VerifiedSignature(KEY_ID, "draft-cavage")
    assert verified.owner == "https://a.example/actor"
    assert store.calls == [(KEY_ID, False)]


@pytest.mark.parametrize("expected_host", ["b.example", "B.Example"])
async def test_request_signed_for_this_host_passes_the_host_check(keys: tuple[str, str], expected_host: str) -> None:
    private, public = keys
    headers = sign_request("POST", "https://b.example:443/inbox", BODY, KEY_ID, private, now=NOW)

    verified = await verify_request(
        "POST", "/inbox", headers, BODY, KeyStore(public), now=NOW, expected_host=expected_host
    )

    assert verified.key_id == KEY_ID


def test_cavage_post_headers_follow_the_fediverse_profile(keys: tuple[str, str]) -> None:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, keys[0], {"Content-Type": "application/activity+json"}, now=NOW)

    assert headers["Host"] == "b.example"
    assert headers["Date"] == "Fri, 14 Mar 2025 12:00:00 GMT"
    assert headers["Digest"] == "SHA-256=" + base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    assert headers["Content-Type"] == "application/activity+json"
    assert re.fullmatch(
        r'keyId="https://a\.example/actor#main-key",algorithm="rsa-sha256",'
        r'headers="\(request-target\) host date digest",signature="[A-Za-z0-9+/=]+"',
        headers["Signature"],
    )


async def test_cavage_get_round_trip_signs_accept(keys: tuple[str, str]) -> None:
    private, public = keys
    url = "https://b.example/c/tea/outbox?page=2"
    accept = {"Accept": "application/activity+json"}
    headers = sign_request("GET", url, None, KEY_ID, private, accept, now=NOW)

    verified = await verify(headers, KeyStore(public), method="GET", path="/c/tea/outbox?page=2", body=b"")

    assert verified.scheme == "draft-cavage"
    assert "Digest" not in headers
    assert 'headers="(request-target) host date accept"' in headers["Signature"]


async def test_authorization_signature_header_is_accepted(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    headers["Authorization"] = "Signature " + headers.pop("Signature")

    assert (await verify(headers, KeyStore(public))).key_id == KEY_ID


async def test_hs2019_is_verified_as_rsa_sha256(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    headers["Signature"] = headers["Signature"].replace('"rsa-sha256"', '"hs2019"')

    assert (await verify(headers, KeyStore(public))).scheme == "draft-cavage"


async def test_header_names_are_matched_case_insensitively(keys: tuple[str, str]) -> None:
    private, public = keys
    signed = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    shouted = {name.upper(): value for name, value in signed.items()}

    assert (await verify(shouted, KeyStore(public))).key_id == KEY_ID


async def test_pkcs1_public_key_pem_is_accepted(keys: tuple[str, str]) -> None:
    private, public = keys
    pkcs1 = (
        serialization.load_pem_public_key(public.encode())
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        .decode()
    )
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)

    assert (await verify(headers, KeyStore(pkcs1))).key_id == KEY_ID


async def test_rfc9421_round_trip(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, private, now=NOW)

    verified = await verify(headers, KeyStore(public))

    assert verified == VerifiedSignature(KEY_ID, "rfc9421")
    digest = base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    assert headers["Content-Digest"] == f"sha-256=:{digest}:"
    assert headers["Signature-Input"] == (
        f'sig1=("@method" "@target-uri" "content-digest")'
        f';created={int(NOW.timestamp())};keyid="{KEY_ID}";alg="rsa-v1_5-sha256"'
    )


async def test_rfc9421_pss_sha512_with_authority_path_and_date(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request_rfc9421(
        "POST",
        INBOX,
        BODY,
        KEY_ID,
        private,
        components=("@method", "@authority", "@path", "content-digest", "date"),
        alg="rsa-pss-sha512",
        digest_algorithm="sha-512",
        now=NOW,
    )

    assert (await verify(headers, KeyStore(public))).scheme == "rfc9421"
    assert headers["Content-Digest"].startswith("sha-512=:")


async def test_rfc9421_signature_without_alg_is_verified_by_key_type(
    keys: tuple[str, str],
) -> None:
    private, public = keys
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    # alg is optional in RFC 9421; the key type then decides (here RSA, signed with PSS).
    spec = http_sfv.InnerList(["@method", "@target-uri", "content-digest"])
    spec.params.update(created=int(NOW.timestamp()), keyid=KEY_ID)
    request = Request("POST", "/inbox", "https", {k.lower(): v for k, v in headers.items()})
    base = rfc9421.signing_base(spec, request).encode()
    value = signing_keys.sign(signing_keys.private_key(private), "rsa-pss-sha512", base)
    headers["Signature-Input"] = f"sig1={spec}"
    headers["Signature"] = f"sig1=:{base64.b64encode(value).decode()}:"

    assert (await verify(headers, KeyStore(public))).scheme == "rfc9421"


def test_signature_base_matches_rfc9421_appendix_b_2_6() -> None:
    # RFC 9421 B.1.4 (test-key-ed25519) and B.2.6; Ed25519 is deterministic, so the
    # published signature verifies only over a byte-exact base.
    public_pem = (
        "-----BEGIN PUBLIC KEY-----\n"
        "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"
        "-----END PUBLIC KEY-----\n"
    )
    signature_input = (
        'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"'
    )
    signature = base64.b64decode(
        "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
    )
    request = Request(
        method="POST",
        target="/foo?param=Value&Pet=dog",
        url_scheme="https",
        headers={
            "host": "example.com",
            "date": "Tue, 20 Apr 2021 02:07:55 GMT",
            "content-type": "application/json",
            "content-length": "18",
            "signature-input": signature_input,
        },
    )
    spec = rfc9421.dictionary(request, "signature-input", "Signature-Input")["sig-b26"]
    assert isinstance(spec, http_sfv.InnerList)

    base = rfc9421.signing_base(spec, request)

    assert base == (
        '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        '"@method": POST\n'
        '"@path": /foo\n'
        '"@authority": example.com\n'
        '"content-type": application/json\n'
        '"content-length": 18\n'
        '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
        '"content-length");created=1618884473;keyid="test-key-ed25519"'
    )
    key = signing_keys.public_key(public_pem)
    assert key is not None
    assert signing_keys.verifies(key, "ed25519", signature, base.encode())


# --- Header shapes other implementations send ---------------------------------------------


def cavage_params(header: str) -> dict[str, str]:
    """The parameters of a Signature header as sign_request writes it (quoted, no escapes)."""
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def _signature_first(p: dict[str, str]) -> str:
    return f'signature="{p["signature"]}",headers="{p["headers"]}",algorithm="{p["algorithm"]}",keyId="{p["keyId"]}"'


def _spaces_and_tabs(p: dict[str, str]) -> str:
    return (
        f'  keyId = "{p["keyId"]}" ,\talgorithm= "{p["algorithm"]}" ,'
        f'headers ="{p["headers"]}", signature="{p["signature"]}"'
    )


def _trailing_comma(p: dict[str, str]) -> str:
    return f'keyId="{p["keyId"]}",algorithm="{p["algorithm"]}",headers="{p["headers"]}",signature="{p["signature"]}",'


def _unquoted_algorithm(p: dict[str, str]) -> str:
    return f'keyId="{p["keyId"]}",algorithm=rsa-sha256,headers="{p["headers"]}",signature="{p["signature"]}"'


def _escaped_characters(p: dict[str, str]) -> str:
    key_id = p["keyId"].replace("main-key", r"main\-k\ey")
    return f'keyId="{key_id}",algorithm="{p["algorithm"]}",headers="{p["headers"]}",signature="{p["signature"]}"'


def _repeated_key_id(p: dict[str, str]) -> str:
    # The last value of a repeated parameter wins, as it always has.
    first = 'keyId="https://c.example/actor#main-key"'
    rest = f'algorithm="{p["algorithm"]}",headers="{p["headers"]}",signature="{p["signature"]}"'
    return f'{first},keyId="{p["keyId"]}",{rest}'


def _created_and_expires_unquoted(p: dict[str, str]) -> str:
    created, expires = int(NOW.timestamp()), int(NOW.timestamp()) + 300
    return (
        f'keyId="{p["keyId"]}",algorithm="hs2019",created={created},expires={expires},'
        f'headers="{p["headers"]}",signature="{p["signature"]}"'
    )


CAVAGE_SHAPES = [
    _signature_first,
    _spaces_and_tabs,
    _trailing_comma,
    _unquoted_algorithm,
    _escaped_characters,
    _repeated_key_id,
    _created_and_expires_unquoted,
]


@pytest.mark.parametrize("shape", CAVAGE_SHAPES, ids=[shape.__name__[1:] for shape in CAVAGE_SHAPES])
async def test_cavage_header_in_another_shape_verifies(
    shape: Callable[[dict[str, str]], str], keys: tuple[str, str]
) -> None:
    private, public = keys
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    headers["Signature"] = shape(cavage_params(headers["Signature"]))

    assert await verify(headers, KeyStore(public)) == VerifiedSignature(KEY_ID, "draft-cavage")


@pytest.mark.parametrize(
    "header",
    [
        f'keyId="{KEY_ID}",signature="QUJD',
        f'keyId="{KEY_ID}" signature="QUJD"',
        f',keyId="{KEY_ID}",signature="QUJD"',
        f'keyId="{KEY_ID}",,signature="QUJD"',
        f'keyId=,signature="QUJD",keyId="{KEY_ID}"',
        f'keyId="{KEY_ID}",sig-nature="QUJD",signature="QUJD"',
        f'keyId="{KEY_ID}",signature="QUJD",é',
        f'keyId="{KEY_ID}",signature="QUJD"\\',
        f'keyId="{KEY_ID}",signature="QU\\"JD"',
        f'keyId="{KEY_ID}",signature="QUJD",created="soon"',
        f'keyId="{KEY_ID}",signature="QUJD",headers="(request-target) host date digest x-missing"',
        '"',
        "",
    ],
)
async def test_malformed_cavage_header_is_a_signature_error(header: str, keys: tuple[str, str]) -> None:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, keys[0], now=NOW)
    headers["Signature"] = header
    store = KeyStore(keys[1])

    with pytest.raises(SignatureError):
        await verify(headers, store)
    assert store.calls == []


def resigned(headers: dict[str, str], private: str, signature_input: str, label: str = "sig1") -> dict[str, str]:
    """`headers` signed again over the inner list `signature_input` (RFC 9421 text, without label),
    as another implementation would sign them."""
    spec = rfc9421.dictionary(Request("", "", "", {"x": f"{label}={signature_input}"}), "x", "x")[label]
    assert isinstance(spec, http_sfv.InnerList)
    request = Request("POST", "/inbox", "https", {k.lower(): v.strip() for k, v in headers.items()})
    base = rfc9421.signing_base(spec, request).encode()
    value = signing_keys.sign(signing_keys.private_key(private), "rsa-v1_5-sha256", base)
    return headers | {"Signature-Input": f"{label}={signature_input}", "Signature": f"{label}=:{b64(value)}:"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_rfc9421_headers_with_optional_whitespace_verify(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    created = int(NOW.timestamp())
    headers = resigned(
        headers, private, f'("@method" "@target-uri" "content-digest");created={created};keyid="{KEY_ID}"'
    )
    # RFC 8941 allows spaces inside an inner list and after `;`; the signature base is the
    # list serialized again, so a sender's spacing does not change what was signed.
    headers["Signature-Input"] = (
        f'sig1=(  "@method"   "@target-uri" "content-digest" );created={created}; keyid="{KEY_ID}"'
    )

    assert await verify(headers, KeyStore(public)) == VerifiedSignature(KEY_ID, "rfc9421")


async def test_rfc9421_first_label_both_headers_share_is_verified(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    headers["Signature-Input"] = f'proxy=("@authority");keyid="https://proxy.example/k",\t{headers["Signature-Input"]}'
    headers["Signature"] = f"other=:QUJD:, {headers['Signature']}"

    assert await verify(headers, KeyStore(public)) == VerifiedSignature(KEY_ID, "rfc9421")


async def test_content_digest_with_several_algorithms_is_checked_by_those_known(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    sha512 = b64(hashlib.sha512(BODY).digest())
    headers["Content-Digest"] = f"md5=:QUJD:, sha-512=:{sha512}:,unixsum=7"
    created = int(NOW.timestamp())
    headers = resigned(
        headers, private, f'("@method" "@target-uri" "content-digest");created={created};keyid="{KEY_ID}"'
    )

    assert (await verify(headers, KeyStore(public))).scheme == "rfc9421"
    with pytest.raises(SignatureError, match="Content-Digest header does not match"):
        await verify(headers, KeyStore(public), body=BODY + b" ")


CREATED = int(NOW.timestamp())
INPUT = f'("@method" "@target-uri" "content-digest");created={CREATED};keyid="{KEY_ID}"'


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Signature-Input", 'sig1=("@method" "@target-uri"'),
        ("Signature-Input", f"sig1=(@method @target-uri content-digest);created={CREATED};keyid={KEY_ID}"),
        ("Signature-Input", f'sig1=(method target-uri content-digest);created={CREATED};keyid="{KEY_ID}"'),
        ("Signature-Input", f'sig1=("@method" "@target-uri" "content-digest");created=@{CREATED};keyid="{KEY_ID}"'),
        ("Signature-Input", f'sig1=("@method" "@target-uri" "content-digest");created={CREATED}.5;keyid="{KEY_ID}"'),
        ("Signature-Input", f'sig1=("@method" "@target-uri" "content-digest");created={CREATED};keyid=%"{KEY_ID}"'),
        ("Signature-Input", f'sig1=("@method" "@target-uri" "content-digest");created={CREATED};keyid=?1'),
        ("Signature-Input", f'sig1=("@method" "@target-uri" "content-digest");created={CREATED};keyid="main-key"'),
        (
            "Signature-Input",
            f'sig1=("@method" "@target-uri" "content-digest");created={CREATED};keyid="{KEY_ID}";alg=x',
        ),
        ("Signature-Input", f'sig1=("@méthod" "@target-uri" "content-digest");created={CREATED};keyid="{KEY_ID}"'),
        ("Signature-Input", f"Sig1={INPUT}"),
        ("Signature-Input", f"sig1={INPUT},"),
        ("Signature-Input", f'sig1=("@method" "@target-uri" "@method" "content-digest");keyid="{KEY_ID}"'),
        ("Signature-Input", f'sig1=("@method";req "@target-uri" "content-digest");keyid="{KEY_ID}"'),
        ("Signature-Input", f'sig1=("@method" "@target-uri" "@status" "content-digest");keyid="{KEY_ID}"'),
        ("Signature-Input", f'sig1="@method";keyid="{KEY_ID}"'),
        ("Signature", "sig1=:not base64!:"),
        ("Signature", 'sig1="QUJD"'),
        ("Signature", "sig1=(:QUJD:)"),
        ("Signature", "sig1=:QUJD"),
        ("Content-Digest", "sha-256=:QUJD"),
        ("Content-Digest", "sha-256=QUJD"),
        ("Content-Digest", "sha-256"),
    ],
)
async def test_malformed_rfc9421_header_is_a_signature_error(header: str, value: str, keys: tuple[str, str]) -> None:
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, keys[0], now=NOW)
    headers[header] = value
    store = KeyStore(keys[1])

    with pytest.raises(SignatureError):
        await verify(headers, store)
    assert store.calls == []


# --- Key rotation and lookup --------------------------------------------------------------


async def test_rotated_key_is_refetched_once(keys: tuple[str, str], other_keys: tuple[str, str]) -> None:
    new_private, new_public = other_keys
    stale_public = keys[1]
    headers = sign_request("POST", INBOX, BODY, KEY_ID, new_private, now=NOW)
    store = KeyStore(cached=stale_public, fresh=new_public)

    assert (await verify(headers, store)).key_id == KEY_ID
    assert store.calls == [(KEY_ID, False), (KEY_ID, True)]
    assert [refresh for _, refresh in store.calls].count(True) == 1


async def test_refetched_key_that_still_fails_is_rejected(keys: tuple[str, str], other_keys: tuple[str, str]) -> None:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, other_keys[0], now=NOW)
    store = KeyStore(cached=keys[1], fresh=keys[1])

    with pytest.raises(SignatureError, match="does not match the request"):
        await verify(headers, store)
    assert store.calls == [(KEY_ID, False), (KEY_ID, True)]


async def test_unusable_public_key_is_reported(keys: tuple[str, str]) -> None:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, keys[0], now=NOW)

    with pytest.raises(SignatureError, match="not a usable RSA or Ed25519 public key"):
        await verify(headers, KeyStore("not a pem"))


def test_private_keys_are_loaded_once(keys: tuple[str, str]) -> None:
    private = keys[0]
    sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    before = signing_keys.private_key.cache_info()

    sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)

    after = signing_keys.private_key.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


def test_generated_keypair_is_rsa_2048_pem(keys: tuple[str, str]) -> None:
    private, public = keys

    assert private.startswith("-----BEGIN PRIVATE KEY-----")
    assert public.startswith("-----BEGIN PUBLIC KEY-----")
    assert signing_keys.private_key(private).key_size == 2048


# --- Rejections ---------------------------------------------------------------------------


@dataclass
class Case:
    headers: dict[str, str]
    store: KeyStore
    method: str = "POST"
    path: str = "/inbox"
    body: bytes = BODY
    now: datetime = NOW
    expected_host: str | None = None


def _no_signature(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    del headers["Signature"]
    return Case(headers, KeyStore(public))


def _body_altered(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    return Case(headers, KeyStore(public), body=BODY.replace(b"Follow", b"Delete"))


def _date_two_hours_old(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW - timedelta(hours=2))
    return Case(headers, KeyStore(public))


def _date_two_hours_ahead(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW + timedelta(hours=2))
    return Case(headers, KeyStore(public))


def _replayed_to_another_path(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    return Case(headers, KeyStore(public), path="/c/tea/inbox")


def _replayed_to_another_host(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    return Case(headers, KeyStore(public), expected_host="c.example")


def _digest_not_covered(private: str, public: str) -> Case:
    # Signed as if bodiless, then a body and a matching Digest are slipped in.
    headers = sign_request("POST", INBOX, None, KEY_ID, private, now=NOW)
    headers["Digest"] = "SHA-256=" + base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    return Case(headers, KeyStore(public))


def _no_digest_header(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, None, KEY_ID, private, now=NOW)
    return Case(headers, KeyStore(public))


def _unknown_key(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    return Case(headers, KeyStore(None))


def _unsupported_algorithm(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    headers["Signature"] = headers["Signature"].replace('"rsa-sha256"', '"hmac-sha256"')
    return Case(headers, KeyStore(public))


def _malformed_signature_header(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    headers["Signature"] = 'keyId="https://a.example/actor#main-key" signature=oops"'
    return Case(headers, KeyStore(public))


def _signature_not_base64(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    headers["Signature"] = re.sub(r'signature="[^"]+"', 'signature="%%%"', headers["Signature"])
    return Case(headers, KeyStore(public))


def _key_id_not_a_url(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, "main-key", private, now=NOW)
    return Case(headers, KeyStore(public))


def _signed_header_missing(private: str, public: str) -> Case:
    headers = sign_request("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    del headers["Host"]
    return Case(headers, KeyStore(public))


def _rfc9421_body_altered(private: str, public: str) -> Case:
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    return Case(headers, KeyStore(public), body=BODY + b" ")


def _rfc9421_content_digest_not_covered(private: str, public: str) -> Case:
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, private, components=("@method", "@target-uri"), now=NOW)
    return Case(headers, KeyStore(public))


def _rfc9421_method_not_covered(private: str, public: str) -> Case:
    headers = sign_request_rfc9421(
        "POST", INBOX, BODY, KEY_ID, private, components=("@target-uri", "content-digest"), now=NOW
    )
    return Case(headers, KeyStore(public))


def _rfc9421_query_not_covered(private: str, public: str) -> Case:
    headers = sign_request_rfc9421(
        "GET",
        "https://b.example/outbox?page=2",
        None,
        KEY_ID,
        private,
        components=("@method", "@authority", "@path"),
        now=NOW,
    )
    return Case(headers, KeyStore(public), method="GET", path="/outbox?page=2", body=b"")


def _rfc9421_created_two_hours_old(private: str, public: str) -> Case:
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, private, now=NOW - timedelta(hours=2))
    return Case(headers, KeyStore(public))


def _rfc9421_expired(private: str, public: str) -> Case:
    ten_minutes_ago = NOW - timedelta(minutes=10)
    headers = sign_request_rfc9421(
        "POST", INBOX, BODY, KEY_ID, private, now=ten_minutes_ago, expires_in=timedelta(minutes=5)
    )
    return Case(headers, KeyStore(public))


def _rfc9421_malformed_input(private: str, public: str) -> Case:
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    headers["Signature-Input"] = 'sig1=("@method" "@target-uri"'
    return Case(headers, KeyStore(public))


def _rfc9421_labels_differ(private: str, public: str) -> Case:
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    headers["Signature"] = headers["Signature"].replace("sig1=", "sig2=")
    return Case(headers, KeyStore(public))


def _rfc9421_replayed_to_another_path(private: str, public: str) -> Case:
    headers = sign_request_rfc9421("POST", INBOX, BODY, KEY_ID, private, now=NOW)
    return Case(headers, KeyStore(public), path="/c/tea/inbox")


REJECTIONS: list[tuple[Callable[[str, str], Case], str]] = [
    (_no_signature, "the request is not signed"),
    (_body_altered, "the Digest header does not match the body"),
    (_date_two_hours_old, "the Date header is 7200 s from now; at most 3600 s allowed"),
    (_date_two_hours_ahead, "the Date header is 7200 s from now"),
    (_replayed_to_another_path, "the signature does not match the request"),
    (_replayed_to_another_host, "the request was signed for b.example, not c.example"),
    (_digest_not_covered, "the signature does not cover the Digest header"),
    (_no_digest_header, "the request has a body but no Digest or Content-Digest header"),
    (_unknown_key, f"unknown key {KEY_ID}"),
    (_unsupported_algorithm, "unsupported signature algorithm 'hmac-sha256'"),
    (_malformed_signature_header, "the Signature header is malformed"),
    (_signature_not_base64, "the signature is not valid base64"),
    (_key_id_not_a_url, "keyId is not an http(s) URL"),
    (_signed_header_missing, "the signed header host is missing from the request"),
    (_rfc9421_body_altered, "the Content-Digest header does not match the body"),
    (_rfc9421_content_digest_not_covered, "does not cover the Content-Digest header"),
    (_rfc9421_method_not_covered, "the signature does not cover @method"),
    (_rfc9421_query_not_covered, "the signature does not cover the query"),
    (_rfc9421_created_two_hours_old, "the signature's created time is 7200 s from now"),
    (_rfc9421_expired, "the signature has expired"),
    (_rfc9421_malformed_input, "Signature-Input header is not a valid structured field"),
    (_rfc9421_labels_differ, "Signature-Input and Signature have no label in common"),
    (_rfc9421_replayed_to_another_path, "the signature does not match the request"),
]


async def rejection_of(case: Case) -> SignatureError:
    with pytest.raises(SignatureError) as raised:
        await verify_request(
            case.method, case.path, case.headers, case.body, case.store, now=case.now, expected_host=case.expected_host
        )
    return raised.value


@pytest.mark.parametrize(("make_case", "reason"), REJECTIONS, ids=[make.__name__[1:] for make, _ in REJECTIONS])
async def test_rejected_with_reason(make_case: Callable[[str, str], Case], reason: str, keys: tuple[str, str]) -> None:
    error = await rejection_of(make_case(*keys))

    assert reason in error.reason
    assert str(error) == error.reason


# The same failure reached another way; every other rejection has a reason of its own.
SAME_FAILURE = {_date_two_hours_ahead, _rfc9421_replayed_to_another_path}


async def test_rejection_reasons_are_distinct(keys: tuple[str, str]) -> None:
    reasons = [(await rejection_of(make(*keys))).reason for make, _ in REJECTIONS if make not in SAME_FAILURE]

    assert len(set(reasons)) == len(reasons)


async def test_unknown_key_is_not_refetched(keys: tuple[str, str]) -> None:
    case = _unknown_key(*keys)

    with pytest.raises(SignatureError):
        await verify(case.headers, case.store)
    assert case.store.calls == [(KEY_ID, False)]


async def test_checks_fail_before_any_key_is_fetched(keys: tuple[str, str]) -> None:
    case = _body_altered(*keys)

    with pytest.raises(SignatureError):
        await verify(case.headers, case.store, body=case.body)
    assert case.store.calls == []


# --- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://B.Example/inbox", "b.example"),
        ("https://b.example:443/inbox", "b.example"),
        ("http://b.example:80", "b.example"),
        ("http://b.example:8080/x?y=1", "b.example:8080"),
        ("https://b.example:80/", "b.example:80"),
        ("https://[2001:DB8::1]:8443/inbox", "[2001:db8::1]:8443"),
    ],
)
def test_host_of(url: str, host: str) -> None:
    assert host_of(url) == host


@pytest.mark.parametrize("url", ["/inbox", "mailto:a@b.example", "https://", "https://b.example:x/"])
def test_host_of_rejects_non_http_urls(url: str) -> None:
    with pytest.raises(ValueError):
        host_of(url)


@pytest.mark.parametrize(
    ("key_id", "owner"),
    [
        ("https://a.example/users/ann#main-key", "https://a.example/users/ann"),
        ("https://a.example/c/tea", "https://a.example/c/tea"),
    ],
)
def test_key_owner(key_id: str, owner: str) -> None:
    assert key_owner(key_id) == owner
