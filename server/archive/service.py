"""Exporting a community to an archive and importing one: the archive's only reader and writer.

An import writes through the rules of each domain (communities, guides, mentorship): every text is checked as a
local write is, and every HTML body is rendered here from its markdown, never taken from the archive. It runs in
one transaction: a refused archive leaves nothing behind. What it makes is local to this instance, with this
instance's URIs, and is recorded as local changes are, so peers hear of it and search indexes it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import IO, Any, TypeVar

import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server import changes
from server.accounts.schemas import RemotePerson
from server.accounts.security import Principal
from server.accounts.service import USERNAME_RE, AccountService, username_from
from server.archive import format as fmt
from server.archive import reader
from server.archive.export import export_archive
from server.communities import rules as community_rules
from server.communities.schemas import CommunityCreate
from server.communities.service import CommunityService
from server.db import new_id
from server.errors import ProblemError, conflict, forbidden
from server.guides import rules as guide_rules
from server.guides.schemas import GuideCreate
from server.markdown import render
from server.mentorship import rules as offer_rules
from server.mentorship.schemas import OfferCreate
from server.models import Community, CommunityImport, Guide, GuideRevision, Membership, MentorshipOffer, User
from server.refs import key_of
from server.rules import clean_text, normalize_labels
from server.settings import Settings, host_of

S = TypeVar("S")
# Entries written and announced per flush.
BATCH = 200
MAX_SUMMARY_OF_CHANGE = 300


class ArchiveService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    # export

    async def exportable(self, principal: Principal | None, ref: str) -> Community:
        """The local community `principal` may export: its moderators and the instance's admins may."""
        communities = CommunityService(self.session, self.settings)
        community = await communities.get_local(ref)
        if principal is None or not (principal.is_admin or await communities.role(principal, community) == "moderator"):
            raise forbidden(f"Only moderators of {community.slug!r} and instance admins can export it.")
        return community

    async def exportable_by_operator(self, ref: str) -> Community:
        """The local community an operator exports from the command line, who may export any."""
        return await CommunityService(self.session, self.settings).get_local(ref)

    def export(self, community_id: uuid.UUID) -> AsyncIterator[bytes]:
        """The archive, chunk by chunk, read through this service's session."""
        return export_archive(self.session, self.settings, community_id)

    # import

    async def import_as(self, principal: Principal, archive: IO[bytes], slug: str | None = None) -> Community:
        if not principal.is_admin:
            raise forbidden("Only an instance admin (with an admin token) can import a community.")
        return await self.import_archive(archive, slug)

    async def import_archive(self, archive: IO[bytes], slug: str | None = None) -> Community:
        """Recreate the archive's community here, under `slug` if given; all of it, or nothing."""
        verified = reader.verify(archive)
        try:
            community = await _Import(self.session, self.settings, verified).run(archive, slug)
            await self.session.commit()
        except IntegrityError as exc:
            await self.session.rollback()
            raise conflict("The archive's community conflicts with what this instance holds.") from exc
        except BaseException:
            await self.session.rollback()
            raise
        return community


