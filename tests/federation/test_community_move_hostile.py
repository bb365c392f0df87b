"""Moves that must not be followed, sent to a real Kith server (C) by fake peers over real HTTP with real
signatures, on SQLite and PostgreSQL. Each is refused with nothing changed: A's guide stays A's, and B's copy of
it (with `formerUri`) stays a second entry. The honest Move at the end shows the refusals mean something.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import postgres
from tests.support.fake_peer import FakePeer
from tests.support.move_peers import announce_group, article, by_uri, group, move, publish, send, wait_for
from tests.support.server import KithServer
from tests.support.wait import eventually


@dataclass
class World:
    kith: KithServer
    old: FakePeer  # A: the Group's instance
    new: FakePeer  # B: where it claims to go
    other: FakePeer  # X: another peer, which must not move A's Group
    stranger: FakePeer  # not a peer of C
    guide: dict[str, Any]  # A's guide as C holds it
    copy: dict[str, Any]  # B's copy of it, with formerUri
    fences: int = 0

    @property
    def old_group(self) -> str:
        return f"{self.old.base_url}/c/circle"

    def unchanged(self) -> None:
        """A's guide is still A's, and B's copy still a second entry."""
        held = by_uri(self.kith, "/guides", self.guide["uri"])
        assert held is not None and held["id"] == self.guide["id"]
        assert held["community"]["uri"] == self.old_group
        assert by_uri(self.kith, "/guides", self.copy["uri"]) is not None

    def fence(self) -> None:
        """A guide sent after the refused Move, waited for: C has handled what came before it."""
        self.fences += 1
        sam = self.old.actor("/u/sam", "Person")
        document = article(self.old, self.old_group, sam, f"Fence {self.fences}")
        publish(self.old, self.kith, document)
        wait_for(self.kith, "/guides", document["id"])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with (
        FakePeer() as a, FakePeer() as b, FakePeer() as x, FakePeer() as stranger,
        postgres.database_for(request.param) as database_url,
    ):  # fmt: skip
        env = {"KITH_PEERS": ",".join(peer.base_url for peer in (a, b, x))}
        with KithServer(database_url=database_url, env=env) as kith:
            old_group = group(a, "/c/circle")
            announce_group(a, kith, old_group)
            original = article(a, old_group["id"], a.actor("/u/sam", "Person"), "Seed saving")
            publish(a, kith, original)
            guide = wait_for(kith, "/guides", original["id"])
            # B does not claim A's Group (yet), but sends a copy naming A's guide.
            new_group = group(b, "/c/circle")
            announce_group(b, kith, new_group)
            sam_b = b.actor("/u/sam", "Person")
            copied = article(b, new_group["id"], sam_b, "Seed saving", formerUri=original["id"])
            publish(b, kith, copied)
            copy = wait_for(kith, "/guides", copied["id"])
            group(a, "/c/circle", movedTo=new_group["id"])
            yield World(kith, a, b, x, stranger, guide, copy)


def test_a_move_to_a_target_that_does_not_list_the_group_changes_nothing(world):
    move(world.old, world.kith, world.old_group, f"{world.new.base_url}/c/circle")
    world.fence()
    world.unchanged()
    assert "does not list it in alsoKnownAs" in world.kith.log()


def test_a_move_signed_by_another_peer_for_a_group_on_another_host_is_refused_at_the_inbox(world):
    group(world.other, "/c/circle")
    target = f"{world.new.base_url}/c/circle"
    forged = world.other.activity("Move", world.old_group, world.old_group) | {"target": target}
    # Signed with X's key, as X's own Group: the actor is not the key's owner.
    assert send(world.other, world.kith, forged, key_id=f"{world.other.base_url}/c/circle#main-key") == 403
    # The activity claims A's id but X signed it.
    forged["id"] = f"{world.old.base_url}/activities/forged"
    assert send(world.other, world.kith, forged, key_id=f"{world.other.base_url}/actor#main-key") == 403
    world.fence()
    world.unchanged()


def test_a_move_whose_actor_is_not_the_group_changes_nothing(world):
    target = f"{world.new.base_url}/c/circle"
    sam = f"{world.old.base_url}/u/sam"
    move(world.old, world.kith, world.old_group, target, actor=sam)
    world.fence()
    world.unchanged()
    assert "the Move's actor is not the Group it moves" in world.kith.log()


