"""Cost of the inbox's signature check against the RSA verify at its core. A benchmark, not a test.

Every POST to an inbox runs `signatures.verify_request`: parse the Signature header, check coverage,
Host, Date and Digest (SHA-256 of the body), fetch the key (here from a cache, as for a known peer)
and verify RSASSA-PKCS1-v1_5 SHA-256. This measures how many of those the process does per second
on a realistic signed POST (a ~2 KB Create(Article), draft-cavage, as Kith and Mastodon send it),
and divides by how many bare `cryptography` verifies of the same signature over the same signature
base it does in the same run. The ratio is the share of the inbox check that is the unavoidable
RSA work; target >= 0.5, i.e. everything around the verify costs no more than the verify itself.

Rates are per second of this process's CPU time (time.process_time), not wall time, so other
load on the machine does not count against either side; rounds alternate between the two loops
and the best round of each counts. Fixed iteration counts, no network, no database.

    .venv/bin/python bench/signatures.py            # 7 rounds of 3,000 verifications each way
    .venv/bin/python bench/signatures.py --quick    # 3 rounds of 500, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import cryptography
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make the project's `server` importable

from server.federation.signatures import generate_keypair, sign_request, verify_request  # noqa: E402

TARGET = 0.5
INSTANCE = "https://kith.example"
PEER = "https://peer.example"
KEY_ID = f"{PEER}/actor#main-key"


def create_article() -> bytes:
    """A Create(Article) shaped as server/federation/mapping.py writes it, about 2 KB of JSON."""
    community = f"{PEER}/c/gardening"
    guide = f"{PEER}/guides/{uuid.uuid4()}"
    markdown = (
        "## Why bokashi\n\nIt ferments kitchen scraps in a sealed bucket, so it works on a balcony.\n\n"
        "1. Layer scraps and bran.\n2. Press out the air.\n3. Drain the liquid every few days.\n\n"
        "After two weeks, bury the contents or add them to a worm bin. *Never* add it to a pond."
    )
    html = (
        "<h2>Why bokashi</h2><p>It ferments kitchen scraps in a sealed bucket, so it works on a balcony.</p>"
        "<ol><li>Layer scraps and bran.</li><li>Press out the air.</li><li>Drain the liquid every few days."
        "</li></ol><p>After two weeks, bury the contents or add them to a worm bin. <em>Never</em> add it "
        "to a pond.</p>"
    )
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    article = {
        "id": guide, "type": "Article", "name": "Composting in small spaces",
        "summary": "A bokashi bucket turns a balcony into a compost heap.", "content": html,
        "mediaType": "text/html", "source": {"content": markdown, "mediaType": "text/markdown"},
        "tag": [{"type": "Hashtag", "name": f"#{t}"} for t in ("compost", "balcony", "bokashi")],
        "attributedTo": [f"{PEER}/u/alice", community], "audience": community,
        "to": ["https://www.w3.org/ns/activitystreams#Public"], "cc": [f"{community}/followers"],
        "url": guide, "license": "CC-BY-SA-4.0", "slug": "composting-in-small-spaces", "revision": 3,
        "derivedFrom": None, "published": now, "updated": now,
    }  # fmt: skip
    activity = {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1", f"{PEER}/ns"],
        "id": f"{PEER}/activities/{uuid.uuid4()}", "type": "Create", "actor": f"{PEER}/u/alice",
        "object": article, "to": article["to"], "cc": article["cc"], "audience": community, "published": now,
    }  # fmt: skip
    return json.dumps(activity).encode()


def signature_base(headers: dict[str, str], path: str) -> tuple[bytes, bytes]:
    """(signature base, signature) rebuilt from the headers as draft-cavage defines them.

    Written out here rather than taken from the module under test, so that the baseline verifies
    exactly the bytes a peer signed and nothing of Kith's code is on its side of the ratio."""
    # keyId="…",algorithm="…",headers="…",signature="…": no value here holds a comma or a quote.
    pairs = (part.split("=", 1) for part in headers["Signature"].split(","))
    params = {key: value.strip('"') for key, value in pairs}
    lowered = {name.lower(): value for name, value in headers.items()}
    lines = []
    for name in params["headers"].split():
        value = f"post {path}" if name == "(request-target)" else lowered[name]
        lines.append(f"{name}: {value}")
    return "\n".join(lines).encode(), base64.b64decode(params["signature"])


def rate(loop: Callable[[int], None], iterations: int) -> float:
    """Iterations per CPU second of this process."""
    started = time.process_time()
    loop(iterations)
    return iterations / (time.process_time() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 500 verifications each way")
    args = parser.parse_args(argv)
    rounds, iterations = (3, 500) if args.quick else (7, 3000)

    private_pem, public_pem = generate_keypair()
    body = create_article()
    headers = sign_request(
        "POST", f"{INSTANCE}/inbox", body, KEY_ID, private_pem, {"Content-Type": "application/activity+json"}
    )
    message, signature = signature_base(headers, "/inbox")
    public_key = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())  # the baseline checks real bytes

    async def cached_key(key_id: str, refresh: bool) -> str | None:
        # A known peer: its key is in the cache, so the getter costs what a dict lookup costs.
        return public_pem if key_id == KEY_ID else None

    loop = asyncio.new_event_loop()

    async def verify_many(n: int) -> None:
        for _ in range(n):
            await verify_request(
                "POST", "/inbox", headers, body, cached_key, url_scheme="https", expected_host="kith.example"
            )

    def inbox_path(n: int) -> None:
        loop.run_until_complete(verify_many(n))

    def raw_verify(n: int) -> None:
        pkcs1v15, sha256 = padding.PKCS1v15(), hashes.SHA256()
        for _ in range(n):
            public_key.verify(signature, message, pkcs1v15, sha256)

    try:
        inbox_path(50)  # warm the key cache and the event loop before anything is timed
        raw_verify(50)
        inbox_rates, raw_rates = [], []
        for _ in range(rounds):
            inbox_rates.append(rate(inbox_path, iterations))
            raw_rates.append(rate(raw_verify, iterations))
    finally:
        loop.close()

    inbox, raw = max(inbox_rates), max(raw_rates)
    ratio = inbox / raw
    print(f"signed POST: {len(body)} bytes of Create(Article), draft-cavage rsa-sha256, RSA-2048")
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, cryptography {cryptography.__version__}"
    )
    print(f"         {ssl.OPENSSL_VERSION} (Python's ssl module; cryptography bundles its own)")
    print(f"rounds: {rounds} x {iterations} each way, best round counts, per CPU second")
    print(f"  verify_request, cached key : {inbox:8.0f}/s  ({1e6 / inbox:5.0f} us each)")
    print(f"  raw RSA PKCS1v15 verify    : {raw:8.0f}/s  ({1e6 / raw:5.0f} us each)")
    verdict = "ok" if ratio >= TARGET else "MISSED"
    print(f"  ratio inbox / raw          : {ratio:8.3f}   target >= {TARGET:.2f}: {verdict}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