class _Import:
    def __init__(self, session: AsyncSession, settings: Settings, verified: reader.Verified) -> None:
        self.session = session
        self.settings = settings
        self.verified = verified
        self.manifest = verified.manifest
        self.people: dict[str, User] = {}
        self.pending: list[changes.Change] = []
        self.revisions: list[GuideRevision] = []
        self.counts = {"guides": 0, "revisions": 0, "offers": 0}

    async def run(self, archive: IO[bytes], slug: str | None) -> Community:
        doc = reader.decode(fmt.COMMUNITY, self.verified.community, fmt.CommunityDoc)
        members = reader.decode(fmt.MEMBERS, self.verified.members, fmt.MembersDoc).members
        if await self.session.get(CommunityImport, self.manifest.archive_id) is not None:
            raise conflict(f"Archive {self.manifest.archive_id} was imported here already.")
        community = await self._community(doc, slug)
        joined: set[uuid.UUID] = set()
        for member in members:
            user = await self._person(member.person, fmt.MEMBERS)
            if user.id in joined:
                raise reader.damaged(f"{fmt.MEMBERS} names {member.person.uri} twice")
            joined.add(user.id)
            self.session.add(
                Membership(community_id=community.id, user_id=user.id, role=member.role, created_at=member.joined_at)
            )
        await changes.record(self.session, self.settings, "Create", community)
        for group in reader.entries(archive, self.verified.checksums):
            if group.kind == "guide":
                await self._guide(community, group)
            else:
                await self._offer(community, group)
            if len(self.pending) >= BATCH:
                await self._announce()
        await self._announce()
        expected = self.manifest.counts
        if (expected.guides, expected.revisions, expected.offers, expected.members) != (
            self.counts["guides"], self.counts["revisions"], self.counts["offers"], len(members)
        ):  # fmt: skip
            raise reader.damaged("holds other numbers of guides, revisions, offers or members than its manifest says")
        return community

    async def _announce(self) -> None:
        await self.session.flush()
        # A revision names its guide by id alone: its row goes in once the guide's is there.
        self.session.add_all(self.revisions)
        self.revisions = []
        await self.session.flush()
        await changes.record_all(self.session, self.settings, self.pending)
        self.pending = []

    async def _community(self, doc: fmt.CommunityDoc, slug: str | None) -> Community:
        slug = slug or doc.slug
        try:
            data = msgspec.convert(
                {"slug": slug, "name": doc.name, "description": doc.description, "color": doc.color,
                 "links": msgspec.to_builtins(doc.links)},
                CommunityCreate,
            )  # fmt: skip
        except msgspec.ValidationError as exc:
            raise reader.damaged(f"{fmt.COMMUNITY}: {exc}") from exc
        community_rules.local_slug(data.slug)
        taken = await self.session.scalar(
            select(Community.id).where(Community.slug == data.slug, Community.instance == self.settings.host)
        )
        if taken is not None:
            raise conflict(f"A community with slug {data.slug!r} exists here already; import it under another slug.")
        uri = f"{self.settings.base_url}/c/{data.slug}"
        community = Community(
            uri=uri, url=uri, slug=data.slug, name=community_rules.name(data.name),
            description=community_rules.description(data.description), color=community_rules.color(data.color),
            links=msgspec.to_builtins(data.links), local=True, instance=self.settings.host,
            created_at=doc.created_at, updated_at=doc.updated_at,
        )  # fmt: skip
        self.session.add(community)
        try:
            await self.session.flush()
            self.session.add(
                CommunityImport(archive_id=self.manifest.archive_id, community_id=community.id, source_uri=doc.uri)
            )
            await self.session.flush()
        except IntegrityError as exc:
            # Another import of the same archive, or of the same slug, got there first.
            raise conflict(f"Archive {self.manifest.archive_id} or slug {data.slug!r} was just imported.") from exc
        return community

    async def _person(self, person: fmt.Person, where: str) -> User:
        """The account of someone named by the archive: a local person of the old instance is the local account
        of that username here, made (unable to sign in until an admin sets a password) if there is none; a
        person of another instance stays a reference to them there."""
        known = self.people.get(person.uri)
        if known is not None:
            return known
        accounts = AccountService(self.session, self.settings)
        if person.local or host_of(person.uri) == self.settings.host:
            username = person.username.lower()
            if not USERNAME_RE.match(username):
                username = username_from(person.username)
            user = await accounts.local_user(username)
            if user is None:
                user = await self._claimable(username, person.display_name)
        else:
            if host_of(person.uri) != person.instance.lower():
                raise reader.damaged(f"{where}: {person.uri} is not on the instance {person.instance!r}")
            user = await accounts.apply_remote_person(
                RemotePerson(
                    uri=person.uri,
                    instance=person.instance.lower(),
                    username=person.username,
                    display_name=person.display_name,
                )  # fmt: skip
            )
        self.people[person.uri] = user
        return user

    async def _claimable(self, username: str, display_name: str) -> User:
        """A local account waiting for its person: with no password nobody signs in as it, until an admin gives it
        one (`kith user set-password`). Its username is the one it had, even one reserved for new sign-ups here:
        it names the same person, on the instance that took the community over."""
        uri = f"{self.settings.base_url}/u/{username}"
        user = User(
            username=username, instance=self.settings.host, display_name=display_name.strip()[:100] or username,
            password_hash=None, is_admin=False, local=True, uri=uri, url=uri,
        )  # fmt: skip
        self.session.add(user)
        await self.session.flush()
        return user

    async def _guide(self, community: Community, group: reader.Group) -> None:
        where = f"guides/{group.key}"
        doc = reader.decode(f"{where}/guide.json", _file(group, "guide.json"), fmt.GuideDoc)
        reader.decode(f"{where}/origin.json", _file(group, "origin.json"), fmt.OriginDoc)
        if doc.slug != group.key:
            raise reader.damaged(f"{where}/guide.json names the slug {doc.slug!r}")
        numbers = range(1, doc.revision + 1)
        # Counted first: the names of a forged revision number in the billions are never spelled out.
        if len(group.files) != 2 + 2 * doc.revision or set(group.files) != {"guide.json", "origin.json"} | {
            f"revisions/{n}.{ext}" for n in numbers for ext in ("json", "md")
        }:
            raise reader.damaged(f"{where} must hold revisions 1 to {doc.revision}, each as .json and .md")
        body = _text(group, f"revisions/{doc.revision}.md", where)
        fields = _guide_fields(where, doc.title, body, doc.summary, doc.tags, doc.license, doc.status)
        body_html = render(fields["body_markdown"])
        guide_rules.body(fields["body_markdown"], body_html)
        guide_id = new_id()
        guide = Guide(
            id=guide_id, uri=f"{self.settings.base_url}/guides/{guide_id}",
            url=f"{self.settings.base_url}/c/{community.slug}/guides/{doc.slug}", community=community,
            author=await self._person(doc.author, where), slug=doc.slug, body_html=body_html,
            tags_key=key_of(fields["tags"]), revision=doc.revision, local=True, instance=self.settings.host,
            derived_from=doc.derived_from, created_at=doc.created_at, updated_at=doc.updated_at, **fields,
        )  # fmt: skip
        self.session.add(guide)
        for number in numbers:
            meta = reader.decode(f"{where}/revisions/{number}.json", group.files[f"revisions/{number}.json"],
                                 fmt.RevisionDoc)  # fmt: skip
            if meta.number != number:
                raise reader.damaged(f"{where}/revisions/{number}.json says it is revision {meta.number}")
            text = _text(group, f"revisions/{number}.md", where)
            values = _guide_fields(where, meta.title, text, meta.summary, meta.tags, meta.license, meta.status)
            guide_rules.body(values["body_markdown"], "")
            self.revisions.append(
                GuideRevision(
                    guide_id=guide_id,
                    number=number,
                    author_id=(await self._person(meta.author, where)).id,
                    summary_of_change=clean_text("summary_of_change", meta.summary_of_change, MAX_SUMMARY_OF_CHANGE),
                    created_at=meta.created_at,
                    **values,
                )
            )
        self.counts["guides"] += 1
        self.counts["revisions"] += doc.revision
        self.pending.append(changes.Change.of("Create", guide, public=guide_rules.is_public(guide.status)))

    async def _offer(self, community: Community, group: reader.Group) -> None:
        where = f"offers/{group.key}"
        if set(group.files) != {"offer.json", "origin.json"}:
            raise reader.damaged(f"{where} must hold offer.json and origin.json")
        doc = reader.decode(f"{where}/offer.json", group.files["offer.json"], fmt.OfferDoc)
        reader.decode(f"{where}/origin.json", group.files["origin.json"], fmt.OriginDoc)
        data = _checked(
            where, OfferCreate, title=doc.title, description_markdown=doc.description_markdown, topics=doc.topics,
            format=doc.format, capacity=doc.capacity, languages=doc.languages, availability=doc.availability,
            status=doc.status,
        )  # fmt: skip
        topics = normalize_labels("topics", data.topics)
        languages = normalize_labels("languages", data.languages)
        offer_id = new_id()
        uri = f"{self.settings.base_url}/mentorship/offers/{offer_id}"
        offer = MentorshipOffer(
            id=offer_id, uri=uri, url=uri, community=community, mentor=await self._person(doc.mentor, where),
            title=offer_rules.title(data.title), description_markdown=data.description_markdown,
            description_html=render(data.description_markdown), topics=topics, topics_key=key_of(topics),
            format=data.format, capacity=data.capacity, seats_taken=0, languages=languages,
            languages_key=key_of(languages), availability=offer_rules.availability(data.availability),
            status=data.status, local=True, instance=self.settings.host, created_at=doc.created_at,
            updated_at=doc.updated_at,
        )  # fmt: skip
        self.session.add(offer)
        self.counts["offers"] += 1
        self.pending.append(changes.Change.of("Create", offer))