def test_a_peer_cannot_move_another_peers_group_even_as_its_own_actor(world):
    x_group = group(world.other, "/c/circle")
    target = f"{world.new.base_url}/c/circle"
    activity = world.other.activity("Move", world.old_group, x_group["id"]) | {"target": target}
    assert send(world.other, world.kith, activity) == 202
    world.fence()
    world.unchanged()


def test_a_move_to_an_instance_that_is_not_a_peer_changes_nothing(world):
    elsewhere = group(world.stranger, "/c/circle", alsoKnownAs=[world.old_group])
    group(world.old, "/c/circle", movedTo=elsewhere["id"])
    try:
        move(world.old, world.kith, world.old_group, elsewhere["id"])
        world.fence()
    finally:
        group(world.old, "/c/circle", movedTo=f"{world.new.base_url}/c/circle")
    world.unchanged()
    assert "is not on a configured peer" in world.kith.log()
    assert ("GET", "/c/circle") not in world.stranger.requests


def test_a_move_the_old_group_does_not_confirm_changes_nothing(world):
    group(world.new, "/c/circle", alsoKnownAs=[world.old_group])
    group(world.old, "/c/circle")  # no movedTo: the Move is not the Group's word
    try:
        move(world.old, world.kith, world.old_group, f"{world.new.base_url}/c/circle")
        world.fence()
    finally:
        group(world.old, "/c/circle", movedTo=f"{world.new.base_url}/c/circle")
        group(world.new, "/c/circle")
    world.unchanged()
    assert "the Group does not say it moved to" in world.kith.log()


def test_a_move_of_a_community_not_held_here_is_ignored(world):
    unknown = group(world.old, "/c/unknown", movedTo=f"{world.new.base_url}/c/circle")
    move(world.old, world.kith, unknown["id"], f"{world.new.base_url}/c/circle")
    world.fence()
    world.unchanged()
    assert f"ignored the move of {unknown['id']}: not a community held here" in world.kith.log()


def test_a_group_whose_moved_to_does_not_read_as_a_url_stalls_nothing(world):
    # Sent by reference, so C fetches the Group and looks where it says it moved before parsing it.
    group(world.old, "/c/circle", movedTo=f"{world.new.base_url.rsplit(':', 1)[0]}:x/c/circle")
    try:
        assert send(world.old, world.kith, world.old.activity("Update", world.old_group, world.old_group)) == 202
        world.fence()  # the fence is applied: the inbox went on past the Update
    finally:
        group(world.old, "/c/circle", movedTo=f"{world.new.base_url}/c/circle")
    world.unchanged()


def test_a_move_onto_a_group_that_moved_on_changes_nothing(world):
    # B claims A's Group but has itself moved back to it: following would leave both copies moved.
    group(world.new, "/c/circle", alsoKnownAs=[world.old_group], movedTo=world.old_group)
    try:
        move(world.old, world.kith, world.old_group, f"{world.new.base_url}/c/circle")
        world.fence()
    finally:
        group(world.new, "/c/circle")
    world.unchanged()
    assert "has moved on itself" in world.kith.log()


def test_a_move_onto_itself_changes_nothing(world):
    group(world.old, "/c/circle", movedTo=world.old_group, alsoKnownAs=[world.old_group])
    try:
        move(world.old, world.kith, world.old_group, world.old_group)
        world.fence()
    finally:
        group(world.old, "/c/circle", movedTo=f"{world.new.base_url}/c/circle")
    world.unchanged()
    assert "the Move's target is the Group it moves" in world.kith.log()


def test_a_move_to_a_group_that_is_gone_is_refused_not_retried(world):
    gone = f"{world.new.base_url}/c/gone"
    world.new.serve("/c/gone", {"error": "gone"}, status=410)
    group(world.old, "/c/circle", movedTo=gone)
    try:
        move(world.old, world.kith, world.old_group, gone)
        world.fence()
    finally:
        group(world.old, "/c/circle", movedTo=f"{world.new.base_url}/c/circle")
    world.unchanged()
    assert f"{gone} is gone (410)" in world.kith.log()


def test_the_honest_move_is_followed(world):
    # The control, last: B now claims A's Group, and A's Group says it moved there.
    group(world.new, "/c/circle", alsoKnownAs=[world.old_group])
    move(world.old, world.kith, world.old_group, f"{world.new.base_url}/c/circle")
    eventually(lambda: by_uri(world.kith, "/guides", world.guide["uri"]) is None, timeout=30,
               message="the honest move was not followed")  # fmt: skip
    folded = by_uri(world.kith, "/guides", world.copy["uri"])
    assert folded is not None and folded["id"] == world.guide["id"]
