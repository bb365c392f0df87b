"""The Atom feeds: what they hold, that readers parse them, conditional GET, and the pages that link to them."""

from __future__ import annotations

import asyncio
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from server.accounts.schemas import RemotePerson
from server.communities.schemas import RemoteCommunity
from server.communities.service import CommunityService
from server.db import create_engine, create_sessionmaker
from server.guides.schemas import RemoteGuide
from server.guides.service import GuideService
from server.settings import Settings
from tests.conftest import join
from tests.support.html import assert_safe, elements

ATOM_NS = "{http://www.w3.org/2005/Atom}"
PEER = "peer.example"
ATOM_SCHEMA = etree.RelaxNG(etree.parse(str(Path(__file__).parents[1] / "fixtures" / "atom.rng")))


def _guide(client, person, community, **fields) -> dict:  # type: ignore[no-untyped-def]
    body = {"title": f"Guide {uuid.uuid4().hex[:6]}", "body_markdown": "# Hello\n\nFirst *text*.", **fields}
    response = client.post(f"/api/v1/communities/{community['slug']}/guides", json=body, headers=person.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _edit(client, person, guide, **fields) -> dict:  # type: ignore[no-untyped-def]
    url = f"/api/v1/guides/{guide['id']}"
    etag = client.get(url, headers=person.auth).headers["etag"]
    edited = client.patch(url, json=fields, headers={**person.auth, "If-Match": etag})
    assert edited.status_code == 200, edited.text
    return edited.json()


def _parsed(response):  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    # RFC 4287's own schema, stricter than a reader: feedparser forgives what it can.
    document = etree.fromstring(response.content)
    assert ATOM_SCHEMA.validate(document), ATOM_SCHEMA.error_log
    assert feed.version == "atom10"
    return feed


def _entry(feed, entry_id):  # type: ignore[no-untyped-def]
    return next((e for e in feed.entries if e.id == entry_id), None)


def _contents(xml: bytes) -> list[str]:
    """The HTML each entry carries, as a reader gets it once the XML is parsed (before any sanitizing of its own)."""
    root = ET.fromstring(xml)
    return [content.text or "" for content in root.iter(f"{ATOM_NS}content")]


def _feed_links(html: str) -> list[dict[str, str]]:
    return [
        attrs
        for tag, attrs in elements(html)
        if tag == "link" and attrs.get("rel") == "alternate" and attrs.get("type") == "application/atom+xml"
    ]


def test_instance_feed_holds_published_guides_and_never_drafts_or_deleted(visitor, client, admin, community):
    published = _guide(client, admin, community, summary="How we start", tags=["onboarding"])
    draft = _guide(client, admin, community, status="draft")
    deleted = _guide(client, admin, community)
    assert client.delete(f"/api/v1/guides/{deleted['id']}", headers=admin.auth).status_code == 204
    response = visitor.get("/feeds/guides.atom")
    feed = _parsed(response)
    assert feed.feed.id == "http://127.0.0.1:8000/feeds/guides.atom"
    assert feed.feed.title == "Guides on Kith Test"
    entry = _entry(feed, published["uri"])
    assert entry is not None
    assert entry.title == published["title"]
    assert entry.link == published["url"]
    assert entry.author == admin.username
    assert entry.summary == "How we start"
    assert {t.term for t in entry.tags} >= {community["slug"], "onboarding"}
    assert entry.rights == "CC-BY-4.0"
    assert "<h1>Hello</h1>" in entry.content[0].value
    ids = {e.id for e in feed.entries}
    assert draft["uri"] not in ids and deleted["uri"] not in ids
    assert len(feed.entries) <= 50
    # Feeds are not pages: no session cookie, no page policy, but the headers every response gets.
    assert "set-cookie" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def test_an_edit_changes_updated_but_not_the_entry_id(visitor, client, admin, community):
    guide = _guide(client, admin, community)
    path = f"/feeds/c/{community['slug']}.atom"
    before = _entry(_parsed(visitor.get(path)), guide["uri"])
    edited = _edit(client, admin, guide, title="Renamed guide", body_markdown="New text")
    after_feed = _parsed(visitor.get(path))
    after = _entry(after_feed, guide["uri"])
    assert after is not None and after.id == before.id == guide["uri"]
    assert after.title == "Renamed guide" and "New text" in after.content[0].value
    assert after.updated_parsed > before.updated_parsed or after.updated != before.updated
    assert after.published == before.published
    assert datetime.fromisoformat(after.updated) == datetime.fromisoformat(edited["updated_at"])
    # The feed's own `updated` is its newest entry's.
    assert after_feed.feed.updated == after.updated


def test_a_repeated_conditional_get_is_a_304(visitor, client, admin, community):
    guide = _guide(client, admin, community)
    path = f"/feeds/c/{community['slug']}.atom"
    first = visitor.get(path)
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    again = visitor.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert visitor.get(path, headers={"If-Modified-Since": last_modified}).status_code == 304
    assert visitor.get(path, headers={"If-None-Match": f'W/{etag}, "other"'}).status_code == 304
    # If-None-Match decides when both are sent, and a stale one means the feed again.
    assert (
        visitor.get(path, headers={"If-None-Match": '"stale"', "If-Modified-Since": last_modified}).status_code == 200
    )
    assert visitor.get(path, headers={"If-Modified-Since": "not a date"}).status_code == 200
    _edit(client, admin, guide, body_markdown="Changed")
    changed = visitor.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_script_in_markdown_never_reaches_a_feed(visitor, client, admin, community):
    body = (
        '<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror="alert(1)">'
        ' <iframe src="//e"></iframe>\n\n[ok](https://example.org)'
    )
    guide = _guide(client, admin, community, body_markdown=body, tags=["xss-check"])
    _edit(client, admin, guide, body_markdown=body + "\n\n<script>alert(2)</script>")
    for path in (
        f"/feeds/c/{community['slug']}.atom",
        "/feeds/tags/xss-check.atom",
        f"/feeds/guides/{guide['id']}/revisions.atom",
    ):
        response = visitor.get(path)
        _parsed(response)
        assert b"<script" not in response.content.lower()
        contents = _contents(response.content)
        assert contents
        for html in contents:
            assert_safe(html)  # elements and attributes as a reader's browser sees them: text stays text


def test_community_and_tag_feeds_hold_their_own_guides(visitor, client, admin, people, community):
    tag = f"t{uuid.uuid4().hex[:6]}"
    tagged = _guide(client, admin, community, tags=[tag, "other"])
    plain = _guide(client, admin, community)
    other_community = client.post(
        "/api/v1/communities", json={"slug": f"o-{uuid.uuid4().hex[:8]}", "name": "Other"}, headers=admin.auth
    ).json()
    elsewhere = _guide(client, admin, other_community, tags=[tag])

    by_community = _parsed(visitor.get(f"/feeds/c/{community['slug']}.atom"))
    assert by_community.feed.title == f"Guides of {community['name']}"
    assert {tagged["uri"], plain["uri"]} <= {e.id for e in by_community.entries}
    assert elsewhere["uri"] not in {e.id for e in by_community.entries}

    by_tag = _parsed(visitor.get(f"/feeds/tags/{tag.upper()}.atom"))
    assert by_tag.feed.title == f"Guides tagged “{tag}”"
    assert {e.id for e in by_tag.entries} == {tagged["uri"], elsewhere["uri"]}
    # A tag's wildcards are literal: `%` matches no other tag.
    assert _parsed(visitor.get("/feeds/tags/%25.atom")).entries == []

    empty = client.post(
        "/api/v1/communities", json={"slug": f"e-{uuid.uuid4().hex[:8]}", "name": "Empty"}, headers=admin.auth
    ).json()
    quiet = _parsed(visitor.get(f"/feeds/c/{empty['slug']}.atom"))
    assert quiet.entries == [] and quiet.feed.updated


def test_unknown_feeds_are_404_and_the_short_address_redirects(visitor, client, admin, community):
    assert visitor.get("/feeds/c/no-such-community.atom").status_code == 404
    assert visitor.get(f"/feeds/c/{community['slug']}").status_code == 404
    assert visitor.get(f"/feeds/c/{community['slug']}.rss").status_code == 404
    assert visitor.get(f"/feeds/guides/{uuid.uuid4()}/revisions.atom").status_code == 404
    assert visitor.get("/feeds/tags/.atom").status_code == 404
    moved = visitor.get(f"/c/{community['slug']}/feed.atom", follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == f"/feeds/c/{community['slug']}.atom"


def test_revisions_feed_has_an_entry_per_revision(visitor, client, admin, people, community):
    guide = _guide(client, admin, community, body_markdown="Tag\nBuild")
    _edit(client, admin, guide, body_markdown="Tag\nBuild\nAnnounce", summary_of_change="announce too")
    feed = _parsed(visitor.get(f"/feeds/guides/{guide['id']}/revisions.atom"))
    assert feed.feed.title == f"Revisions of “{guide['title']}”"
    base = f"http://127.0.0.1:8000/api/v1/guides/{guide['id']}/revisions"
    assert [e.id for e in feed.entries] == [f"{base}/2", f"{base}/1"]
    newest = feed.entries[0]
    assert newest.title == "Revision 2: announce too"
    assert newest.link.endswith(f"/c/{community['slug']}/guides/{guide['slug']}/revisions?from=1&to=2")
    assert "+Announce" in newest.content[0].value
    assert guide["uri"] not in {e.id for e in feed.entries}

    author = people.make()
    join(client, admin, community, author)
    draft = _guide(client, author, community, status="draft")
    assert visitor.get(f"/feeds/guides/{draft['id']}/revisions.atom").status_code == 404


def test_pages_link_to_their_feeds_in_the_head(visitor, client, admin, community):
    guide = _guide(client, admin, community, tags=["gardening"])
    home = _feed_links(visitor.get("/").text)
    assert [link["href"] for link in home] == ["/feeds/guides.atom"]
    assert home[0]["title"] == "Guides on Kith Test"
    page = _feed_links(visitor.get(f"/c/{community['slug']}").text)
    assert [link["href"] for link in page] == [f"/feeds/c/{community['slug']}.atom"]
    guide_page = _feed_links(visitor.get(f"/c/{community['slug']}/guides/{guide['slug']}").text)
    assert f"/feeds/guides/{guide['id']}/revisions.atom" in [link["href"] for link in guide_page]
    revisions = _feed_links(visitor.get(f"/c/{community['slug']}/guides/{guide['slug']}/revisions").text)
    assert [link["href"] for link in revisions] == [f"/feeds/guides/{guide['id']}/revisions.atom"]
    by_tag = _feed_links(visitor.get("/search", params={"tag": "gardening"}).text)
    assert [link["href"] for link in by_tag] == ["/feeds/tags/gardening.atom"]
    assert _feed_links(visitor.get("/search", params={"q": "gardening"}).text) == []
    for link in home + page + guide_page + by_tag:
        assert visitor.get(link["href"]).status_code == 200


@pytest.fixture
def remote_guide(settings: Settings) -> dict:
    """A peer's community and guide, kept through the domain services as the federation worker keeps them."""
    slug = f"r-{uuid.uuid4().hex[:6]}"
    community_uri = f"https://{PEER}/c/{slug}"
    guide_uri = f"https://{PEER}/guides/{uuid.uuid4()}"
    now = datetime.now(UTC)

    async def work() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                await CommunityService(session, settings).apply_remote(
                    RemoteCommunity(
                        uri=community_uri,
                        instance=PEER,
                        url=community_uri,
                        slug_hint=slug,
                        name="Peer gardeners",
                        description="",
                        color=None,
                        links=[],
                        published=now,
                        updated=now,
                    )  # fmt: skip
                )
                await GuideService(session, settings).apply_remote(
                    RemoteGuide(
                        uri=guide_uri,
                        instance=PEER,
                        url=f"https://{PEER}/c/{slug}/guides/seeds",
                        community_uris=[community_uri],
                        audience=[community_uri],
                        author=RemotePerson(uri=f"https://{PEER}/u/ines", instance=PEER, username="ines"),
                        title="Saving seeds",
                        summary="",
                        body_markdown="Dry them.",
                        body_html="<p>Dry them.</p><script>alert(1)</script>",
                        tags=["seeds"],
                        license="CC-BY-SA-4.0",
                        slug_hint="seeds",
                        published=now,
                        updated=now,
                    )  # fmt: skip
                )
        finally:
            await engine.dispose()

    asyncio.run(work())
    return {"slug": slug, "uri": guide_uri, "url": f"https://{PEER}/c/{slug}/guides/seeds"}


def test_a_peers_community_feed_attributes_its_guides_to_their_origin(visitor, remote_guide):
    ref = f"{remote_guide['slug']}@{PEER}"
    response = visitor.get(f"/feeds/c/{ref}.atom")
    feed = _parsed(response)
    assert feed.feed.link == f"http://127.0.0.1:8000/c/{ref}"
    entry = _entry(feed, remote_guide["uri"])
    assert entry is not None
    assert entry.link == remote_guide["url"]
    assert entry.author == "ines"
    assert entry.rights == "CC-BY-SA-4.0"
    assert f"on {PEER}" in entry.content[0].value and remote_guide["url"] in entry.content[0].value
    assert {t.term for t in entry.tags} >= {ref, "seeds"}
    assert b"<script" not in response.content.lower()
    for html in _contents(response.content):
        assert_safe(html)
    page = _feed_links(visitor.get(f"/c/{ref}").text)
    assert [link["href"] for link in page] == [f"/feeds/c/{ref}.atom"]
    # Our copy of a peer's guide has no revisions of ours: its revisions feed is empty, not an error.
    guide_id = next(
        link["href"].split("/")[3]
        for link in _feed_links(visitor.get(f"/c/{ref}/guides/seeds").text)
        if link["href"].endswith("/revisions.atom")
    )
    assert _parsed(visitor.get(f"/feeds/guides/{guide_id}/revisions.atom")).entries == []