def _file(group: reader.Group, name: str) -> bytes:
    data = group.files.get(name)
    if data is None:
        raise reader.damaged(f"{group.kind}s/{group.key} has no {name}")
    return data


def _text(group: reader.Group, name: str, where: str) -> str:
    try:
        return _file(group, name).decode()
    except UnicodeDecodeError as exc:
        raise reader.damaged(f"{where}/{name} is not UTF-8 text") from exc


def _checked(where: str, schema: type[S], **values: Any) -> S:
    """`values` through the same constraints as the API's request body."""
    try:
        return msgspec.convert(values, schema)
    except msgspec.ValidationError as exc:
        raise reader.damaged(f"{where}: {exc}") from exc


def _guide_fields(
    where: str, title: str, body: str, summary: str, tags: list[str], license: str, status: str
) -> dict[str, Any]:
    """A guide's or revision's columns, through the rules of a local write."""
    data = _checked(
        where, GuideCreate, title=title, body_markdown=body, summary=summary, tags=tags, license=license,
        status=status,
    )  # fmt: skip
    assert data.title is not None and data.body_markdown is not None and data.status is not None
    try:
        return {
            "title": guide_rules.title(data.title),
            "summary": guide_rules.summary(data.summary or ""),
            "body_markdown": data.body_markdown,
            "tags": normalize_labels("tags", data.tags or []),
            "license": guide_rules.license_(data.license or guide_rules.DEFAULT_LICENSE),
            "status": data.status,
        }
    except ProblemError as exc:
        raise reader.damaged(f"{where}: {exc.detail}") from exc
