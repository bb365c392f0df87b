"""A peer instance on loopback that serves what a test or benchmark gives it and records every request.

    with FakePeer() as peer:
        person = peer.actor("/u/sam", "Person")           # served as ActivityPub, with the peer's public key
        body, headers = peer.signed(inbox_url, peer.activity("Create", article, person["id"]))

It answers WebFinger with its instance actor, serves an empty outbox, and takes anything posted (202), so a Kith
instance that lists it as a peer can discover and follow it. Every actor shares the peer's one key pair unless
given its own; documents can be served with any status, content type or headers, to play a peer that lies.
"""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from server.federation import signatures
from tests.support.server import LOOPBACK, free_port

AS_JSON = "application/activity+json"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
CONTEXT = ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"]


class _Server(http.server.ThreadingHTTPServer):
    # The standard backlog of 5 drops connections when workers deliver batches at once; a dropped one is retried
    # only after the delivery's backoff.
    request_queue_size = 128


@dataclass
class Served:
    body: bytes
    status: int = 200
    content_type: str = AS_JSON
    headers: dict[str, str] = field(default_factory=dict)


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakePeer:
    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.host = f"{LOOPBACK}:{self.port}"
        self.private_pem, self.public_pem = signatures.generate_keypair()
        self.served: dict[str, Served] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path), in the order they came
        self.posted: list[dict[str, Any]] = []  # the JSON bodies posted to it, in the order they came
        self.post_status = 202  # what it answers a POST: a test makes it refuse deliveries
        self._server: http.server.ThreadingHTTPServer | None = None
        self.instance_actor = self.actor("/actor", "Application", username=self.host)
        self.serve("/outbox", self._collection("/outbox", first=f"{self.base_url}/outbox?page=1"))
        self.serve("/outbox?page=1", self._collection("/outbox?page=1", page=True))
        webfinger = {"subject": f"acct:{self.host}@{self.host}",
                     "links": [{"rel": "self", "type": AS_JSON, "href": self.instance_actor["id"]}]}  # fmt: skip
        self.serve("/.well-known/webfinger", webfinger, content_type="application/jrd+json")

    # -- what it serves ---------------------------------------------------------------------------

    def serve(self, path: str, document: object, *, status: int = 200, content_type: str = AS_JSON, **headers: str):
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.served[path] = Served(body, status, content_type, headers)

    def actor(
        self, path: str, kind: str, *, username: str = "", public_pem: str | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """An actor document at `path`, served as ActivityPub; `overrides` replace or add its fields."""
        uri = f"{self.base_url}{path}"
        document = {
            "@context": CONTEXT, "id": uri, "type": kind, "preferredUsername": username or path.rsplit("/", 1)[-1],
            "name": (username or path.rsplit("/", 1)[-1]).title(), "url": uri, "inbox": f"{uri}/inbox",
            "outbox": f"{self.base_url}/outbox", "endpoints": {"sharedInbox": f"{self.base_url}/inbox"},
            "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": public_pem or self.public_pem},
            **overrides,
        }  # fmt: skip
        self.serve(path, document)
        return document

    def _collection(self, path: str, *, first: str = "", page: bool = False) -> dict[str, Any]:
        document = {"@context": CONTEXT, "id": f"{self.base_url}{path}"}
        if page:
            return document | {"type": "OrderedCollectionPage", "orderedItems": []}
        return document | {"type": "OrderedCollection", "totalItems": 0, "first": first}

    # -- what it sends ----------------------------------------------------------------------------

    def activity(self, verb: str, obj: object, actor: str) -> dict[str, Any]:
        """An activity with an id of this peer's own, as every sender mints them."""
        return {
            "@context": CONTEXT, "id": f"{self.base_url}/activities/{uuid.uuid4()}", "type": verb,
            "actor": actor, "object": obj, "to": [PUBLIC], "published": now(),
        }  # fmt: skip

    def article(self, community: str, author: dict[str, Any], title: str) -> dict[str, Any]:
        uri = f"{self.base_url}/guides/{uuid.uuid4()}"
        text = f"{title}: what the circle learned, written down."
        embedded_author = {key: author[key] for key in ("id", "type", "preferredUsername", "name")}
        return {
            "id": uri, "type": "Article", "name": title, "summary": "A short how-to.", "content": f"<p>{text}</p>",
            "source": {"content": text, "mediaType": "text/markdown"}, "mediaType": "text/html",
            "attributedTo": [embedded_author, community], "audience": community, "to": [PUBLIC], "url": uri,
            "license": "CC-BY-SA-4.0", "revision": 1, "published": now(), "updated": now(),
        }  # fmt: skip

    def signed(
        self, url: str, activity: dict[str, Any] | bytes, *, key_id: str | None = None, private_pem: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """(body, headers) of a POST to `url`, signed by default with the key of the activity's actor."""
        body = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
        key_id = key_id or f"{activity['actor']}#main-key"  # type: ignore[index]
        headers = signatures.sign_request(
            "POST", url, body, key_id, private_pem or self.private_pem, {"Content-Type": AS_JSON}
        )
        return body, headers

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakePeer:
        peer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server naming
                peer.requests.append(("GET", self.path))
                served = peer.served.get(self.path) or peer.served.get(self.path.split("?", 1)[0])
                served = served or Served(b'{"error": "not here"}', 404, "application/json")
                self.send_response(served.status)
                self.send_header("Content-Type", served.content_type)
                self.send_header("Content-Length", str(len(served.body)))
                for name, value in served.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(served.body)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                peer.requests.append(("POST", self.path))
                try:
                    peer.posted.append(json.loads(body))
                except ValueError:
                    peer.posted.append({})
                self.send_response(peer.post_status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = _Server((LOOPBACK, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakePeer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
