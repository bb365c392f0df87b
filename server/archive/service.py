"""Exporting a community to an archive and importing one.

An import decodes the archive and hands each entry to the domain that owns it (accounts, communities, guides,
mentorship), whose writer checks it as it checks a local write and renders its HTML from its markdown: nothing
of the archive's is trusted as HTML. It runs in one transaction: a refused archive leaves nothing behind. What
it makes is local to this instance, with this instance's URIs, and is recorded as local changes are, so peers
hear of it and search indexes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any, TypeVar

import msgspec
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.schemas import RemotePerson
from server.accounts.security import Principal
from server.accounts.service import USERNAME_RE, AccountService, username_from
from server.archive import format as fmt
from server.archive import reader
from server.archive.export import export_archive
from server.communities.schemas import CommunityCreate, Slug
from server.communities.service import CommunityService
from server.errors import ProblemError, conflict, forbidden, invalid
from server.guides import imports as guide_imports
from server.guides.schemas import ImportedGuide, ImportedRevision
from server.mentorship import imports as offer_imports
from server.mentorship.schemas import OfferCreate
from server.models import Community, User
from server.settings import Settings, host_of

S = TypeVar("S")


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
        # Reading and hashing the whole archive is long work without a query: off the event loop.
        verified = await asyncio.to_thread(reader.verify, archive)
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
        self.counts = {"guides": 0, "revisions": 0, "offers": 0}

    async def run(self, archive: IO[bytes], slug: str | None) -> Community:
        if slug is not None:
            try:
                msgspec.convert(slug, Slug)
            except msgspec.ValidationError as exc:
                raise invalid("slug", "use 1-64 lowercase letters, digits and '-', not at either end") from exc
        doc = reader.decode(fmt.COMMUNITY, self.verified.community, fmt.CommunityDoc)
        members = reader.decode(fmt.MEMBERS, self.verified.members, fmt.MembersDoc).members
        data = _checked(
            fmt.COMMUNITY, CommunityCreate, slug=slug or doc.slug, name=doc.name, description=doc.description,
            color=doc.color, links=msgspec.to_builtins(doc.links),
        )  # fmt: skip
        communities = CommunityService(self.session, self.settings)
        community = await communities.add_imported(
            data, created_at=doc.created_at, updated_at=doc.updated_at, archive_id=self.manifest.archive_id,
            source_uri=doc.uri,
        )  # fmt: skip
        joined: set[uuid.UUID] = set()
        for member in members:
            user = await self._person(member.person, fmt.MEMBERS)
            if user.id in joined:
                raise reader.damaged(f"{fmt.MEMBERS} names {member.person.uri} twice")
            joined.add(user.id)
            await communities.add_imported_member(community, user.id, member.role, member.joined_at)
        guides = guide_imports.ImportedGuides(self.session, self.settings, community)
        for group in reader.entries(archive, self.verified.checksums):
            where = f"{group.kind}s/{group.key}"
            with _within(where):
                if group.kind == "guide":
                    await self._guide(guides, group, where)
                else:
                    await self._offer(community, group, where)
        await guides.flush()
        expected = self.manifest.counts
        found = (self.counts["guides"], self.counts["revisions"], self.counts["offers"], len(members))
        if (expected.guides, expected.revisions, expected.offers, expected.members) != found:
            raise reader.damaged("holds other numbers of guides, revisions, offers or members than its manifest says")
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
            user = await accounts.local_user(username) or await accounts.add_claimable_user(
                username, person.display_name
            )
        else:
            if host_of(person.uri) != person.instance.lower():
                raise reader.damaged(f"{where}: {person.uri} is not on the instance {person.instance!r}")
            remote = RemotePerson(
                uri=person.uri, instance=person.instance.lower(), username=person.username,
                display_name=person.display_name,
            )  # fmt: skip
            user = await accounts.apply_remote_person(remote)
        self.people[person.uri] = user
        return user

    async def _guide(self, guides: guide_imports.ImportedGuides, group: reader.Group, where: str) -> None:
        doc = reader.decode(f"{where}/guide.json", _file(group, "guide.json"), fmt.GuideDoc)
        origin = reader.decode(f"{where}/origin.json", _file(group, "origin.json"), fmt.OriginDoc)
        if doc.slug != group.key:
            raise reader.damaged(f"{where}/guide.json names the slug {doc.slug!r}")
        numbers = range(1, doc.revision + 1)
        # Counted first: the names of a forged revision number in the billions are never spelled out.
        if len(group.files) != 2 + 2 * doc.revision or set(group.files) != {"guide.json", "origin.json"} | {
            f"revisions/{n}.{ext}" for n in numbers for ext in ("json", "md")
        }:
            raise reader.damaged(f"{where} must hold revisions 1 to {doc.revision}, each as .json and .md")
        revisions = []
        for number in numbers:
            name = f"revisions/{number}.json"
            meta = reader.decode(f"{where}/{name}", group.files[name], fmt.RevisionDoc)
            if meta.number != number:
                raise reader.damaged(f"{where}/{name} says it is revision {meta.number}")
            revisions.append(
                ImportedRevision(
                    number=number,
                    title=meta.title,
                    summary=meta.summary,
                    body_markdown=_text(group, f"revisions/{number}.md", where),
                    tags=meta.tags,
                    license=meta.license,
                    status=meta.status,
                    author_id=(await self._person(meta.author, where)).id,
                    summary_of_change=meta.summary_of_change,
                    created_at=meta.created_at,
                )  # fmt: skip
            )
        imported = ImportedGuide(
            slug=doc.slug, title=doc.title, summary=doc.summary, tags=doc.tags, license=doc.license,
            status=doc.status, derived_from=doc.derived_from, author_id=(await self._person(doc.author, where)).id,
            created_at=doc.created_at, updated_at=doc.updated_at, revisions=revisions,
            former_uri=_former(origin, self.settings),
        )  # fmt: skip
        await guides.add(imported)
        self.counts["guides"] += 1
        self.counts["revisions"] += doc.revision

    async def _offer(self, community: Community, group: reader.Group, where: str) -> None:
        if set(group.files) != {"offer.json", "origin.json"}:
            raise reader.damaged(f"{where} must hold offer.json and origin.json")
        doc = reader.decode(f"{where}/offer.json", group.files["offer.json"], fmt.OfferDoc)
        origin = reader.decode(f"{where}/origin.json", group.files["origin.json"], fmt.OriginDoc)
        data = _checked(
            where, OfferCreate, title=doc.title, description_markdown=doc.description_markdown, topics=doc.topics,
            format=doc.format, capacity=doc.capacity, languages=doc.languages, availability=doc.availability,
            status=doc.status,
        )  # fmt: skip
        mentor = await self._person(doc.mentor, where)
        await offer_imports.add_imported(
            self.session,
            self.settings,
            community,
            mentor.id,
            data,
            doc.created_at,
            doc.updated_at,
            former_uri=_former(origin, self.settings),
        )
        self.counts["offers"] += 1


@contextlib.contextmanager
def _within(where: str) -> Iterator[None]:
    """A domain rule's refusal of an entry, named by the entry's place in the archive."""
    try:
        yield
    except ProblemError as exc:
        if exc.status != 422 or (exc.errors and exc.errors[0].field == "archive"):
            raise
        raise reader.damaged(f"{where}: {exc.detail}") from exc


def _former(origin: fmt.OriginDoc, settings: Settings) -> str | None:
    """The uri an entry had where it was exported, which it keeps as its former uri (a moved entry is found by it,
    and its old page redirects to its new one); none when it was exported from this very instance."""
    return origin.uri if host_of(origin.uri) != settings.host else None


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
