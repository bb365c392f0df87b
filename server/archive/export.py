"""Writing a community archive: a gzip-compressed tar, produced as a stream of byte chunks.

Guides are read a page at a time (keyset on their slug) with their revisions, each page written to the tar stream
and handed on before the next is read, so a community of any size exports in bounded memory. The manifest is
written last, from the checksums taken on the way.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server import __version__
from server.archive import format as fmt
from server.db import utcnow
from server.models import Community, Guide, GuideRevision, Membership, MentorshipOffer, User
from server.settings import Settings

# Guides read and written per page: their revisions are in memory together.
PAGE = 100


class _Sink:
    """Where tarfile writes; what it wrote so far is taken away after each file."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class ArchiveWriter:
    def __init__(self) -> None:
        self._sink = _Sink()
        # Closed by close(), which writes the archive's end.
        self._tar = tarfile.open(fileobj=self._sink, mode="w|gz", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # noqa: SIM115
        self._mtime = int(time.time())
        self.files: list[fmt.FileEntry] = []

    def add(self, path: str, data: bytes) -> None:
        info = tarfile.TarInfo(path)
        info.size = len(data)
        info.mtime = self._mtime
        info.mode = 0o644
        self._tar.addfile(info, io.BytesIO(data))
        self.files.append(fmt.FileEntry(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))

    def take(self) -> bytes:
        return self._sink.take()

    def close(self) -> bytes:
        self._tar.close()
        return self._sink.take()


def person(user: User, settings: Settings) -> fmt.Person:
    return fmt.Person(
        uri=user.uri, username=user.username, display_name=user.display_name or user.username,
        instance=user.instance, local=user.local and user.instance == settings.host,
    )  # fmt: skip


async def export_archive(session: AsyncSession, settings: Settings, community_id: uuid.UUID) -> AsyncIterator[bytes]:
    """The archive of a local community, chunk by chunk."""
    if session.bind.dialect.name == "postgresql":
        # One snapshot for the whole export, so the pages agree with each other (SQLite's read transaction is one).
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    community = await session.get(Community, community_id)
    assert community is not None
    writer = ArchiveWriter()
    counts: dict[str, Any] = {"guides": 0, "revisions": 0, "offers": 0, "members": 0}
    writer.add(fmt.COMMUNITY, fmt.encode(_community_doc(community)))
    members = await _members(session, settings, community)
    counts["members"] = len(members)
    writer.add(fmt.MEMBERS, fmt.encode(fmt.MembersDoc(members=members)))
    yield writer.take()

    after = ""
    while True:
        guides = list(
            await session.scalars(
                select(Guide)
                .where(Guide.community_id == community.id, Guide.deleted_at.is_(None), Guide.slug > after)
                .order_by(Guide.slug)
                .limit(PAGE)
            )
        )
        if not guides:
            break
        after = guides[-1].slug
        revisions: dict[uuid.UUID, list[GuideRevision]] = {g.id: [] for g in guides}
        rows = await session.scalars(
            select(GuideRevision)
            .where(GuideRevision.guide_id.in_(list(revisions)))
            .order_by(GuideRevision.guide_id, GuideRevision.number)
        )
        for revision in rows:
            revisions[revision.guide_id].append(revision)
        for guide in guides:
            _add_guide(writer, settings, guide, revisions[guide.id])
            counts["guides"] += 1
            counts["revisions"] += len(revisions[guide.id])
        session.expunge_all()  # the page is written: nothing of it stays in memory
        yield writer.take()

    number = 0
    after_key: tuple[Any, ...] | None = None
    while True:
        query = select(MentorshipOffer).where(
            MentorshipOffer.community_id == community_id, MentorshipOffer.deleted_at.is_(None)
        )
        if after_key is not None:
            query = query.where(
                (MentorshipOffer.created_at > after_key[0])
                | ((MentorshipOffer.created_at == after_key[0]) & (MentorshipOffer.id > after_key[1]))
            )
        offers = list(await session.scalars(query.order_by(MentorshipOffer.created_at, MentorshipOffer.id).limit(PAGE)))
        if not offers:
            break
        after_key = (offers[-1].created_at, offers[-1].id)
        for offer in offers:
            number += 1
            writer.add(f"offers/{number}/offer.json", fmt.encode(_offer_doc(offer, settings)))
            writer.add(f"offers/{number}/origin.json", fmt.encode(fmt.OriginDoc(uri=offer.uri, url=offer.url)))
        counts["offers"] += len(offers)
        session.expunge_all()
        yield writer.take()

    manifest = fmt.Manifest(
        format=fmt.FORMAT, format_version=fmt.FORMAT_VERSION, archive_id=uuid.uuid4(), created_at=utcnow(),
        source=fmt.Source(instance=settings.host, base_url=settings.base_url, software="kith", version=__version__),
        community_uri=community.uri, counts=fmt.Counts(**counts), files=writer.files,
    )  # fmt: skip
    data = fmt.encode(manifest)
    writer.files = []
    writer.add(fmt.MANIFEST, data)
    yield writer.close()


def _community_doc(c: Community) -> fmt.CommunityDoc:
    return fmt.CommunityDoc(
        slug=c.slug, name=c.name, description=c.description, color=c.color,
        links=msgspec.convert(c.links or [], list[fmt.Link]), uri=c.uri, url=c.url, instance=c.instance,
        created_at=c.created_at, updated_at=c.updated_at,
    )  # fmt: skip


async def _members(session: AsyncSession, settings: Settings, community: Community) -> list[fmt.Member]:
    rows = await session.execute(
        select(User, Membership.role, Membership.created_at)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.community_id == community.id)
        .order_by(User.instance, User.username)
    )
    return [
        fmt.Member(person=person(user, settings), role=role, joined_at=joined_at)  # type: ignore[arg-type]
        for user, role, joined_at in rows
    ]


def _add_guide(writer: ArchiveWriter, settings: Settings, guide: Guide, revisions: list[GuideRevision]) -> None:
    base = f"guides/{guide.slug}"
    doc = fmt.GuideDoc(
        slug=guide.slug, title=guide.title, summary=guide.summary, tags=list(guide.tags), license=guide.license,
        status=guide.status, revision=guide.revision, derived_from=guide.derived_from,  # type: ignore[arg-type]
        author=person(guide.author, settings), created_at=guide.created_at, updated_at=guide.updated_at,
    )  # fmt: skip
    writer.add(f"{base}/guide.json", fmt.encode(doc))
    writer.add(f"{base}/origin.json", fmt.encode(fmt.OriginDoc(uri=guide.uri, url=guide.url)))
    for r in revisions:
        meta = fmt.RevisionDoc(
            number=r.number, title=r.title, summary=r.summary, tags=list(r.tags), license=r.license,
            status=r.status, author=person(r.author, settings),  # type: ignore[arg-type]
            summary_of_change=r.summary_of_change, created_at=r.created_at,
        )  # fmt: skip
        writer.add(f"{base}/revisions/{r.number}.json", fmt.encode(meta))
        writer.add(f"{base}/revisions/{r.number}.md", r.body_markdown.encode())


def _offer_doc(offer: MentorshipOffer, settings: Settings) -> fmt.OfferDoc:
    return fmt.OfferDoc(
        title=offer.title, description_markdown=offer.description_markdown, topics=list(offer.topics),
        format=offer.format, capacity=offer.capacity, languages=list(offer.languages),  # type: ignore[arg-type]
        availability=offer.availability, status=offer.status, mentor=person(offer.mentor, settings),  # type: ignore[arg-type]
        created_at=offer.created_at, updated_at=offer.updated_at,
    )  # fmt: skip
