"""Peers that move a community, played by fake peers (fake_peer.py) against a real Kith server.

The old instance's Group and entries, the new home's Group (listing the old one in `alsoKnownAs`) and its copies
with `formerUri`, and the `Move`: each sent signed to the server's inbox, as a Kith peer sends them.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.fake_peer import PUBLIC, FakePeer, now
from tests.support.server import KithServer
from tests.support.wait import eventually


def send(peer: FakePeer, kith: KithServer, activity: dict[str, Any], *, key_id: str | None = None) -> int:
    inbox = f"{kith.base_url}/inbox"
    body, headers = peer.signed(inbox, activity, key_id=key_id)
    return httpx.post(inbox, content=body, headers=headers, timeout=30).status_code


def group(peer: FakePeer, path: str, **terms: Any) -> dict[str, Any]:
    """A Group at `path` (served, with the peer's key), with `terms` such as alsoKnownAs or movedTo."""
    return peer.actor(path, "Group", name=path.rsplit("/", 1)[-1].title(), followers=f"{peer.base_url}{path}/followers",
                      **terms)  # fmt: skip


def announce_group(peer: FakePeer, kith: KithServer, document: dict[str, Any]) -> None:
    assert send(peer, kith, peer.activity("Update", document, document["id"])) == 202


def article(peer: FakePeer, community: str, author: dict[str, Any], title: str, **terms: Any) -> dict[str, Any]:
    """A guide of `community`, served at its id too; `terms` such as formerUri or derivedFrom."""
    document = peer.article(community, author, title) | terms
    peer.serve(document["id"].removeprefix(peer.base_url), document)
    return document


def offer(peer: FakePeer, community: str, mentor: dict[str, Any], title: str, **terms: Any) -> dict[str, Any]:
    uri = f"{peer.base_url}/mentorship/offers/{uuid.uuid4()}"
    embedded = {key: mentor[key] for key in ("id", "type", "preferredUsername", "name")}
    return {
        "id": uri, "type": "MentorshipOffer", "name": title, "content": f"<p>{title}</p>",
        "source": {"content": title, "mediaType": "text/markdown"}, "attributedTo": [embedded, community],
        "audience": community, "to": [PUBLIC], "url": uri, "topics": ["moving"], "languages": ["en"],
        "format": "one_to_one", "capacity": 2, "seatsTaken": 0, "status": "open", "published": now(),
        "updated": now(), **terms,
    }  # fmt: skip


def publish(peer: FakePeer, kith: KithServer, document: dict[str, Any], verb: str = "Create") -> None:
    author = document["attributedTo"][0]["id"]
    assert send(peer, kith, peer.activity(verb, document, author)) == 202


def move(old: FakePeer, kith: KithServer, old_group: str, target: str, **overrides: Any) -> dict[str, Any]:
    """Send the Move of `old_group` to `target` as the old instance does (signed by the Group's key)."""
    activity = old.activity("Move", old_group, old_group) | {"target": target, "cc": [f"{old_group}/followers"]}
    activity |= overrides
    assert send(old, kith, activity) == 202
    return activity


def entries(kith: KithServer, path: str, **params: Any) -> list[dict[str, Any]]:
    response = httpx.get(f"{kith.base_url}/api/v1{path}", params={"limit": 100, **params}, timeout=10)
    response.raise_for_status()
    return list(response.json()["items"])


def by_uri(kith: KithServer, path: str, uri: str) -> dict[str, Any] | None:
    return next((entry for entry in entries(kith, path) if entry["uri"] == uri), None)


def wait_for(kith: KithServer, path: str, uri: str, timeout: float = 30) -> dict[str, Any]:
    return eventually(lambda: by_uri(kith, path, uri), timeout=timeout, message=f"{uri} never reached {kith.host}")
