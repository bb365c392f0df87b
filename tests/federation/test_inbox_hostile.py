"""The inbox against a peer that misbehaves, and against strangers, in-process on both databases.

A test instance federates with two fake peers, peer.test and other.test, whose public keys are
seeded into actor_keys (as the key cache would hold them), so verification needs no network.
Requests are signed exactly as a real peer signs them; the worker step runs afterwards and the
outcome is read back through the REST API and the database. Every test also checks that nothing
changed where nothing may change.

The app's outbound HTTP client is replaced with a recorder that answers 404 to everything: it
keeps the tests off the network and lets them prove which requests the instance tried to make.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from server.app import create_app
from server.db import create_engine, create_sessionmaker
from server.federation import peers, signatures
from server.federation.fetch import FetchError, instance_fetcher
from server.federation.key_fetches import KeyFetches
from server.federation.peers import _store, _unseen, backfill
from server.federation.processing import InboxProcessor
from server.guides.batch import RemoteGuideBatch
from server.models import Activity, ActorKey, Community, DeletedObject, Delivery, Guide, InboxItem, Job, Peer
from server.settings import Settings
from tests.support.html import assert_safe

PEER = "http://peer.test"
OTHER = "http://other.test"
STRANGER = "http://stranger.test"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
T = TypeVar("T")


@functools.cache
def keypair(base_url: str) -> tuple[str, str]:
    """(private, public) PEM of a fake instance's actor; generated once per run, RSA is slow to make."""
    return signatures.generate_keypair()


def key_id(base_url: str) -> str:
    return f"{base_url}/actor#main-key"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- documents as a Kith peer sends them -------------------------------------------------


def group(base_url: str, slug: str) -> dict[str, Any]:
    uri = f"{base_url}/c/{slug}"
    published = datetime.now(UTC) - timedelta(days=30)
    return {
        "id": uri, "type": "Group", "preferredUsername": slug, "name": f"{slug.title()} circle",
        "summary": "<p>People who share what they learn.</p>", "url": uri, "color": "#2a7ab0",
        "inbox": f"{uri}/inbox", "outbox": f"{uri}/outbox", "followers": f"{uri}/followers",
        "published": iso(published), "updated": iso(published),
    }  # fmt: skip


def article(
    base_url: str,
    community_uri: str,
    *,
    title: str = "Composting in small spaces",
    updated: datetime | None = None,
    markdown: str | None = "Start with a *bokashi* bucket.",
    content: str = "<p>Start with a <em>bokashi</em> bucket.</p>",
    tags: list[str] | None = None,
) -> dict[str, Any]:
    uri = f"{base_url}/guides/{uuid.uuid4()}"
    updated = updated or datetime.now(UTC) - timedelta(days=1)
    author = {"id": f"{base_url}/u/alice", "type": "Person", "preferredUsername": "alice", "name": "Alice"}
    document: dict[str, Any] = {
        "id": uri, "type": "Article", "name": title, "summary": "A short how-to.",
        "content": content, "mediaType": "text/html",
        "tag": [{"type": "Hashtag", "name": f"#{tag}"} for tag in (tags if tags is not None else ["compost"])],
        # The author is embedded so that the worker has no reason to fetch it.
        "attributedTo": [author, community_uri],
        "audience": community_uri, "to": [PUBLIC], "cc": [f"{community_uri}/followers"], "url": uri,
        "license": "CC-BY-SA-4.0", "revision": 1,
        "published": iso(updated - timedelta(hours=1)), "updated": iso(updated),
    }  # fmt: skip
    if markdown is not None:
        document["source"] = {"content": markdown, "mediaType": "text/markdown"}
    return document


def activity(verb: str, obj: dict[str, Any] | str, *, actor: str) -> dict[str, Any]:
    """An activity whose id lives on its actor's instance, as every sender mints them."""
    origin = urlsplit(actor)
    return {
        "@context": [AS_CONTEXT, "https://w3id.org/security/v1"],
        "id": f"{origin.scheme}://{origin.netloc}/activities/{uuid.uuid4()}",
        "type": verb, "actor": actor, "object": obj, "to": [PUBLIC], "published": iso(datetime.now(UTC)),
    }  # fmt: skip


def alice(base_url: str) -> str:
    return f"{base_url}/u/alice"


def delete_of(base_url: str, uri: str, *, former_type: str = "Article") -> dict[str, Any]:
    tombstone = {"id": uri, "type": "Tombstone", "formerType": former_type, "deleted": iso(datetime.now(UTC))}
    return activity("Delete", tombstone, actor=alice(base_url))


# --- the instance under test ------------------------------------------------------------


