"""Mentorship across two real Kith servers on loopback: a person on B asks for a seat on A's offer, the mentor on A
answers, they write to each other, and each side sees the same state; the exchange stays private throughout."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.federation.test_two_instances import _databases
from tests.support.server import KithServer, free_port
from tests.support.wait import eventually

AS2 = "application/activity+json"


@dataclass
class Person:
    server: KithServer
    username: str
    token: str

    @property
    def api(self) -> str:
        return f"{self.server.base_url}/api/v1"

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.api}{path}", params=params, headers=self._auth, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.api}{path}", json=body, headers=self._auth, timeout=10)

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Pair:
    a: KithServer
    b: KithServer
    a_admin: Person
    mentor: Person  # on A
    b_admin: Person

    def person(self, server: KithServer, username: str) -> Person:
        server.create_user(username)
        return Person(server, username, server.token(username, "write"))

    def offer(self, title: str, capacity: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
        """An offer made by the mentor on A, and B's copy of it once it has arrived."""
        body = {
            "title": title,
            "description_markdown": "Pairing.",
            "topics": ["julia"],
            "format": "group",
            "capacity": capacity,
        }
        created = self.mentor.post("/communities/mentors/mentorship/offers", body)
        assert created.status_code == 201, created.text
        offer = created.json()
        copy = eventually(lambda: _offer_on(self.b_admin, offer["uri"]), timeout=30, message="offer did not reach B")
        return offer, copy


def _offer_on(person: Person, uri: str) -> dict[str, Any] | None:
    items = person.get("/mentorship/offers", origin="remote", limit=100)["items"]
    return next((o for o in items if o["uri"] == uri), None)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    with _databases(request.param) as (a_db, b_db):
        a_port, b_port = free_port(), free_port()
        a = KithServer(database_url=a_db, port=a_port, env={"KITH_PEERS": f"http://127.0.0.1:{b_port}"})
        b = KithServer(database_url=b_db, port=b_port, env={"KITH_PEERS": f"http://127.0.0.1:{a_port}"})
        try:
            a.start()
            b.start()
            a_admin, b_admin = Person(a, "admin", a.token()), Person(b, "admin", b.token())
            assert a_admin.post("/communities", {"slug": "mentors", "name": "Mentors"}).status_code == 201
            a.create_user("mia")
            assert a_admin.post("/communities/mentors/members", {"username": "mia"}).status_code in (200, 201)
            pair = Pair(a, b, a_admin, Person(a, "mia", a.token("mia", "write")), b_admin)
            eventually(
                lambda: all(p["state"] == "following" for p in (*a_admin.get("/federation/peers"),
                                                                 *b_admin.get("/federation/peers"))),
                timeout=30, message="peering did not complete",
            )  # fmt: skip
            yield pair
        finally:
            b.close()
            a.close()


def _state(person: Person, request_id: str) -> str:
    return person.get(f"/mentorship/requests/{request_id}")["state"]


def _unread(person: Person) -> list[str]:
    """The kinds of a person's unread notifications, oldest first."""
    return [n["kind"] for n in reversed(person.get("/me/notifications", unread="true")["items"])]


def _on_a(pair: Pair, offer_id: str, requester: str) -> dict[str, Any] | None:
    items = pair.mentor.get(f"/mentorship/offers/{offer_id}/requests")["items"]
    return next((r for r in items if r["requester"]["username"] == requester), None)


