"""Mentorship requests against peers that lie, over real HTTP on loopback with real signatures: a real `kith serve`
on SQLite and PostgreSQL, and small peers (tests/support/fake_peer.py) that send what a test makes them send.

Each refusal is checked by the server saying it rejected the activity, and by nothing having changed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import postgres
from tests.support.fake_peer import FakePeer, now
from tests.support.server import KithServer
from tests.support.wait import eventually


@dataclass
class World:
    kith: KithServer
    honest: FakePeer  # a peer whose mentor offers a seat, and whose people ask for Kith's
    liar: FakePeer  # a configured peer that speaks for what is not its own
    stranger: FakePeer  # not a peer at all
    admin: str  # token
    asker: str  # token of a local person who asks for the honest peer's offer
    local_offer: dict[str, Any]
    mona: dict[str, Any]  # the honest peer's mentor

    @property
    def inbox(self) -> str:
        return f"{self.kith.base_url}/inbox"

    def api(self, path: str, token: str, method: str = "GET", body: Any = None) -> httpx.Response:
        return httpx.request(
            method, f"{self.kith.base_url}/api/v1{path}", json=body, timeout=10,
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip

    def send(self, peer: FakePeer, activity: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.inbox, **_request(peer.signed(self.inbox, activity)), timeout=10)

    def rejected(self, activity: dict[str, Any]) -> None:
        """Wait for the server to say it rejected `activity` for good."""
        eventually(lambda: f"rejected {activity['id']}" in self.kith.log(), timeout=30, message="not rejected")


def _request(signed: tuple[bytes, dict[str, str]]) -> dict[str, Any]:
    body, headers = signed
    return {"content": body, "headers": headers}


def _offer_document(peer: FakePeer, mentor: dict[str, Any], title: str) -> dict[str, Any]:
    community = f"{peer.base_url}/c/circle"
    uri = f"{peer.base_url}/mentorship/offers/{uuid.uuid4()}"
    return {
        "id": uri, "type": "MentorshipOffer", "name": title, "content": "<p>Clay.</p>",
        "source": {"content": "Clay.", "mediaType": "text/markdown"}, "topics": ["pottery"], "format": "group",
        "capacity": 3, "seatsTaken": 0, "status": "open", "attributedTo": [mentor["id"], community],
        "audience": community, "to": ["https://www.w3.org/ns/activitystreams#Public"], "url": uri,
        "published": now(), "updated": now(),
    }  # fmt: skip


def _agreement(peer: FakePeer, person: str, offer_uri: str, **overrides: Any) -> dict[str, Any]:
    return {
        "id": f"{peer.base_url}/mentorship/requests/{uuid.uuid4()}", "type": "Agreement", "attributedTo": person,
        "inReplyTo": offer_uri, "content": "<p>May I join?</p>", "published": now(), **overrides,
    }  # fmt: skip


def _private(activity: dict[str, Any], to: str) -> dict[str, Any]:
    return {**activity, "to": [to]}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with (
        FakePeer() as honest, FakePeer() as liar, FakePeer() as stranger,
        postgres.database_for(request.param) as database_url,
    ):  # fmt: skip
        peers = ",".join(peer.base_url for peer in (honest, liar))
        with KithServer(database_url=database_url, env={"KITH_PEERS": peers}) as kith:
            admin = kith.token()
            kith.create_user("asker")
            asker = kith.token("asker", "write")
            for peer in (honest, liar):
                eventually(lambda p=peer: ("POST", "/inbox") in p.requests, timeout=30, message="no follow sent")
            mona = honest.actor("/u/mona", "Person")
            group = honest.actor("/c/circle", "Group", name="Circle")
            inbox = f"{kith.base_url}/inbox"
            assert (
                httpx.post(
                    inbox, **_request(honest.signed(inbox, honest.activity("Create", group, group["id"])))
                ).status_code
                == 202
            )
            headers = {"Authorization": f"Bearer {admin}"}
            httpx.post(f"{kith.base_url}/api/v1/communities", json={"slug": "home", "name": "Home"}, headers=headers)
            local = httpx.post(
                f"{kith.base_url}/api/v1/communities/home/mentorship/offers", headers=headers,
                json={"title": "Kith's own", "description_markdown": "x", "topics": ["x"], "format": "group",
                      "capacity": 5},
            ).json()  # fmt: skip
            yield World(kith, honest, liar, stranger, admin, asker, local, mona)


def _remote_offer_id(world: World) -> str:
    """A new offer of the honest peer's mentor, once it has arrived."""
    title = f"Pottery {uuid.uuid4().hex[:8]}"
    created = world.honest.activity("Create", _offer_document(world.honest, world.mona, title), world.mona["id"])
    assert world.send(world.honest, created).status_code == 202

    def find() -> str | None:
        items = world.api("/mentorship/offers?origin=remote&limit=100", world.admin).json()["items"]
        return next((o["id"] for o in items if o["title"] == title), None)

    return eventually(find, timeout=30, message="the honest peer's offer never arrived")