@dataclass
class Instance:
    settings: Settings
    client: TestClient
    outbound: list[httpx.Request] = field(default_factory=list)

    def record(self, request: httpx.Request) -> httpx.Response:
        self.outbound.append(request)
        return httpx.Response(404, json={"error": "not here"})

    def deliver(
        self,
        payload: dict[str, Any] | bytes,
        *,
        signer: str = PEER,
        path: str = "/inbox",
        signed_url: str | None = None,
        now: datetime | None = None,
        sent_body: bytes | None = None,
    ) -> httpx.Response:
        """POST `payload` signed for `signed_url` (by default, where it is sent) by its actor's key when that actor
        lives on `signer`'s instance (as a peer signs), or else by `signer`'s instance actor."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        url = signed_url or f"{self.settings.base_url}{path}"
        actor = payload.get("actor") if isinstance(payload, dict) else None
        if not (isinstance(actor, str) and actor.startswith(signer + "/")):
            actor = f"{signer}/actor"
        headers = signatures.sign_request(
            "POST", url, body, self.signing_key(actor), keypair(signer)[0],
            {"Content-Type": "application/activity+json"}, now=now,
        )  # fmt: skip
        return self.client.post(path, content=body if sent_body is None else sent_body, headers=headers)

    def signing_key(self, actor: str) -> str:
        """The keyId of an actor; a peer's actor has its public key cached here as if fetched from its actor
        document (every actor of a fake peer shares that peer's key pair), a stranger's has nothing cached."""
        owner_key_id = f"{actor}#main-key"
        base_url = "{0.scheme}://{0.netloc}".format(urlsplit(actor))
        if base_url not in self.settings.peers:
            return owner_key_id

        async def cache(session: AsyncSession) -> None:
            if await session.scalar(select(ActorKey.id).where(ActorKey.key_id == owner_key_id)) is None:
                session.add(ActorKey(key_id=owner_key_id, owner_uri=actor, public_key_pem=keypair(base_url)[1]))

        self.run(cache)
        return owner_key_id

    def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` in a session of its own engine, as the worker process would have."""

        async def go() -> T:
            engine = create_engine(self.settings.database_url)
            try:
                async with create_sessionmaker(engine)() as session:
                    result = await work(session)
                    await session.commit()
                    return result
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def process(self) -> int:
        """One batch of the worker's inbox step; its fetches also go to the recorder."""

        async def go() -> int:
            engine = create_engine(self.settings.database_url)
            try:
                async with httpx.AsyncClient(transport=httpx.MockTransport(self.record)) as http:
                    return await InboxProcessor(self.settings, create_sessionmaker(engine), http)()
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def receive(self, payload: dict[str, Any], *, signer: str = PEER) -> InboxItem:
        """Deliver, expect 202, process, and return the stored item with its outcome."""
        response = self.deliver(payload, signer=signer)
        assert response.status_code == 202, response.text
        self.process()
        item = self.item(payload["id"])
        assert item is not None and item.state in ("done", "rejected"), item and item.state
        return item

    def item(self, activity_uri: str) -> InboxItem | None:
        return self.run(lambda s: s.scalar(select(InboxItem).where(InboxItem.activity_uri == activity_uri)))

    def items(self, activity_uri: str) -> int:
        query = select(func.count()).select_from(InboxItem).where(InboxItem.activity_uri == activity_uri)
        return self.run(lambda s: s.scalar(query)) or 0

    def guide_row(self, uri: str) -> Guide | None:
        return self.run(lambda s: s.scalar(select(Guide).where(Guide.uri == uri)))

    def guide(self, uri: str) -> dict[str, Any]:
        row = self.guide_row(uri)
        assert row is not None, f"no guide {uri}"
        response = self.client.get(f"/api/v1/guides/{row.id}")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def kith(settings: Settings) -> Iterator[Instance]:
    peered = replace(settings, peers=(PEER, OTHER))
    with TestClient(app=create_app(peered), base_url=peered.base_url) as client:
        instance = Instance(peered, client)
        original = client.app.state.http_client
        client.app.state.http_client = httpx.AsyncClient(transport=httpx.MockTransport(instance.record))
        instance.run(_seed_peers)
        try:
            yield instance
        finally:
            client.blocking_portal.call(client.app.state.http_client.aclose)
            client.app.state.http_client = original  # the app's lifespan closes its own client
            # Accept replies to fake hosts must not linger for another test's delivery worker.
            instance.run(
                lambda s: s.execute(delete(Delivery).where(Delivery.peer_host.in_(("peer.test", "other.test"))))
            )


async def _seed_peers(session: AsyncSession) -> None:
    # Cached public keys of the peers' instance actors: rows without a private key.
    for base_url in (PEER, OTHER):
        if await session.scalar(select(ActorKey.id).where(ActorKey.key_id == key_id(base_url))) is None:
            session.add(
                ActorKey(key_id=key_id(base_url), owner_uri=f"{base_url}/actor", public_key_pem=keypair(base_url)[1])
            )
    if await session.scalar(select(Peer.id).where(Peer.host == "peer.test")) is None:
        session.add(Peer(host="peer.test", base_url=PEER, actor_uri=f"{PEER}/actor", inbox_url=f"{PEER}/inbox"))


@pytest.fixture(scope="module")
def peer_community(kith: Instance) -> dict[str, Any]:
    document = group(PEER, "gardening")
    item = kith.receive(activity("Create", document, actor=document["id"]))
    assert item.state == "done", item.last_error
    return document


@pytest.fixture(scope="module")
def other_community(kith: Instance) -> dict[str, Any]:
    document = group(OTHER, "weaving")
    item = kith.receive(activity("Create", document, actor=document["id"]), signer=OTHER)
    assert item.state == "done", item.last_error
    return document


def publish(kith: Instance, document: dict[str, Any], *, signer: str = PEER) -> dict[str, Any]:
    """A peer's guide, applied, as the API shows it."""
    item = kith.receive(activity("Create", document, actor=alice(signer)), signer=signer)
    assert item.state == "done" and item.last_error == "guide stored", item.last_error
    return kith.guide(document["id"])


# --- the happy path, so the refusals below mean something -------------------------------


def test_peer_community_and_guide_appear_as_remote_with_their_origin(kith, peer_community):
    community = kith.client.get("/api/v1/communities/gardening@peer.test")
    assert community.status_code == 200, community.text
    assert community.json()["uri"] == peer_community["id"]

    document = article(PEER, peer_community["id"], title="Seed saving basics")
    publish(kith, document)
    remote = {"origin": "remote", "community": "gardening@peer.test", "limit": 100}
    listed = kith.client.get("/api/v1/guides", params=remote)
    assert listed.status_code == 200
    guide = next(g for g in listed.json()["items"] if g["uri"] == document["id"])
    assert guide["local"] is False
    assert guide["origin"]["instance"] == "peer.test"
    assert guide["community"]["uri"] == peer_community["id"]
    assert guide["community"]["instance"] == "peer.test"
    assert guide["author"]["instance"] == "peer.test"
    assert guide["title"] == "Seed saving basics"
    assert guide["license"] == "CC-BY-SA-4.0"
    local = kith.client.get("/api/v1/guides", params={"origin": "local", "community": "gardening@peer.test"})
    assert local.status_code == 200 and local.json()["items"] == []


# --- refused at the door: nothing stored -----------------------------------------------


def test_unsigned_request_is_refused_with_401(kith, peer_community):
    payload = activity("Create", article(PEER, peer_community["id"]), actor=alice(PEER))
    response = kith.client.post(
        "/inbox", content=json.dumps(payload), headers={"Content-Type": "application/activity+json"}
    )
    assert response.status_code == 401
    assert kith.items(payload["id"]) == 0


def test_body_changed_after_signing_is_refused_with_401(kith, peer_community):
    payload = activity("Create", article(PEER, peer_community["id"]), actor=alice(PEER))
    forged = dict(payload, object=dict(payload["object"], name="Something else entirely"))
    response = kith.deliver(payload, sent_body=json.dumps(forged).encode())
    assert response.status_code == 401
    assert "Digest header does not match" in response.json()["detail"]
    assert kith.items(payload["id"]) == 0
    assert kith.guide_row(payload["object"]["id"]) is None


def test_signature_dated_two_hours_ago_is_refused_with_401(kith, peer_community):
    payload = activity("Create", article(PEER, peer_community["id"]), actor=alice(PEER))
    response = kith.deliver(payload, now=datetime.now(UTC) - timedelta(hours=2))
    assert response.status_code == 401
    assert "Date header" in response.json()["detail"]
    assert kith.items(payload["id"]) == 0


def test_signature_replayed_to_another_inbox_path_is_refused_with_401(kith, peer_community):
    payload = activity("Create", article(PEER, peer_community["id"]), actor=alice(PEER))
    kith.outbound.clear()
    response = kith.deliver(payload, path="/c/gardening/inbox", signed_url=f"{kith.settings.base_url}/inbox")
    assert response.status_code == 401
    assert "does not match" in response.json()["detail"]
    assert kith.items(payload["id"]) == 0
    # A mismatch may make the instance refetch the signer's key, but from the signer's own host only.
    assert {request.url.host for request in kith.outbound} <= {"peer.test"}


def test_signature_made_for_another_host_is_refused_with_401(kith, peer_community):
    payload = activity("Create", article(PEER, peer_community["id"]), actor=alice(PEER))
    # Signed for (and carrying the Host of) another instance, then replayed here verbatim.
    response = kith.deliver(payload, signed_url="http://elsewhere.example/inbox")
    assert response.status_code == 401
    assert "signed for elsewhere.example" in response.json()["detail"]
    assert kith.items(payload["id"]) == 0


def test_signer_that_is_not_a_peer_gets_403_without_any_outbound_request(kith):
    stranger_group = group(STRANGER, "lurkers")
    payload = activity("Create", stranger_group, actor=stranger_group["id"])
    kith.outbound.clear()
    response = kith.deliver(payload, signer=STRANGER)
    assert response.status_code == 403
    assert kith.outbound == []  # not even a fetch of the stranger's key
    owners = kith.run(lambda s: s.scalars(select(ActorKey.owner_uri).where(ActorKey.owner_uri.like(f"{STRANGER}%"))))
    assert list(owners) == []
    assert kith.items(payload["id"]) == 0
    assert kith.run(lambda s: s.scalar(select(Community.id).where(Community.uri == stranger_group["id"]))) is None


def test_signature_made_with_another_key_than_the_key_id_names_is_refused_with_401(kith, peer_community):
    payload = activity("Create", article(PEER, peer_community["id"]), actor=alice(PEER))
    body = json.dumps(payload).encode()
    # A stranger's private key behind the peer's keyId: the cached peer key cannot verify it.
    headers = signatures.sign_request(
        "POST", f"{kith.settings.base_url}/inbox", body, key_id(PEER), keypair(STRANGER)[0]
    )  # fmt: skip
    kith.outbound.clear()
    response = kith.client.post("/inbox", content=body, headers=headers)
    assert response.status_code == 401
    assert kith.items(payload["id"]) == 0
    # The one refetch the failure allows goes to the peer that owns the key, never elsewhere.
    assert {str(request.url) for request in kith.outbound} <= {f"{PEER}/actor"}


def _cavage_without_a_comma(headers: dict[str, str]) -> dict[str, str | bytes]:
    return headers | {"Signature": headers["Signature"].replace('",algorithm=', '" algorithm=')}


def _cavage_with_a_stray_quote(headers: dict[str, str]) -> dict[str, str | bytes]:
    return headers | {"Signature": headers["Signature"] + ',"'}


def _rfc9421_unclosed_list(headers: dict[str, str]) -> dict[str, str | bytes]:
    return headers | {"Signature-Input": headers["Signature-Input"].replace('digest")', 'digest"')}


def _rfc9421_created_as_a_date(headers: dict[str, str]) -> dict[str, str | bytes]:
    return headers | {"Signature-Input": headers["Signature-Input"].replace(";created=", ";created=@")}


def _rfc9421_signature_not_base64(headers: dict[str, str]) -> dict[str, str | bytes]:
    return headers | {"Signature": "sig1=:not base64!:"}


def _rfc9421_non_ascii_component(headers: dict[str, str]) -> dict[str, str | bytes]:
    return headers | {"Signature-Input": headers["Signature-Input"].replace("@method", "@m\xe9thod").encode("latin-1")}


MALFORMED = [
    (signatures.sign_request, _cavage_without_a_comma),
    (signatures.sign_request, _cavage_with_a_stray_quote),
    (signatures.sign_request_rfc9421, _rfc9421_unclosed_list),
    (signatures.sign_request_rfc9421, _rfc9421_created_as_a_date),
    (signatures.sign_request_rfc9421, _rfc9421_signature_not_base64),
    (signatures.sign_request_rfc9421, _rfc9421_non_ascii_component),
]


@pytest.mark.parametrize(("sign", "mangle"), MALFORMED, ids=[mangle.__name__[1:] for _, mangle in MALFORMED])
def test_malformed_signature_header_from_a_peer_is_refused_with_401(kith, peer_community, sign, mangle):
    payload = activity("Create", article(PEER, peer_community["id"]), actor=alice(PEER))
    body = json.dumps(payload).encode()
    headers = sign("POST", f"{kith.settings.base_url}/inbox", body, key_id(PEER), keypair(PEER)[0])
    response = kith.client.post("/inbox", content=body, headers=mangle(headers))
    assert response.status_code == 401, response.text
    assert response.json()["detail"].startswith("Signature rejected: ")
    assert kith.items(payload["id"]) == 0


def test_rfc9421_signature_from_a_peer_is_accepted(kith, peer_community):
    # The positive control for the second signature scheme the inbox verifies.
    document = article(PEER, peer_community["id"], title="Signed the new way")
    payload = activity("Create", document, actor=alice(PEER))
    body = json.dumps(payload).encode()
    headers = signatures.sign_request_rfc9421(
        "POST", f"{kith.settings.base_url}/inbox", body, kith.signing_key(alice(PEER)), keypair(PEER)[0]
    )  # fmt: skip
    assert kith.client.post("/inbox", content=body, headers=headers).status_code == 202
    kith.process()
    assert kith.guide(document["id"])["title"] == "Signed the new way"


@pytest.mark.parametrize("signed_by", ["instance actor", "community"])
def test_an_activity_signed_by_another_actor_of_the_same_peer_is_refused_with_403(kith, peer_community, signed_by):
    # The peer's own host and a key that verifies, but the key is not alice's: it must not speak for her.
    document = article(PEER, peer_community["id"], title="Said for alice")
    payload = activity("Create", document, actor=alice(PEER))
    body = json.dumps(payload).encode()
    signing_actor = f"{PEER}/actor" if signed_by == "instance actor" else peer_community["id"]
    headers = signatures.sign_request(
        "POST", f"{kith.settings.base_url}/inbox", body, kith.signing_key(signing_actor), keypair(PEER)[0],
        {"Content-Type": "application/activity+json"},
    )  # fmt: skip
    response = kith.client.post("/inbox", content=body, headers=headers)
    assert response.status_code == 403, response.text
    assert "actor" in response.json()["detail"]
    assert kith.items(payload["id"]) == 0
    assert kith.guide_row(document["id"]) is None


def test_body_over_one_megabyte_is_refused_with_413(kith, peer_community):
    document = article(PEER, peer_community["id"], markdown="x" * 2_000_000)
    payload = activity("Create", document, actor=alice(PEER))
    response = kith.deliver(payload)
    assert response.status_code == 413
    assert kith.items(payload["id"]) == 0
    assert kith.guide_row(document["id"]) is None


# --- stored, then refused by the worker: nothing applied ----------------------------------


def test_object_on_another_host_than_the_signer_is_rejected(kith, peer_community, other_community):
    # peer.test signs a Create of an object whose id claims to live on other.test.
    document = article(OTHER, other_community["id"])
    document["attributedTo"] = [alice(PEER), other_community["id"]]
    item = kith.receive(activity("Create", document, actor=alice(PEER)))
    assert item.state == "rejected"
    assert "other.test" in (item.last_error or "")
    assert kith.guide_row(document["id"]) is None


def test_actor_on_another_host_than_the_signer_is_rejected(kith, peer_community, other_community):
    # peer.test signs, but the activity claims other.test's person as its actor.
    original = article(OTHER, other_community["id"], title="Loom warping")
    publish(kith, original, signer=OTHER)
    response = kith.deliver(delete_of(OTHER, original["id"]), signer=PEER)
    assert response.status_code == 403  # its id, like its actor, is on another host than the signer's
    kith.process()
    assert kith.guide(original["id"])["title"] == "Loom warping"


def test_guide_in_another_instances_community_is_rejected(kith, peer_community, other_community):
    # The id is the signer's own, but the community it claims is other.test's.
    document = article(PEER, other_community["id"])
    item = kith.receive(activity("Create", document, actor=alice(PEER)))
    assert item.state == "rejected"
    assert "community" in (item.last_error or "")
    assert kith.guide_row(document["id"]) is None


def test_peer_cannot_update_or_delete_a_local_guide(kith, admin, community):
    created = kith.client.post(
        f"/api/v1/communities/{community['slug']}/guides",
        json={"title": "Our own guide", "body_markdown": "Written here."},
        headers=admin.auth,
    )
    assert created.status_code == 201, created.text
    local = created.json()
    hijack = article(PEER, community["uri"], title="Hijacked", updated=datetime.now(UTC) + timedelta(days=1))
    hijack["id"] = local["uri"]
    for payload in (activity("Update", hijack, actor=alice(PEER)), delete_of(PEER, local["uri"])):
        item = kith.receive(payload)
        assert item.state == "rejected", payload["type"]
        assert "not on the signer's host" in (item.last_error or "")
    after = kith.client.get(f"/api/v1/guides/{local['id']}")
    assert after.status_code == 200
    assert (after.json()["title"], after.json()["revision"]) == ("Our own guide", local["revision"])


def test_peer_cannot_update_or_delete_another_peers_guide(kith, peer_community, other_community):
    original = article(OTHER, other_community["id"], title="Natural dyes")
    before = publish(kith, original, signer=OTHER)
    hijack = dict(original, name="Hijacked", updated=iso(datetime.now(UTC) + timedelta(days=1)))
    for payload in (activity("Update", hijack, actor=alice(PEER)), delete_of(PEER, original["id"])):
        item = kith.receive(payload)
        assert item.state == "rejected", payload["type"]
        assert "not on the signer's host" in (item.last_error or "")
    after = kith.guide(original["id"])
    assert after["title"] == "Natural dyes"
    assert after["updated_at"] == before["updated_at"]
    assert kith.run(lambda s: s.scalar(select(DeletedObject.id).where(DeletedObject.uri == original["id"]))) is None


def test_title_over_200_characters_is_rejected_and_nothing_stored(kith, peer_community):
    document = article(PEER, peer_community["id"], title="t" * 201)
    item = kith.receive(activity("Create", document, actor=alice(PEER)))
    assert item.state == "rejected"
    assert "title" in (item.last_error or "")
    assert kith.guide_row(document["id"]) is None


def test_more_than_20_tags_is_rejected_and_nothing_stored(kith, peer_community):
    document = article(PEER, peer_community["id"], tags=[f"tag{n}" for n in range(21)])
    item = kith.receive(activity("Create", document, actor=alice(PEER)))
    assert item.state == "rejected"
    assert "tags" in (item.last_error or "")
    assert kith.guide_row(document["id"]) is None


# --- idempotence and ordering ---------------------------------------------------------


def test_same_activity_twice_is_stored_once(kith, peer_community):
    payload = activity("Create", article(PEER, peer_community["id"]), actor=alice(PEER))
    assert [kith.deliver(payload).status_code for _ in range(2)] == [202, 202]
    assert kith.items(payload["id"]) == 1
    kith.process()
    assert kith.guide_row(payload["object"]["id"]) is not None


def test_same_activity_twice_at_once_is_stored_once(kith, peer_community):
    payload = activity("Create", article(PEER, peer_community["id"]), actor=alice(PEER))
    body = json.dumps(payload).encode()
    url = f"{kith.settings.base_url}/inbox"
    signing_key = kith.signing_key(alice(PEER))

    async def both() -> list[int]:
        # Run inside the app's own event loop, so both requests are in flight together.
        transport = httpx.ASGITransport(app=kith.client.app)
        async with httpx.AsyncClient(transport=transport, base_url=kith.settings.base_url) as http:

            async def send() -> int:
                headers = signatures.sign_request("POST", url, body, signing_key, keypair(PEER)[0])
                return (await http.post("/inbox", content=body, headers=headers)).status_code

            return list(await asyncio.gather(send(), send()))

    assert kith.client.blocking_portal.call(both) == [202, 202]
    assert kith.items(payload["id"]) == 1


def test_delete_before_create_means_the_entry_never_appears(kith, peer_community):
    document = article(PEER, peer_community["id"], title="Gone before it came")
    deleted = kith.receive(delete_of(PEER, document["id"]))
    assert deleted.state == "done"
    late = kith.receive(activity("Create", document, actor=alice(PEER)))
    assert late.state == "done" and "deleted" in (late.last_error or "")
    assert kith.guide_row(document["id"]) is None
    remote = {"origin": "remote", "community": "gardening@peer.test", "limit": 100}
    listed = kith.client.get("/api/v1/guides", params=remote)
    assert listed.status_code == 200
    assert document["id"] not in {g["uri"] for g in listed.json()["items"]}


def test_older_update_after_a_newer_one_keeps_the_newer(kith, peer_community):
    start = datetime.now(UTC) - timedelta(days=3)
    document = article(PEER, peer_community["id"], title="Version one", updated=start)
    publish(kith, document)
    newer = dict(document, name="Version three", updated=iso(start + timedelta(days=2)))
    older = dict(document, name="Version two", updated=iso(start + timedelta(days=1)))
    assert kith.receive(activity("Update", newer, actor=alice(PEER))).state == "done"
    stale = kith.receive(activity("Update", older, actor=alice(PEER)))
    assert stale.state == "done" and "stale" in (stale.last_error or "")
    guide = kith.guide(document["id"])
    assert guide["title"] == "Version three"
    assert guide["updated_at"].startswith(newer["updated"][:19])


def test_update_after_delete_does_not_bring_the_guide_back(kith, peer_community):
    document = article(PEER, peer_community["id"], title="Short-lived")
    guide = publish(kith, document)
    assert kith.receive(delete_of(PEER, document["id"])).state == "done"
    revived = dict(document, name="Back from the dead", updated=iso(datetime.now(UTC) + timedelta(hours=1)))
    assert kith.receive(activity("Update", revived, actor=alice(PEER))).state == "done"
    assert kith.client.get(f"/api/v1/guides/{guide['id']}").status_code == 404
    row = kith.guide_row(document["id"])
    assert row is not None and row.deleted_at is not None and row.title == "Short-lived"


def test_activity_id_reused_for_other_content_changes_nothing(kith, peer_community):
    document = article(PEER, peer_community["id"], title="First telling")
    payload = activity("Create", document, actor=alice(PEER))
    publish_item = kith.receive(payload)
    assert publish_item.state == "done"
    # Same activity id, new content: a repeat by id, so a no-op, not an edit by the back door.
    rewritten = dict(payload, object=dict(document, name="Second telling", updated=iso(datetime.now(UTC))))
    assert kith.deliver(rewritten).status_code == 202
    kith.process()
    assert kith.items(payload["id"]) == 1
    assert kith.guide(document["id"])["title"] == "First telling"


# --- remote HTML is never trusted -------------------------------------------------------

HOSTILE_HTML = (
    "<p>Kept paragraph</p><script>alert('script')</script>"
    '<img src="http://peer.test/x.png" onerror="alert(\'img\')">'
    "<a href=\"javascript:alert('link')\" onclick=\"alert('click')\">a link</a>"
    '<iframe src="http://peer.test/frame"></iframe><p onmouseover="alert(\'hover\')">hover me</p>'
)
HOSTILE_MARKDOWN = (
    "Kept paragraph\n\n<script>alert('script')</script>\n\n"
    '<img src="x" onerror="alert(\'img\')">\n\n'
    "[a link](javascript:alert('link'))\n\n![picture](javascript:alert('picture'))\n\n"
    "<a href=\"javascript:alert('raw')\">raw link</a>\n"
)


def test_remote_html_content_without_source_is_sanitized(kith, peer_community):
    document = article(PEER, peer_community["id"], markdown=None, content=HOSTILE_HTML)
    html = publish(kith, document)["body_html"]
    assert_safe(html)
    assert "Kept paragraph" in html
    assert "alert" not in html  # script bodies and event handlers are dropped, not just disarmed


def test_remote_markdown_source_is_rendered_safely(kith, peer_community):
    document = article(PEER, peer_community["id"], markdown=HOSTILE_MARKDOWN, content="<p>ignored</p>")
    guide = publish(kith, document)
    assert_safe(guide["body_html"])
    assert "Kept paragraph" in guide["body_html"]
    assert "<script" not in guide["body_html"]
    assert guide["body_markdown"] == HOSTILE_MARKDOWN  # the source is kept as sent; only its rendering is trusted


# --- never re-authored ------------------------------------------------------------------


def test_api_refuses_to_edit_or_delete_a_remote_guide(kith, admin, peer_community):
    document = article(PEER, peer_community["id"], title="Theirs to change")
    guide = publish(kith, document)
    patched = kith.client.patch(f"/api/v1/guides/{guide['id']}", json={"title": "Mine now"}, headers=admin.auth)
    assert patched.status_code == 403
    deleted = kith.client.delete(f"/api/v1/guides/{guide['id']}", headers=admin.auth)
    assert deleted.status_code == 403
    after = kith.guide(document["id"])
    assert (after["title"], after["revision"]) == ("Theirs to change", guide["revision"])


# --- peering ----------------------------------------------------------------------------


def test_follow_from_peer_instance_actor_queues_accept_and_marks_followed_back(kith):
    follow = activity("Follow", f"{kith.settings.base_url}/actor", actor=f"{PEER}/actor")
    item = kith.receive(follow)
    assert item.state == "done" and item.last_error == "accepted follow"

    async def outcome(session: AsyncSession) -> tuple[list[tuple[str, dict[str, Any]]], bool | None]:
        replies = await session.execute(
            select(Delivery.inbox_url, Activity.payload)
            .join(Activity, Activity.seq == Delivery.activity_seq)
            .where(Delivery.peer_host == "peer.test", Activity.type == "Accept")
        )
        followed_back = await session.scalar(select(Peer.followed_back).where(Peer.host == "peer.test"))
        return [(inbox, payload) for inbox, payload in replies], followed_back

    replies, followed_back = kith.run(outcome)
    accepts = [inbox for inbox, payload in replies if payload["object"]["id"] == follow["id"]]
    assert accepts == [f"{PEER}/inbox"]
    assert followed_back is True


# --- one peer must never act for another ----------------------------------------------------


def _cavage_with_a_second_key_id(body: bytes, url: str) -> dict[str, str]:
    headers = signatures.sign_request("POST", url, body, key_id(OTHER), keypair(OTHER)[0])
    # The parser keeps the last keyId (other.test's, which verifies); the allowlist check reads the first.
    headers["Signature"] = f'keyId="{key_id(PEER)}",' + headers["Signature"]
    return headers


def _rfc9421_with_a_key_id_in_the_signature_dictionary(body: bytes, url: str) -> dict[str, str]:
    headers = signatures.sign_request_rfc9421("POST", url, body, key_id(OTHER), keypair(OTHER)[0])
    # Still a valid structured dictionary; verification uses Signature-Input's keyid, a naive reader this one.
    headers["Signature"] += f', x;keyid="{key_id(PEER)}"'
    return headers


@pytest.mark.parametrize("forge", [_cavage_with_a_second_key_id, _rfc9421_with_a_key_id_in_the_signature_dictionary])
def test_peer_cannot_pass_as_another_peer_by_naming_its_key(kith, peer_community, forge):
    document = article(PEER, peer_community["id"], title="Peer's own words")
    publish(kith, document)
    defaced = dict(document, name="Defaced by other.test", updated=iso(datetime.now(UTC)))
    payload = activity("Update", defaced, actor=alice(PEER))
    body = json.dumps(payload).encode()
    kith.client.post("/inbox", content=body, headers=forge(body, f"{kith.settings.base_url}/inbox"))
    kith.process()
    assert kith.guide(document["id"])["title"] == "Peer's own words"


def test_peer_cannot_suppress_another_peers_activity_by_sending_its_id_first(kith, other_community):
    document = article(OTHER, other_community["id"], title="Genuine weaving guide")
    genuine = activity("Create", document, actor=alice(OTHER))
    kith.deliver(genuine, signer=PEER)  # a copy, re-signed by peer.test, that arrives first
    assert kith.deliver(genuine, signer=OTHER).status_code == 202
    kith.process()
    assert kith.guide_row(document["id"]) is not None


# --- a backfill page applied as one batch ----------------------------------------------
# Plain new guides are written together, everything else one by one; the outcome must be that of
# applying the activities one at a time.


def queue_page(kith: Instance, items: list[dict[str, Any]]) -> None:
    """Queue the items as a backfill does with a page of the peer's outbox (which lists newest first)."""

    async def work(session: AsyncSession) -> None:
        await _store(session, "peer.test", await _unseen(session, list(reversed(items))), leased=False)
        await session.commit()

    kith.run(work)


def outbox_of(pages: list[list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """peer.test's outbox as documents by URL: `pages` oldest first, each page's items oldest first."""
    outbox = f"{PEER}/outbox"
    urls = [f"{outbox}?page=true" + (f"&before={n}" if n else "") for n in range(len(pages))]
    documents: dict[str, dict[str, Any]] = {
        outbox: {"id": outbox, "type": "OrderedCollection", "totalItems": sum(map(len, pages)), "first": urls[0]}
    }
    for n, items in enumerate(reversed(pages)):  # newest page first, newest item first, as an outbox lists
        documents[urls[n]] = {"id": urls[n], "type": "OrderedCollectionPage", "orderedItems": list(reversed(items))}
        if n + 1 < len(pages):
            documents[urls[n]]["next"] = urls[n + 1]
    return documents


def pull(kith: Instance, documents: dict[str, dict[str, Any]], *, full: bool = True) -> int:
    """A backfill of peer.test, as the worker runs it, from `documents` (anything else answers 404)."""

    def serve(request: httpx.Request) -> httpx.Response:
        kith.outbound.append(request)
        document = documents.get(str(request.url))
        return httpx.Response(200, json=document) if document else httpx.Response(404, json={"error": "not here"})

    async def work(session: AsyncSession) -> int:
        peer = await session.scalar(select(Peer).where(Peer.host == "peer.test"))
        assert peer is not None
        async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as http:
            fetcher = await instance_fetcher(session, kith.settings, http)
            return await backfill(session, peer, fetcher, full=full)

    return kith.run(work)


def pull_page(kith: Instance, items: list[dict[str, Any]]) -> int:
    """The items as the one page of peer.test's outbox, backfilled: applied at once, nothing queued."""
    applied = pull(kith, outbox_of([items]))
    assert kith.process() == 0  # nothing left for the worker's inbox step
    return applied


# The two ways a page of a peer's outbox is applied: queued for the worker's inbox step, or at once by the
# backfill (the usual way; the queue is its fallback). Both must give the same outcome.
PAGE_WAYS = ["queued", "pulled"]


def apply_page(kith: Instance, items: list[dict[str, Any]], way: str) -> int:
    if way == "pulled":
        return pull_page(kith, items)
    queue_page(kith, items)
    return kith.process()


def outcome(kith: Instance, item: dict[str, Any]) -> InboxItem:
    stored = kith.item(item["id"])
    assert stored is not None
    return stored


def entries_received(kith: Instance) -> int:
    return kith.run(lambda s: s.scalar(select(Peer.entries_received).where(Peer.host == "peer.test"))) or 0


def count_guides(kith: Instance, uri: str) -> int:
    return kith.run(lambda s: s.scalar(select(func.count()).select_from(Guide).where(Guide.uri == uri))) or 0


def create(document: dict[str, Any]) -> dict[str, Any]:
    return activity("Create", document, actor=alice(PEER))


@pytest.mark.parametrize("way", PAGE_WAYS)
def test_bad_activities_in_a_backfill_page_are_skipped_while_the_rest_apply(kith, peer_community, way):
    community = peer_community["id"]
    publish_first = create(article(PEER, community, title=f"Worm bins {way}"))
    apply_page(kith, [publish_first], way)
    assert outcome(kith, publish_first).last_error == "guide stored"

    good = [create(article(PEER, community, title=f"Batch guide {n}", tags=["soil", f"t{n}"])) for n in range(6)]
    same_title = [create(article(PEER, community, title=f"Worm bins {way}")) for _ in range(2)]
    empty_title = create(article(PEER, community, title="   "))
    long_title = create(article(PEER, community, title="x" * 300))
    foreign_object = create(article(OTHER, community, title="Not theirs to send"))
    deleted_first = article(PEER, community, title="Deleted before it arrived")
    tombstone = delete_of(PEER, deleted_first["id"])
    late_create = create(deleted_first)
    edited = article(PEER, community, title="First version")
    edited_create = create(edited)
    later = datetime.fromisoformat(edited["updated"].replace("Z", "+00:00")) + timedelta(minutes=5)
    edited_update = activity("Update", dict(edited, name="Second version", updated=iso(later)), actor=alice(PEER))
    page = [
        good[0], good[1], empty_title, good[2], same_title[0], long_title, tombstone, good[3], foreign_object,
        late_create, same_title[1], edited_create, good[4], edited_update, good[5],
    ]  # fmt: skip
    before = entries_received(kith)

    assert apply_page(kith, page, way) == len(page)

    for item in [*good, *same_title, edited_create]:
        assert outcome(kith, item).state == "done", outcome(kith, item).last_error
        assert outcome(kith, item).last_error == "guide stored"
        assert count_guides(kith, item["object"]["id"]) == 1
    assert outcome(kith, empty_title).state == "rejected"
    assert outcome(kith, empty_title).last_error == "title: must not be blank"
    assert outcome(kith, long_title).state == "rejected"
    assert "title: must be at most 200 characters" in (outcome(kith, long_title).last_error or "")
    assert outcome(kith, foreign_object).state == "rejected"
    assert "not on the signer's host" in (outcome(kith, foreign_object).last_error or "")
    for rejected in (empty_title, long_title, foreign_object):
        assert count_guides(kith, rejected["object"]["id"]) == 0
    assert outcome(kith, tombstone).last_error == "tombstoned unseen object"
    assert outcome(kith, late_create).last_error == "ignored: object was deleted"
    assert count_guides(kith, deleted_first["id"]) == 0
    # The Create and its Update in the same page apply in order.
    assert outcome(kith, edited_update).last_error == "guide stored"
    assert kith.guide(edited["id"])["title"] == "Second version"

    # Everything a guide applied one at a time gets: attribution, rendered body, tags, an index job.
    shown = kith.guide(good[2]["object"]["id"])
    assert shown["local"] is False and shown["title"] == "Batch guide 2"
    assert shown["community"]["uri"] == community and shown["author"]["instance"] == "peer.test"
    assert shown["tags"] == ["soil", "t2"]
    assert "<em>bokashi</em>" in shown["body_html"]
    row = kith.guide_row(good[2]["object"]["id"])
    assert row is not None
    jobs = kith.run(lambda s: s.scalars(select(Job.payload).where(Job.kind == "index")))
    assert {"type": "guide", "id": str(row.id)} in list(jobs)
    # Slugs stay unique within the community, also against guides of earlier batches.
    slugs = {kith.guide(item["object"]["id"])["slug"] for item in [publish_first, *same_title]}
    assert slugs == {f"worm-bins-{way}", f"worm-bins-{way}-2", f"worm-bins-{way}-3"}
    stored = len(good) + len(same_title) + 2  # the edited guide counts for its Create and its Update
    assert entries_received(kith) == before + stored


@pytest.mark.parametrize("way", PAGE_WAYS)
def test_new_guides_fall_back_to_one_savepoint_each_when_the_batch_write_fails(kith, peer_community, monkeypatch, way):
    community = peer_community["id"]
    page = [create(article(PEER, community, title=f"Fallback guide {n}")) for n in range(4)]
    page.append(create(article(PEER, community, title="")))
    write = RemoteGuideBatch.write
    attempts: list[int] = []

    async def failing_write(self: RemoteGuideBatch) -> set[str]:
        # Rows reach the database, then the write fails: the savepoint must take all of them back.
        attempts.append(len(await write(self)))
        raise RuntimeError("simulated unique clash with another worker")

    monkeypatch.setattr(RemoteGuideBatch, "write", failing_write)
    apply_page(kith, page, way)

    assert attempts == [4]
    for item in page[:4]:
        assert outcome(kith, item).last_error == "guide stored"
        assert count_guides(kith, item["object"]["id"]) == 1
    assert outcome(kith, page[4]).state == "rejected"


def test_a_backfill_applies_each_page_at_once_and_a_repeat_changes_nothing(kith, peer_community):
    community = peer_community["id"]
    pages = [[create(article(PEER, community, title=f"Paged guide {p}-{n}")) for n in range(3)] for p in range(3)]
    documents = outbox_of(pages)
    kith.outbound.clear()

    assert pull(kith, documents) == 9
    for item in [item for page in pages for item in page]:
        assert outcome(kith, item).state == "done" and outcome(kith, item).last_error == "guide stored"
        assert count_guides(kith, item["object"]["id"]) == 1
    assert kith.process() == 0  # stored with their outcome: nothing was left for the worker's inbox step
    assert [str(r.url) for r in kith.outbound] == [f"{PEER}/outbox", *list(documents)[1:]]

    # A pull stops at known ground: the newest page is all known, so the older ones are not even fetched.
    kith.outbound.clear()
    assert pull(kith, documents, full=False) == 0
    assert [str(r.url) for r in kith.outbound] == [f"{PEER}/outbox", list(documents)[1]]
    # The same activity pushed afterwards is a no-op, as for any activity received twice.
    repeat = pages[0][0]
    assert kith.deliver(repeat).status_code == 202
    assert kith.items(repeat["id"]) == 1
    assert kith.process() == 0
    assert count_guides(kith, repeat["object"]["id"]) == 1


def test_communities_and_authors_a_page_names_are_fetched_once_each_before_it_is_applied(kith):
    unknown = group(PEER, f"pulled-{uuid.uuid4().hex[:8]}")
    author = {"id": f"{PEER}/u/bob-{uuid.uuid4().hex[:6]}", "type": "Person", "preferredUsername": "bob", "name": "Bob"}
    page = []
    for n in range(3):
        document = article(PEER, unknown["id"], title=f"Guide of an unseen community {n}")
        document["attributedTo"] = [author["id"], unknown["id"]]  # the author is not embedded: it is fetched
        page.append(activity("Create", document, actor=author["id"]))
    documents = {**outbox_of([page]), unknown["id"]: unknown, author["id"]: author}
    kith.outbound.clear()

    assert pull(kith, documents) == 3
    for item in page:
        assert outcome(kith, item).last_error == "guide stored"
        shown = kith.guide(item["object"]["id"])
        assert shown["community"]["uri"] == unknown["id"] and shown["author"]["display_name"] == "Bob"
    fetched = [str(r.url) for r in kith.outbound]
    assert fetched.count(unknown["id"]) == 1 and fetched.count(author["id"]) == 1


def test_a_page_item_whose_id_is_not_a_plain_url_of_the_peer_is_skipped_and_the_rest_apply(kith, peer_community):
    fine = create(article(PEER, peer_community["id"], title="Beside odd ids"))
    too_long = create(article(PEER, peer_community["id"], title="Id too long"))
    too_long["id"] = f"{PEER}/activities/{'x' * 2100}"
    not_http = create(article(PEER, peer_community["id"], title="Id not http"))
    not_http["id"] = "ftp://peer.test/activities/1"
    with_nul = create(article(PEER, peer_community["id"], title="Null\u0000 and void"))
    assert pull(kith, outbox_of([[too_long, fine, not_http, with_nul]])) == 1
    assert outcome(kith, fine).last_error == "guide stored"
    for skipped in (too_long, not_http, with_nul):
        assert kith.items(skipped["id"]) == 0
        assert count_guides(kith, skipped["object"]["id"]) == 0


def test_a_page_that_cannot_be_written_at_once_is_queued_for_the_worker_instead(kith, peer_community, monkeypatch):
    page = [create(article(PEER, peer_community["id"], title=f"Queued after all {n}")) for n in range(3)]
    tries: list[int] = []

    async def failing(session: AsyncSession, settings: Settings, fetcher: Any, ids: list[Any]) -> None:
        # Rows reach the database, then the commit would clash: the rollback must take all of them back.
        tries.append(len(ids))
        await session.execute(update(InboxItem).where(InboxItem.id.in_(ids)).values(state="done"))
        raise OperationalError("UPDATE inbox_items", {}, Exception("simulated clash"))

    monkeypatch.setattr(peers, "apply_stored", failing)
    assert pull(kith, outbox_of([page])) == 3
    assert tries == [3]
    for item in page:
        assert outcome(kith, item).state == "pending"
        assert count_guides(kith, item["object"]["id"]) == 0
    assert kith.process() == 3
    for item in page:
        assert outcome(kith, item).last_error == "guide stored"
        assert count_guides(kith, item["object"]["id"]) == 1


@pytest.mark.parametrize("way", PAGE_WAYS)
@pytest.mark.parametrize("verb", ["Create", "Update"])
def test_unknown_community_in_a_page_is_fetched_like_a_single_activity(kith, peer_community, verb, way):
    # The peer's community is not known here and the fetch answers 404: rejected, as one at a time.
    unknown = group(PEER, f"unknown-{uuid.uuid4().hex[:8]}")
    document = article(PEER, unknown["id"], title="Orphan guide")
    orphan = activity(verb, document, actor=alice(PEER))
    fine = create(article(PEER, peer_community["id"], title=f"Neighbour of an orphan {verb}"))
    apply_page(kith, [orphan, fine], way)
    assert outcome(kith, orphan).state == "rejected"
    assert outcome(kith, fine).last_error == "guide stored"
    assert count_guides(kith, document["id"]) == 0


def test_an_update_sent_by_reference_is_fetched_even_for_a_community_known_here(kith):
    known = group(PEER, f"renamed-{uuid.uuid4().hex[:8]}")
    assert kith.receive(activity("Create", known, actor=known["id"])).state == "done"
    renamed = dict(known, name="A circle by another name", updated=iso(datetime.now(UTC)))
    update = activity("Update", known["id"], actor=known["id"])  # the object by its id alone
    documents = {**outbox_of([[update]]), known["id"]: renamed}
    kith.outbound.clear()

    assert pull(kith, documents) == 1
    assert outcome(kith, update).last_error == "community stored"
    assert [str(r.url) for r in kith.outbound].count(known["id"]) == 1
    slug = known["preferredUsername"]
    shown = kith.client.get(f"/api/v1/communities/{slug}@{urlsplit(PEER).netloc}").json()
    assert shown["name"] == "A circle by another name"


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "http://peer.test/activities/deep", "type": "Create", "object": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
        b'{"id": "http://peer.test/activities/nested", "type": "Create", "object": '
        + b'{"a": ' * 40
        + b"1"
        + b"}" * 40
        + b"}",
        b"not json at all",
        b'["http://peer.test/activities/a-list"]',
    ],
    ids=["beyond-the-stack", "too-deep-to-walk", "not-json", "not-an-object"],
)
def test_a_body_that_is_no_activity_is_a_400_and_nothing_is_stored(kith, body):
    before = kith.run(lambda s: s.scalar(select(func.count()).select_from(InboxItem)))
    response = kith.deliver(body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert kith.run(lambda s: s.scalar(select(func.count()).select_from(InboxItem))) == before


def test_an_activity_with_a_nul_character_is_a_400_and_nothing_is_stored(kith, peer_community):
    document = article(PEER, peer_community["id"], title="Null\u0000 and void")
    payload = create(document)
    response = kith.deliver(payload)
    assert response.status_code == 400 and "NUL" in response.text
    assert kith.items(payload["id"]) == 0
    assert count_guides(kith, document["id"]) == 0


def test_a_peer_whose_actor_names_an_inbox_on_another_host_is_sent_nothing_there(kith):
    """The inbox a peer publishes must be on its own host: a shared inbox elsewhere is passed over for its own
    inbox, and an actor with no inbox on its host is not followed at all."""
    actor = f"{PEER}/actor"
    finger = f"{PEER}/.well-known/webfinger?resource=acct:peer.test@peer.test"

    def documents(inbox: str | None) -> dict[str, dict[str, Any]]:
        document = {"id": actor, "type": "Application", "endpoints": {"sharedInbox": "http://127.0.0.1:9/inbox"}}
        if inbox:
            document["inbox"] = inbox
        return {finger: {"links": [{"rel": "self", "href": actor}]}, actor: document}

    async def discover(served: dict[str, dict[str, Any]]) -> Peer:
        def serve(request: httpx.Request) -> httpx.Response:
            document = served.get(str(request.url))
            return httpx.Response(200, json=document) if document else httpx.Response(404)

        async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as http:
            engine = create_engine(kith.settings.database_url)
            try:
                async with create_sessionmaker(engine)() as session:
                    fetcher = await instance_fetcher(session, kith.settings, http)
                peer = Peer(host="peer.test", base_url=PEER)
                await peers._discover(peer, fetcher)
                return peer
            finally:
                await engine.dispose()

    assert asyncio.run(discover(documents(f"{PEER}/actor/inbox"))).inbox_url == f"{PEER}/actor/inbox"
    with pytest.raises(FetchError, match="with an inbox there"):
        asyncio.run(discover(documents(None)))


def test_made_up_key_ids_cause_a_handful_of_key_fetches_and_the_api_keeps_answering(settings):
    """500 signed POSTs whose keyIds name actors of a peer that do not exist: each is refused (401), and the
    peer is asked for keys a handful of times, not 500 (an instance of its own: the budget is per process)."""
    peered = replace(settings, peers=(PEER,))
    with TestClient(app=create_app(peered), base_url=peered.base_url) as client:
        asked: list[str] = []

        def answer(request: httpx.Request) -> httpx.Response:
            asked.append(str(request.url))
            return httpx.Response(404)

        original = client.app.state.http_client
        client.app.state.http_client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        try:
            private = keypair(PEER)[0]
            for n in range(500):
                body = json.dumps(activity("Create", f"{PEER}/guides/{n}", actor=alice(PEER))).encode()
                url = f"{peered.base_url}/inbox"
                made_up = f"{PEER}/u/nobody-{uuid.uuid4().hex}#main-key"
                headers = signatures.sign_request(
                    "POST", url, body, made_up, private, {"Content-Type": "application/activity+json"}
                )
                assert client.post("/inbox", content=body, headers=headers).status_code == 401
                if n % 100 == 0:
                    assert client.get("/api/v1/communities").status_code == 200
        finally:
            client.blocking_portal.call(client.app.state.http_client.aclose)
            client.app.state.http_client = original
    assert 1 <= len(asked) <= 10, f"{len(asked)} key fetches for 500 made-up keyIds"


def test_a_key_is_fetched_again_only_after_the_window_and_once_for_requests_side_by_side():
    now = 0.0
    fetches = KeyFetches(clock=lambda: now)
    loads: list[str] = []

    async def load(pem: str | None) -> str | None:
        loads.append("asked")
        await asyncio.sleep(0.01)
        return pem

    async def side_by_side() -> list[str | None]:
        return list(await asyncio.gather(*(fetches.fetch("k1", "peer.test", lambda: load("PEM")) for _ in range(5))))

    assert asyncio.run(side_by_side()) == ["PEM"] * 5 and loads == ["asked"]
    # The key just fetched is answered from memory, not asked for again: to a request that arrives before the
    # first one has stored it, and to a signature that failed with it (which it then fails again)...
    assert asyncio.run(fetches.fetch("k1", "peer.test", lambda: load("OTHER"))) == "PEM" and len(loads) == 1
    now = 601.0  # ...until the window has passed: a rotated key gets through then.
    assert asyncio.run(fetches.fetch("k1", "peer.test", lambda: load("NEW"))) == "NEW"
    assert asyncio.run(fetches.fetch("gone", "peer.test", lambda: load(None))) is None
    asked = len(loads)
    assert asyncio.run(fetches.fetch("gone", "peer.test", lambda: load("PEM"))) is None and len(loads) == asked
    now = 662.0  # a failed fetch is tried again after a minute: the peer may only have been down
    assert asyncio.run(fetches.fetch("gone", "peer.test", lambda: load("PEM"))) == "PEM"
    for n in range(5):
        assert asyncio.run(fetches.fetch(f"bad{n}", "peer.test", lambda: load(None))) is None
    asked = len(loads)
    assert asyncio.run(fetches.fetch("k2", "peer.test", lambda: load("PEM"))) is None and len(loads) == asked
    assert asyncio.run(fetches.fetch("k2", "other.test", lambda: load("PEM"))) == "PEM"
    now = 723.0  # the peer's failures aged out
    assert asyncio.run(fetches.fetch("k3", "peer.test", lambda: load("PEM"))) == "PEM"


@pytest.mark.parametrize(
    "case",
    ["vouched", "not-activitypub", "owned-by-another", "another-id", "redirected-away", "weak-rsa"],
)
def test_a_key_is_taken_only_from_its_own_actor_document(settings, case):
    peered = replace(settings, peers=(PEER, OTHER))
    person = f"{PEER}/u/keyholder-{uuid.uuid4().hex[:8]}"
    private, public = signatures.generate_keypair(bits=1024) if case == "weak-rsa" else keypair(PEER)
    document = {
        "@context": [AS_CONTEXT, "https://w3id.org/security/v1"], "id": person, "type": "Person",
        "inbox": f"{person}/inbox",
        "publicKey": {"id": f"{person}#main-key", "owner": person, "publicKeyPem": public},
    }  # fmt: skip
    if case == "owned-by-another":
        document["publicKey"]["owner"] = f"{PEER}/u/someone-else"
    if case == "another-id":
        document["id"] = f"{PEER}/u/someone-else"

    def answer(request: httpx.Request) -> httpx.Response:
        if case == "redirected-away" and str(request.url) == person:
            return httpx.Response(302, headers={"Location": f"{OTHER}/u/keyholder"})
        if str(request.url) in (person, f"{OTHER}/u/keyholder"):
            media = "application/json" if case == "not-activitypub" else "application/activity+json"
            return httpx.Response(200, content=json.dumps(document).encode(), headers={"Content-Type": media})
        return httpx.Response(404)

    with TestClient(app=create_app(peered), base_url=peered.base_url) as client:
        original = client.app.state.http_client
        client.app.state.http_client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        try:
            payload = activity("Follow", f"{peered.base_url}/actor", actor=person)
            body = json.dumps(payload).encode()
            headers = signatures.sign_request(
                "POST", f"{peered.base_url}/inbox", body, f"{person}#main-key", private,
                {"Content-Type": "application/activity+json"},
            )  # fmt: skip
            status = client.post("/inbox", content=body, headers=headers).status_code
        finally:
            client.blocking_portal.call(client.app.state.http_client.aclose)
            client.app.state.http_client = original
    assert status == (202 if case == "vouched" else 401)
