"""A real Kith server process against peers that lie, over real HTTP on loopback with real signatures.

The in-process cases in test_inbox_hostile.py cover each refusal in detail; these send the same attacks to a
running `kith serve` (its worker in-process), on SQLite and PostgreSQL, from small peers (tests/support/
fake_peer.py) that serve the actor documents a test gives them and record every request made to them.
Each refusal is checked by its answer and by nothing having changed: the peer's guides as the API lists them.

Peers are kept apart by what they are for: a failed key fetch counts against its peer's budget of failures,
and one test's lies must not use up another's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from server.federation import signatures
from tests.support import postgres
from tests.support.fake_peer import FakePeer
from tests.support.server import KithServer
from tests.support.wait import eventually


@dataclass
class World:
    kith: KithServer
    honest: FakePeer  # a peer that sends as a Kith peer does, and plays the ones whose activities are forged
    liar: FakePeer  # serves key documents that must not be believed
    noisy: FakePeer  # names keys that do not exist
    misdirected: FakePeer  # names an inbox on another host
    elsewhere: FakePeer  # not a peer: where the liars point

    @property
    def inbox(self) -> str:
        return f"{self.kith.base_url}/inbox"

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(self.inbox, content=body, headers=headers, timeout=30)

    def titles(self, peer: FakePeer) -> set[str]:
        response = httpx.get(f"{self.kith.base_url}/api/v1/guides", params={"instance": peer.host, "limit": 100})
        response.raise_for_status()
        return {guide["title"] for guide in response.json()["items"]}


def _community(peer: FakePeer, kith: KithServer) -> None:
    group = peer.actor("/c/circle", "Group", name="Circle")
    body, headers = peer.signed(f"{kith.base_url}/inbox", peer.activity("Create", group, group["id"]))
    assert httpx.post(f"{kith.base_url}/inbox", content=body, headers=headers).status_code == 202


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with (
        FakePeer() as honest, FakePeer() as liar, FakePeer() as noisy, FakePeer() as misdirected,
        FakePeer() as elsewhere, postgres.database_for(request.param) as database_url,
    ):  # fmt: skip
        elsewhere_inbox = f"{elsewhere.base_url}/inbox"
        misdirected.actor(
            "/actor", "Application", username=misdirected.host, inbox=elsewhere_inbox,
            endpoints={"sharedInbox": elsewhere_inbox},
        )  # fmt: skip
        peers = ",".join(peer.base_url for peer in (honest, liar, noisy, misdirected))
        with KithServer(database_url=database_url, env={"KITH_PEERS": peers}) as kith:
            _community(honest, kith)
            _community(liar, kith)
            yield World(kith, honest, liar, noisy, misdirected, elsewhere)


def _guide_from(peer: FakePeer, author: dict, title: str) -> dict:
    return peer.activity("Create", peer.article(f"{peer.base_url}/c/circle", author, title), author["id"])


def test_a_guide_signed_by_its_authors_own_key_is_applied(world):
    # The control: the refusals below mean something only if the honest way works.
    sam = world.honest.actor("/u/sam", "Person")
    response = world.post(*world.honest.signed(world.inbox, _guide_from(world.honest, sam, "Seed saving")))
    assert response.status_code == 202, response.text
    eventually(lambda: "Seed saving" in world.titles(world.honest), timeout=30, message="the guide never arrived")


@pytest.mark.parametrize("signer", ["/actor", "/c/circle"])
def test_another_actors_key_cannot_speak_for_a_person_of_the_same_peer(world, signer):
    ana = world.honest.actor("/u/ana", "Person")
    activity = _guide_from(world.honest, ana, f"Said for ana by {signer}")
    key_id = f"{world.honest.base_url}{signer}#main-key"
    response = world.post(*world.honest.signed(world.inbox, activity, key_id=key_id))
    assert response.status_code == 403, response.text
    assert "actor" in response.json()["detail"]
    assert f"Said for ana by {signer}" not in world.titles(world.honest)


LIES = ["served as html", "redirected to another host", "owned by someone else", "a 1024-bit key"]


@pytest.mark.parametrize("lie", LIES)
def test_a_key_is_believed_only_from_its_own_actor_document_on_its_own_host(world, lie):
    liar, path = world.liar, f"/u/{LIES.index(lie)}-{world.kith.port}"
    private_pem = None
    if lie == "served as html":
        liar.actor(path, "Person")
        liar.served[path].content_type = "text/html"
    elif lie == "redirected to another host":
        world.elsewhere.actor(path, "Person", id=f"{liar.base_url}{path}", public_pem=liar.public_pem)
        liar.serve(path, b"", status=302, Location=f"{world.elsewhere.base_url}{path}")
    elif lie == "owned by someone else":
        liar.actor(path, "Person", publicKey={
            "id": f"{liar.base_url}{path}#main-key", "owner": f"{liar.base_url}/u/someone-else",
            "publicKeyPem": liar.public_pem,
        })  # fmt: skip
    else:
        private_pem, public_pem = signatures.generate_keypair(bits=1024)
        liar.actor(path, "Person", public_pem=public_pem)
    author = {"id": f"{liar.base_url}{path}", "type": "Person", "preferredUsername": "liar", "name": "Liar"}
    activity = _guide_from(liar, author, f"Believed: {lie}")
    response = world.post(*liar.signed(world.inbox, activity, private_pem=private_pem))
    assert response.status_code == 401, response.text
    assert f"Believed: {lie}" not in world.titles(liar)


def test_made_up_key_ids_cause_a_handful_of_fetches_and_the_api_keeps_answering(world):
    noisy = world.noisy
    body = json.dumps(noisy.activity("Create", {"type": "Note"}, f"{noisy.base_url}/u/nobody")).encode()
    before = len(noisy.requests)

    async def flood() -> tuple[list[int], list[int]]:
        async with httpx.AsyncClient(base_url=world.kith.base_url, timeout=60) as client:
            semaphore = asyncio.Semaphore(25)

            async def one(n: int) -> int:
                _, headers = noisy.signed(world.inbox, body, key_id=f"{noisy.base_url}/u/made-up-{n}#main-key")
                async with semaphore:
                    return (await client.post("/inbox", content=body, headers=headers)).status_code

            async def reader() -> list[int]:
                answers = []
                for _ in range(10):
                    answers.append((await client.get("/api/v1/instance")).status_code)
                    await asyncio.sleep(0.2)
                return answers

            inbox, api = await asyncio.gather(asyncio.gather(*(one(n) for n in range(500))), reader())
            return list(inbox), api

    inbox_answers, api_answers = asyncio.run(flood())
    assert set(inbox_answers) == {401}
    assert set(api_answers) == {200}
    key_fetches = [path for method, path in noisy.requests[before:] if path.startswith("/u/made-up-")]
    assert len(key_fetches) <= 10, key_fetches


def test_a_peer_that_names_an_inbox_on_another_host_is_sent_nothing_there(world):
    world.kith.cli("peers", "sync")
    # The sync asked the peer who it is (so the refusal below follows the lie, not an unreachable peer) ...
    assert ("GET", "/actor") in world.misdirected.requests
    status = world.kith.cli("peers", "status")
    assert world.misdirected.host in status
    # ... and nothing was, or will be, sent to the inbox it named: no delivery row was ever made for it.
    assert [request for request in world.elsewhere.requests if request[0] == "POST"] == []
    assert not [request for request in world.misdirected.requests if request[0] == "POST"]


@pytest.mark.parametrize(
    "body",
    [b'{"id": "%s/activities/deep", "type": "Create", "object": ' + b'{"a": ' * 200 + b"1" + b"}" * 201,
     b'{"id": "%s/activities/nul", "type": "Create", "actor": "%s/u/sam", "object": "\\u0000"}'],
    ids=["nested 200 deep", "a NUL character"],
)  # fmt: skip
def test_a_signed_body_that_is_no_acceptable_activity_is_a_400(world, body):
    honest = world.honest
    honest.actor("/u/sam", "Person")
    body = body.replace(b"%s", honest.base_url.encode())
    response = world.post(*honest.signed(world.inbox, body, key_id=f"{honest.base_url}/u/sam#main-key"))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_instance_that_allows_no_private_network_never_connects_to_a_loopback_peer(backend):
    # What an instance on the public internet does with a peer (or a DNS answer) that points at loopback.
    with FakePeer() as peer, postgres.database_for(backend) as database_url:
        sam = peer.actor("/u/sam", "Person")
        env = {"KITH_PEERS": peer.base_url, "KITH_ALLOWED_PRIVATE_NETWORKS": ""}
        with KithServer(database_url=database_url, env=env) as kith:
            activity = peer.activity("Create", peer.article(f"{peer.base_url}/c/circle", sam, "Never"), sam["id"])
            body, headers = peer.signed(f"{kith.base_url}/inbox", activity)
            response = httpx.post(f"{kith.base_url}/inbox", content=body, headers=headers, timeout=30)
            assert response.status_code == 401, response.text  # its key could not be fetched
            kith.cli("peers", "sync")  # discovery and follow are refused the same way
            assert peer.requests == []
