"""A slow peer cannot hold up local writes: what an activity needs is fetched before its transaction opens."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.db import create_engine, create_sessionmaker
from server.jobs import wake
from server.models import InboxItem
from tests.support.server import free_port
from tests.support.wait import eventually

SLOW_SECONDS = 10.0


@dataclass
class SlowPeer:
    """A peer on loopback whose community document takes SLOW_SECONDS to answer; anything else is a quick 404."""

    port: int
    asked: threading.Event = field(default_factory=threading.Event)
    answered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def group(self) -> str:
        return f"{self.base_url}/c/slow"

    def serve(self) -> ThreadingHTTPServer:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                if f"{peer.base_url}{self.path}" != peer.group:
                    self.send_error(404)
                    return
                peer.asked.set()
                peer.release.wait(SLOW_SECONDS)
                body = json.dumps(
                    {"@context": "https://www.w3.org/ns/activitystreams", "id": peer.group, "type": "Group",
                     "preferredUsername": "slow", "name": "Slow"}
                ).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/activity+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                peer.answered.set()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture
def slow_peer() -> Iterator[SlowPeer]:
    peer = SlowPeer(free_port())
    server = peer.serve()
    try:
        yield peer
    finally:
        peer.release.set()
        server.shutdown()
        server.server_close()


def _store_activity(database_url: str, peer: SlowPeer) -> None:
    """A Create from the peer, as the inbox stores it after checking its signature; its community is new here."""
    host = peer.base_url.removeprefix("http://")
    author = f"{peer.base_url}/u/alice"
    guide = {
        "id": f"{peer.base_url}/guides/{uuid.uuid4()}", "type": "Article", "name": "Slow to arrive",
        "content": "<p>text</p>", "attributedTo": [author, peer.group], "audience": peer.group,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
    }  # fmt: skip
    payload = {"id": f"{peer.base_url}/activities/{uuid.uuid4()}", "type": "Create", "actor": author, "object": guide}

    async def store() -> None:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                session.add(InboxItem(activity_uri=payload["id"], signer_host=host, payload=payload))
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(store())


def test_a_peer_slow_to_answer_does_not_delay_a_local_write(settings, admin, tmp_path, slow_peer):
    # SQLite's single writer is where a transaction held across the fetch would block every local write;
    # PostgreSQL must keep the same promise.
    settings = replace(settings, data_dir=tmp_path, peers=(slow_peer.base_url,))
    with TestClient(app=create_app(settings, run_worker=True), base_url=settings.base_url) as client:
        slug = f"c-{uuid.uuid4().hex[:8]}"
        created = client.post("/api/v1/communities", json={"slug": slug, "name": "Quick"}, headers=admin.auth)
        assert created.status_code == 201, created.text
        _store_activity(settings.database_url, slow_peer)
        wake()
        eventually(slow_peer.asked.is_set, timeout=30, message="the worker never asked the peer for its community")

        started = time.monotonic()
        response = client.post(
            f"/api/v1/communities/{slug}/guides", json={"title": "Written meanwhile", "body_markdown": "Quick."},
            headers=admin.auth,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        assert response.status_code == 201, response.text
        # Written while the peer was still answering, well within the second the issue allows.
        assert not slow_peer.answered.is_set()
        assert elapsed < 1.0, f"a local write waited {elapsed:.1f} s on a slow peer"