def test_ask_answer_talk_and_withdraw_across_instances(pair):
    offer, copy = pair.offer("Julia for newcomers")
    # B's search leads to B's page of the offer, where B's people ask for a seat.
    eventually(
        lambda: f'href="/mentorship/offers/{copy["id"]}"' in httpx.get(f"{pair.b.base_url}/search?q=newcomers").text,
        timeout=30, message="B's search does not lead to B's page of the offer",
    )  # fmt: skip
    ben = pair.person(pair.b, "ben")
    asked = ben.post(f"/mentorship/offers/{copy['id']}/requests", {"message": "I would love to learn Julia."})
    assert asked.status_code == 201, asked.text
    request = asked.json()
    assert request["state"] == "sending" and request["local"] is True

    # A has it, from B's person, in the mentor's list beside local ones; B hears it arrived.
    on_a = eventually(lambda: _on_a(pair, offer["id"], "ben"), timeout=30, message="the request did not reach A")
    assert on_a["requester"]["instance"] == pair.b.host and on_a["local"] is False
    assert on_a["uri"] == request["uri"] and on_a["message"] == "I would love to learn Julia."
    eventually(lambda: _state(ben, request["id"]) == "pending", timeout=30, message="B did not hear A got it")
    # Each side is told on its own instance: the mentor of the request, then the requester of the answer.
    assert _unread(pair.mentor)[-1:] == ["request"] and _unread(ben) == []

    accepted = pair.mentor.post(f"/mentorship/requests/{on_a['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    eventually(lambda: _state(ben, request["id"]) == "accepted", timeout=30, message="B did not hear the answer")
    assert _unread(ben) == ["accepted"]
    eventually(lambda: _offer_on(ben, offer["uri"])["seats_taken"] == 1, timeout=30, message="seats did not move")

    # A message each way, each arriving on the other side.
    sent = ben.post(f"/mentorship/requests/{request['id']}/messages", {"body_markdown": "Thank you! *When* shall we?"})
    assert sent.status_code == 201, sent.text
    arrived = eventually(
        lambda: pair.mentor.get(f"/mentorship/requests/{on_a['id']}/messages")["items"], timeout=30,
        message="B's message did not reach A",
    )  # fmt: skip
    assert arrived[0]["body_html"] == "<p>Thank you! <em>When</em> shall we?</p>\n"
    assert arrived[0]["author"]["instance"] == pair.b.host
    reply = pair.mentor.post(f"/mentorship/requests/{on_a['id']}/messages", {"body_markdown": "Tuesday at 10."})
    assert reply.status_code == 201, reply.text
    eventually(
        lambda: len(ben.get(f"/mentorship/requests/{request['id']}/messages")["items"]) == 2, timeout=30,
        message="A's reply did not reach B",
    )  # fmt: skip
    thread = ben.get(f"/mentorship/requests/{request['id']}/messages")["items"]
    assert [m["body_markdown"] for m in thread] == ["Tuesday at 10.", "Thank you! *When* shall we?"]
    assert _unread(ben) == ["accepted", "message"] and _unread(pair.mentor)[-2:] == ["request", "message"]
    assert ben.post("/me/notifications/read", {"all": True}).json() == {"unread": 0}

    # Withdrawing on B frees the seat on A, and B's copy of the offer hears it.
    assert ben.post(f"/mentorship/requests/{request['id']}/withdraw").status_code == 200
    eventually(lambda: _on_a(pair, offer["id"], "ben")["state"] == "withdrawn", timeout=30, message="A kept it")
    assert pair.mentor.get(f"/mentorship/offers/{offer['id']}")["seats_taken"] == 0
    eventually(lambda: _offer_on(ben, offer["uri"])["seats_taken"] == 0, timeout=30, message="B kept the seat")


def test_the_request_and_its_thread_stay_private(pair):
    offer, copy = pair.offer("Private by default")
    cleo = pair.person(pair.b, "cleo")
    request = cleo.post(f"/mentorship/offers/{copy['id']}/requests", {"message": "zanzibarquest"}).json()
    on_a = eventually(lambda: _on_a(pair, offer["id"], "cleo"), timeout=30, message="the request did not reach A")
    eventually(lambda: _state(cleo, request["id"]) == "pending", timeout=30)
    assert (
        cleo.post(f"/mentorship/requests/{request['id']}/messages", {"body_markdown": "quokkaword"}).status_code == 201
    )
    eventually(lambda: pair.mentor.get(f"/mentorship/requests/{on_a['id']}/messages")["items"], timeout=30)

    for server in (pair.a, pair.b):
        # Never in an outbox collection, public or paged.
        outbox = httpx.get(f"{server.base_url}/outbox", params={"page": "true"}, headers={"Accept": AS2}).text
        assert request["uri"] not in outbox and "zanzibarquest" not in outbox and "quokkaword" not in outbox
        # Never in search, whoever asks.
        for word in ("zanzibarquest", "quokkaword"):
            found = httpx.get(f"{server.base_url}/api/v1/search", params={"q": word}).json()
            assert found["total"] == 0
        # Dereferenced anonymously, the request is not there.
        for accept in (AS2, "text/html"):
            anonymous = httpx.get(request["uri"], headers={"Accept": accept}, follow_redirects=True)
            assert anonymous.status_code == 404 or "zanzibarquest" not in anonymous.text
    assert httpx.get(request["uri"], headers={"Accept": AS2}).status_code == 404
    # Another person of either instance cannot read it or its thread.
    for stranger in (pair.person(pair.a, "snoop"), pair.person(pair.b, "peek")):
        request_id = on_a["id"] if stranger.server is pair.a else request["id"]
        for path in (f"/mentorship/requests/{request_id}", f"/mentorship/requests/{request_id}/messages"):
            assert httpx.get(f"{stranger.api}{path}", headers=stranger._auth).status_code == 404
    # The offer's public page and API say nothing of it.
    page = httpx.get(f"{pair.a.base_url}/mentorship/offers/{offer['id']}").text
    assert "zanzibarquest" not in page and "cleo" not in page


def test_the_last_seat_goes_to_one_and_the_others_hear_why(pair):
    offer, copy = pair.offer("One seat only", capacity=1)
    dana, eli = pair.person(pair.b, "dana"), pair.person(pair.b, "eli")
    fay = pair.person(pair.a, "fay")
    asked = {
        "dana": dana.post(f"/mentorship/offers/{copy['id']}/requests", {}).json(),
        "eli": eli.post(f"/mentorship/offers/{copy['id']}/requests", {}).json(),
        "fay": fay.post(f"/mentorship/offers/{offer['id']}/requests", {}).json(),
    }
    on_a = {
        name: eventually(lambda n=name: _on_a(pair, offer["id"], n), timeout=30, message=f"{name} did not arrive")
        for name in asked
    }
    # The mentor accepts all three at once: exactly one takes the seat.
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda r: pair.mentor.post(f"/mentorship/requests/{r['id']}/accept"), on_a.values()))
    assert sorted(a.status_code for a in answers) == [200, 409, 409]
    states = {name: _on_a(pair, offer["id"], name)["state"] for name in asked}
    assert sorted(states.values()) == ["accepted", "refused", "refused"]
    assert pair.mentor.get(f"/mentorship/offers/{offer['id']}")["seats_taken"] == 1
    # Each person on B ends where A put them, and a refused one is told why.
    for name, person in (("dana", dana), ("eli", eli)):
        eventually(lambda p=person, n=name: _state(p, asked[n]["id"]) == states[n], timeout=30)
        if states[name] == "refused":
            assert (
                person.get(f"/mentorship/requests/{asked[name]['id']}")["reason"]
                == "Every seat of this offer is taken."
            )