def _asked(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    """A local person's request for a new offer of the honest peer, and the Offer activity the peer received."""
    offer_id = _remote_offer_id(world)
    request = world.api(f"/mentorship/offers/{offer_id}/requests", world.asker, "POST", {"message": "hello"}).json()

    def offered() -> dict[str, Any] | None:
        return next(
            (a for a in world.honest.posted if a.get("type") == "Offer" and a["object"]["id"] == request["uri"]), None
        )

    return request, eventually(offered, timeout=30, message="the Offer never reached the peer")


def _state(world: World, request: dict[str, Any]) -> dict[str, Any]:
    return world.api(f"/mentorship/requests/{request['id']}", world.asker).json()


def test_the_offer_reaches_the_mentor_only_and_an_honest_answer_counts(world):
    request, offer = _asked(world)
    assert offer["actor"] == f"{world.kith.base_url}/u/asker"
    assert offer["to"] == [world.mona["id"]] and "cc" not in offer
    assert offer["object"]["type"] == "Agreement" and offer["object"]["inReplyTo"].startswith(world.honest.base_url)
    answer = _private(world.honest.activity("TentativeAccept", offer["id"], world.mona["id"]), offer["actor"])
    assert world.send(world.honest, answer).status_code == 202
    eventually(lambda: _state(world, request)["state"] == "pending", timeout=30, message="the answer was not taken")


def test_an_accept_for_a_request_the_peer_does_not_own_changes_nothing(world):
    request, offer = _asked(world)
    impostor = world.liar.actor("/u/mona", "Person")
    forged = _private(world.liar.activity("Accept", offer["id"], impostor["id"]), offer["actor"])
    assert world.send(world.liar, forged).status_code == 202
    world.rejected(forged)
    assert _state(world, request)["state"] == "sending"


def test_an_offer_in_the_name_of_a_person_on_another_host_is_refused(world):
    liar_person = world.liar.actor("/u/lou", "Person")
    someone_else = f"{world.honest.base_url}/u/mona"
    agreement = _agreement(world.liar, someone_else, world.local_offer["uri"])
    forged = _private(world.liar.activity("Offer", agreement, liar_person["id"]), world.local_offer["mentor"]["uri"])
    assert world.send(world.liar, forged).status_code == 202
    world.rejected(forged)
    requests = world.api(f"/mentorship/offers/{world.local_offer['id']}/requests", world.admin).json()["items"]
    assert requests == []


def test_a_public_offer_is_refused(world):
    person = world.liar.actor("/u/loud", "Person")
    agreement = _agreement(world.liar, person["id"], world.local_offer["uri"])
    public = world.liar.activity(
        "Offer", agreement | {"to": ["https://www.w3.org/ns/activitystreams#Public"]}, person["id"]
    )
    assert world.send(world.liar, public).status_code == 202
    world.rejected(public)
    assert world.api(f"/mentorship/offers/{world.local_offer['id']}/requests", world.admin).json()["items"] == []


def test_a_note_to_a_thread_the_peer_is_not_part_of_is_refused(world):
    request, offer = _asked(world)
    answer = _private(world.honest.activity("TentativeAccept", offer["id"], world.mona["id"]), offer["actor"])
    world.send(world.honest, answer)
    eventually(lambda: _state(world, request)["state"] == "pending", timeout=30)
    outsider = world.liar.actor("/u/eve", "Person")
    note = {
        "id": f"{world.liar.base_url}/notes/{uuid.uuid4()}", "type": "Note", "attributedTo": outsider["id"],
        "inReplyTo": request["uri"], "content": "<p>let me in</p>", "to": [offer["actor"]], "published": now(),
    }  # fmt: skip
    forged = _private(world.liar.activity("Create", note, outsider["id"]), offer["actor"])
    assert world.send(world.liar, forged).status_code == 202
    world.rejected(forged)
    assert world.api(f"/mentorship/requests/{request['id']}/messages", world.asker).json()["items"] == []


def test_a_request_from_a_host_that_is_not_a_peer_is_refused_at_the_door(world):
    person = world.stranger.actor("/u/stray", "Person")
    agreement = _agreement(world.stranger, person["id"], world.local_offer["uri"])
    offer = _private(world.stranger.activity("Offer", agreement, person["id"]), world.local_offer["mentor"]["uri"])
    assert world.send(world.stranger, offer).status_code == 403
    assert world.api(f"/mentorship/offers/{world.local_offer['id']}/requests", world.admin).json()["items"] == []


def test_a_request_the_peer_refuses_for_good_shows_failed_and_can_be_sent_again(world):
    world.honest.post_status = 400
    try:
        request, first = _asked(world)
        failed = eventually(
            lambda: (s := _state(world, request))["state"] == "failed" and s, timeout=30, message="never failed"
        )
        assert world.honest.host in failed["reason"]
    finally:
        world.honest.post_status = 202
    again = world.api(f"/mentorship/requests/{request['id']}/retry", world.asker, "POST")
    assert again.status_code == 200 and again.json()["state"] == "sending"

    def offers() -> list[dict[str, Any]]:
        return [a for a in world.honest.posted if a.get("type") == "Offer" and a["object"]["id"] == request["uri"]]

    eventually(lambda: len(offers()) == 2, timeout=30, message="the request was not sent again")
    assert offers()[1]["id"] != first["id"]  # a new Offer of the same request


def test_an_offer_arriving_after_its_withdrawal_takes_no_seat(world):
    # The Offer and its Undo are retried on their own schedules: the Undo may well arrive first.
    person = world.honest.actor("/u/late", "Person")
    agreement = _agreement(world.honest, person["id"], world.local_offer["uri"])
    offer = _private(world.honest.activity("Offer", agreement, person["id"]), world.local_offer["mentor"]["uri"])
    undo = _private(
        world.honest.activity("Undo", {"id": offer["id"], "type": "Offer", "actor": person["id"],
                                       "object": agreement["id"]}, person["id"]),
        world.local_offer["mentor"]["uri"],
    )  # fmt: skip
    assert world.send(world.honest, undo).status_code == 202
    assert world.send(world.honest, offer).status_code == 202

    def answered() -> dict[str, Any] | None:
        return next((a for a in world.honest.posted if a.get("type") == "Reject" and a["object"] == offer["id"]), None)

    reject = eventually(answered, timeout=30, message="the late Offer was not answered")
    assert reject["status"] == "refused" and "withdrawn" in reject["summary"]
    assert world.api(f"/mentorship/offers/{world.local_offer['id']}/requests", world.admin).json()["items"] == []


def test_an_offer_for_another_instances_offer_is_refused_without_speaking_for_its_mentor(world):
    copy_id = _remote_offer_id(world)
    copy = world.api(f"/mentorship/offers/{copy_id}", world.admin).json()
    person = world.liar.actor("/u/sly", "Person")
    agreement = _agreement(world.liar, person["id"], copy["uri"])
    forged = _private(world.liar.activity("Offer", agreement, person["id"]), world.mona["id"])
    before = len(world.liar.posted)
    assert world.send(world.liar, forged).status_code == 202
    world.rejected(forged)
    assert [a for a in world.liar.posted[before:] if a.get("type") == "Reject"] == []
    assert world.api(f"/mentorship/offers/{copy_id}/requests", world.admin).json()["items"] == []
