"""A peer that was down while a community moved catches up when it comes back: the Move is in the old instance's
outbox, and the server's first pull after its start applies it as if it had been delivered.

Fake peers play the old instance (A, which C follows and which serves the Move in its outbox) and the new home
(B); C is a real `kith serve`, stopped (KithServer.stop()) while the move happens, on SQLite and PostgreSQL.
The whole move between three real servers, C down during it, is in test_community_move_across.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import postgres
from tests.support.fake_peer import FakePeer
from tests.support.move_peers import announce_group, article, by_uri, group, publish, send, wait_for
from tests.support.server import KithServer
from tests.support.wait import eventually


@dataclass
class World:
    kith: KithServer
    old: FakePeer
    new: FakePeer
    guide: dict[str, Any]
    copy: dict[str, Any]


def _accept_follows(peer: FakePeer, kith: KithServer) -> None:
    """Answer C's Follow of A's instance actor as a Kith peer does, so that C pulls A's outbox."""
    follow = eventually(
        lambda: next((body for body in peer.posted if body.get("type") == "Follow"), None),
        timeout=30, message=f"{kith.host} never followed {peer.host}",
    )  # fmt: skip
    accept = peer.activity("Accept", follow, peer.instance_actor["id"])
    assert send(peer, kith, accept) == 202


def _outbox_with(peer: FakePeer, *activities: dict[str, Any]) -> None:
    page = {"id": f"{peer.base_url}/outbox?page=1", "type": "OrderedCollectionPage", "orderedItems": list(activities)}
    peer.serve("/outbox?page=1", page)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with FakePeer() as a, FakePeer() as b, postgres.database_for(request.param) as database_url:
        env = {"KITH_PEERS": f"{a.base_url},{b.base_url}"}
        with KithServer(database_url=database_url, env=env) as kith:
            _accept_follows(a, kith)
            old_group = group(a, "/c/circle")
            announce_group(a, kith, old_group)
            original = article(a, old_group["id"], a.actor("/u/sam", "Person"), "Mending nets")
            publish(a, kith, original)
            guide = wait_for(kith, "/guides", original["id"])
            new_group = group(b, "/c/circle", alsoKnownAs=[old_group["id"]])
            announce_group(b, kith, new_group)
            copied = article(b, new_group["id"], b.actor("/u/sam", "Person"), "Mending nets", formerUri=original["id"])
            publish(b, kith, copied)
            copy = wait_for(kith, "/guides", copied["id"])
            yield World(kith, a, b, guide, copy)


def test_a_peer_down_during_the_move_follows_it_from_the_outbox_when_it_is_back(world):
    world.kith.stop()
    old_group, new_group = f"{world.old.base_url}/c/circle", f"{world.new.base_url}/c/circle"
    group(world.old, "/c/circle", movedTo=new_group)
    move = world.old.activity("Move", old_group, old_group) | {"target": new_group}
    _outbox_with(world.old, move)
    world.kith.start()
    eventually(lambda: by_uri(world.kith, "/guides", world.guide["uri"]) is None, timeout=60,
               message="the restarted server never followed the move")  # fmt: skip
    folded = by_uri(world.kith, "/guides", world.copy["uri"])
    assert folded is not None and folded["id"] == world.guide["id"]
    assert folded["community"]["uri"] == new_group
    assert ("GET", "/outbox?page=1") in world.old.requests