def test_accepting_one_request_twice_at_once_takes_one_seat(pair):
    offer, _ = pair.offer("Two seats", capacity=2)
    jo = pair.person(pair.a, "jo")
    request = jo.post(f"/mentorship/offers/{offer['id']}/requests", {}).json()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: pair.mentor.post(f"/mentorship/requests/{request['id']}/accept"), "ab"))
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert pair.mentor.get(f"/mentorship/offers/{offer['id']}")["seats_taken"] == 1
    assert jo.post(f"/mentorship/requests/{request['id']}/withdraw").status_code == 200
    assert pair.mentor.get(f"/mentorship/offers/{offer['id']}")["seats_taken"] == 0


def test_a_request_to_a_full_offer_comes_back_refused_with_the_reason(pair):
    offer, copy = pair.offer("Already taken", capacity=1)
    gus = pair.person(pair.a, "gus")
    taken = gus.post(f"/mentorship/offers/{offer['id']}/requests", {}).json()
    assert pair.mentor.post(f"/mentorship/requests/{taken['id']}/accept").status_code == 200
    hana = pair.person(pair.b, "hana")
    # B's copy may not have heard yet that the seat went: A decides, and says why.
    request = hana.post(f"/mentorship/offers/{copy['id']}/requests", {}).json()
    eventually(lambda: _state(hana, request["id"]) == "refused", timeout=30, message="no refusal came back")
    assert hana.get(f"/mentorship/requests/{request['id']}")["reason"] == "This offer is full."
    assert _on_a(pair, offer["id"], "hana") is None


def test_nothing_is_lost_while_the_offers_instance_is_down(pair):
    offer, copy = pair.offer("Patience")
    ivy = pair.person(pair.b, "ivy")
    pair.a.stop()
    try:
        request = ivy.post(f"/mentorship/offers/{copy['id']}/requests", {"message": "whenever you are back"}).json()
        assert request["state"] == "sending"
    finally:
        pair.a.start()
    # B sends it again on its own, on the delivery queue's first retry.
    on_a = eventually(lambda: _on_a(pair, offer["id"], "ivy"), timeout=60, message="the request was lost")
    assert on_a["message"] == "whenever you are back"
    eventually(lambda: _state(ivy, request["id"]) == "pending", timeout=30)
