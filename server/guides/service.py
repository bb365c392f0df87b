"""Guides and their revisions: the only code that writes them, for a local author and for a peer alike."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server import changes
from server.accounts.security import Principal
from server.accounts.service import AccountService, person_ref
from server.communities.moving import not_moved_locked
from server.communities.service import CommunityService
from server.db import new_id, utcnow
from server.errors import conflict, forbidden, invalid, not_found
from server.etags import check_if_match
from server.guides import adaptation, moves, rules, schemas
from server.guides.batch import RemoteGuideBatch
from server.guides.queries import etag, revision_detail, to_schema
from server.markdown import render
from server.models import Community, Guide, GuideRevision, GuideUpstream, User
from server.refs import key_of
from server.rules import is_news, normalize_labels
from server.settings import Settings, host_of


class GuideService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.communities = CommunityService(session, settings)

    # reads

    async def get(self, guide_id: UUID, principal: Principal | None) -> Guide:
        guide = await self.session.get(Guide, guide_id)
        if guide is None or guide.deleted_at is not None:
            raise not_found("Guide")
        if guide.status == "draft" and not await self._may_edit(principal, guide):
            raise not_found("Guide")  # a draft's existence is nobody else's business
        return guide

    async def revisions(self, guide_id: UUID, principal: Principal | None) -> list[schemas.Revision]:
        guide = await self.get(guide_id, principal)
        rows = await self.session.scalars(
            select(GuideRevision).where(GuideRevision.guide_id == guide.id).order_by(GuideRevision.number.desc())
        )
        return [
            schemas.Revision(
                number=r.number,
                title=r.title,
                created_at=r.created_at,
                author=person_ref(r.author),
                summary_of_change=r.summary_of_change,
            )  # fmt: skip
            for r in rows
        ]

    async def revision(self, guide_id: UUID, number: int, principal: Principal | None) -> schemas.RevisionDetail:
        guide = await self.get(guide_id, principal)
        revision = await self.session.scalar(
            select(GuideRevision).where(GuideRevision.guide_id == guide.id, GuideRevision.number == number)
        )
        if revision is None:
            raise not_found(f"Revision {number}")
        return revision_detail(revision)

    async def revision_pair(
        self, guide_id: UUID, older: int, newer: int, principal: Principal | None
    ) -> tuple[schemas.RevisionDetail, schemas.RevisionDetail]:
        """Two revisions to compare, read together; a 404 names the first number the guide does not have."""
        guide = await self.get(guide_id, principal)
        rows = await self.session.scalars(
            select(GuideRevision).where(GuideRevision.guide_id == guide.id, GuideRevision.number.in_({older, newer}))
        )
        found = {r.number: r for r in rows}
        for number in (older, newer):
            if number not in found:
                raise not_found(f"Revision {number}")
        return revision_detail(found[older]), revision_detail(found[newer])

    # permissions

    async def _may_edit(self, principal: Principal | None, guide: Guide) -> bool:
        known = rules.edit_right(principal, guide.author_id)
        if known is not None:
            return known
        return rules.may_edit(principal, guide.author_id, await self.communities.role(principal, guide.community))

    async def _require_edit(self, principal: Principal, guide: Guide) -> None:
        if not guide.local:
            raise forbidden("This guide lives on another instance; it can only be changed there.")
        if not principal.can_write or not await self._may_edit(principal, guide):
            raise forbidden("Only the guide's author or a moderator of its community can change it.")
        await not_moved_locked(self.session, guide.community)

    # local writes

    async def create(self, principal: Principal, community_ref_: str, data: schemas.GuideCreate) -> Guide:
        community = await self.communities.get_local(community_ref_)
        await self.communities.require_member(principal, community)
        await not_moved_locked(self.session, community)
        upstream = None
        if data.derived_from is not None:
            found = await self.session.scalar(select(Guide).where(Guide.uri == data.derived_from))
            upstream = adaptation.check_source(found, community)
        data = adaptation.starting_point(data, upstream)
        assert data.title is not None and data.body_markdown is not None and data.tags is not None
        tags = normalize_labels("tags", data.tags)
        body_html = render(data.body_markdown)
        rules.body(data.body_markdown, body_html)
        title = rules.title(data.title)
        author = await self.session.get(User, principal.user_id)
        guide_id = new_id()
        slug = await free_slug(self.session, community, title)
        now = utcnow()
        guide = Guide(
            id=guide_id, uri=f"{self.settings.base_url}/guides/{guide_id}",
            url=f"{self.settings.base_url}/c/{community.slug}/guides/{slug}", community=community,
            author=author, slug=slug, title=title, summary=rules.summary(data.summary or ""),
            body_markdown=data.body_markdown, body_html=body_html, tags=tags,
            tags_key=key_of(tags), license=data.license, status=data.status, revision=1, local=True,
            instance=self.settings.host, derived_from=data.derived_from, created_at=now, updated_at=now,
        )  # fmt: skip
        self.session.add(guide)
        await self.session.flush()  # the revision row references the guide row
        self.session.add(_snapshot(guide, principal.user_id, "Adapted" if upstream else "Created"))
        if upstream is not None:
            self.session.add(adaptation.upstream_row(guide.id, upstream))
        await changes.record(self.session, self.settings, "Create", guide, public=rules.is_public(guide.status))
        await self.session.commit()
        return guide

    async def update(
        self, principal: Principal, guide_id: UUID, data: schemas.GuideUpdate, if_match: str | None
    ) -> Guide:
        guide = await self.get(guide_id, principal)
        await self._require_edit(principal, guide)
        check_if_match(if_match, etag(guide))
        await self._keep_upstream_rules(guide, data)
        was_public = rules.is_public(guide.status)
        if data.title is not msgspec.UNSET:
            guide.title = rules.title(data.title)
        if data.body_markdown is not msgspec.UNSET:
            body_html = render(data.body_markdown)
            rules.body(data.body_markdown, body_html)
            guide.body_markdown, guide.body_html = data.body_markdown, body_html
        if data.summary is not msgspec.UNSET:
            guide.summary = rules.summary(data.summary)
        if data.tags is not msgspec.UNSET:
            guide.tags = normalize_labels("tags", data.tags)
            guide.tags_key = key_of(guide.tags)
        if data.license is not msgspec.UNSET:
            guide.license = data.license
        if data.status is not msgspec.UNSET:
            guide.status = data.status
        guide.revision += 1
        guide.updated_at = utcnow()
        self.session.add(_snapshot(guide, principal.user_id, data.summary_of_change.strip()))
        now_public = rules.is_public(guide.status)
        verb = rules.change_verb(was_public, now_public)
        await changes.record(self.session, self.settings, verb, guide, public=was_public or now_public)  # type: ignore[arg-type]
        await self.session.commit()
        return guide

    async def _keep_upstream_rules(self, guide: Guide, data: schemas.GuideUpdate) -> None:
        """An adaptation keeps a share-alike original's license and saves no conflict blocks; a save that takes the
        upstream (`upstream_revision`) moves its base to that revision, which must still be the upstream's."""
        row = await self.session.get(GuideUpstream, guide.id) if guide.derived_from else None
        if row is None:
            if data.upstream_revision is not msgspec.UNSET:
                raise invalid("upstream_revision", "this guide adapts no guide of this instance")
            return
        if data.license is not msgspec.UNSET:
            rules.adaptation_license(row.license, data.license)
        if data.body_markdown is not msgspec.UNSET:
            rules.no_conflict_blocks(data.body_markdown)
        if data.upstream_revision is not msgspec.UNSET:
            upstream = await self._upstream_of(row)
            if upstream is None or upstream.revision != data.upstream_revision:
                raise conflict("The upstream changed again since this merge: take its change once more.")
            adaptation.rebase(row, upstream)

    async def _upstream_of(self, row: GuideUpstream) -> Guide | None:
        upstream = await self.session.scalar(select(Guide).where(Guide.uri == row.uri))
        return upstream if adaptation.is_available(upstream) else None

    async def _adaptation(self, guide: Guide) -> tuple[GuideUpstream, Guide | None]:
        row = await self.session.get(GuideUpstream, guide.id) if guide.local else None
        if row is None:
            raise not_found("An upstream of this guide")
        return row, await self._upstream_of(row)

    async def upstream_change(self, guide_id: UUID, principal: Principal | None) -> schemas.UpstreamChange:
        guide = await self.get(guide_id, principal)
        row, upstream = await self._adaptation(guide)
        return adaptation.upstream_change(row, guide, upstream)

    async def take_upstream(self, principal: Principal, guide_id: UUID) -> tuple[Guide, adaptation.Merged]:
        """Merge the upstream's change into the adaptation's text: saved as a revision when it merges cleanly;
        with conflicts nothing is saved and the merged text, conflict blocks and all, is for a person to resolve."""
        guide = await self.get(guide_id, principal)
        await self._require_edit(principal, guide)
        row, upstream = await self._adaptation(guide)
        if upstream is None:
            raise conflict("The original of this adaptation was deleted: there is no change to take.")
        if upstream.revision <= row.base_revision:
            raise conflict("The upstream has not changed since this adaptation was last based on it.")
        merged = adaptation.merge(row, guide, upstream)
        if merged.conflicts:
            return guide, merged
        change = schemas.GuideUpdate(
            title=merged.title, body_markdown=merged.markdown, upstream_revision=upstream.revision,
            summary_of_change=f"Took upstream revision {upstream.revision}",
        )  # fmt: skip
        return await self.update(principal, guide.id, change, None), merged

    async def dismiss_upstream(self, principal: Principal, guide_id: UUID) -> schemas.UpstreamChange:
        """Hide the upstream's change until its next revision."""
        guide = await self.get(guide_id, principal)
        await self._require_edit(principal, guide)
        row, upstream = await self._adaptation(guide)
        if upstream is not None:
            row.dismissed_revision = upstream.revision
        await self.session.commit()
        return adaptation.upstream_change(row, guide, upstream)

    async def schema(self, guide: Guide) -> schemas.Guide:
        """The guide's API schema, with its upstream and its adaptations."""

        async def run(statement, params):  # type: ignore[no-untyped-def]
            return (await self.session.execute(statement, params)).all()

        return (await adaptation.with_links(run, [to_schema(guide)]))[0]

    async def delete(self, principal: Principal, guide_id: UUID) -> None:
        guide = await self.get(guide_id, principal)
        await self._require_edit(principal, guide)
        guide.deleted_at = utcnow()
        await changes.record(self.session, self.settings, "Delete", guide, public=rules.is_public(guide.status))
        await self.session.commit()

    # a peer's writes: the caller's transaction, committed by the caller

    async def mark_former_peer(self, host: str, former: bool) -> None:
        """A former peer's guides stay, shown as from a former peer (or no more, when it is one again)."""
        copies = (Guide.instance == host, Guide.local.is_(False))
        await self.session.execute(update(Guide).where(*copies).values(former_peer=former))

    async def purge_instance(self, host: str) -> int:
        """Remove a former peer's guides; returns how many."""
        copies = (Guide.instance == host, Guide.local.is_(False))
        result = await self.session.execute(delete(Guide).where(*copies))
        return result.rowcount or 0

    async def is_news(self, uri: str, updated: datetime | None) -> bool:
        """Whether a peer's version of `uri` as of `updated` changes our copy (see rules.is_news)."""
        copy = (await self.session.execute(select(Guide.deleted_at, Guide.updated_at).where(Guide.uri == uri))).first()
        return is_news(updated, None if copy is None else (copy[0], copy[1]))

    async def apply_remote(self, remote: schemas.RemoteGuide) -> str:
        """Keep our copy of a peer's guide current (last writer wins); say what happened."""
        if not await self.is_news(remote.uri, remote.updated or remote.published):
            return "ignored stale guide"
        guide = await self.session.scalar(select(Guide).where(Guide.uri == remote.uri))
        if guide is not None and guide.local:
            raise conflict("a peer cannot change an entry of this instance")
        if host_of(remote.uri) != remote.instance:
            raise invalid("id", "the guide is not on the instance that sends it")
        community = await self.communities.remote_home(remote.community_uris, remote.instance)
        if community.moved_to is not None:
            return "ignored guide of a community that moved"  # its new home sends it now
        author = await AccountService(self.session, self.settings).apply_remote_person(remote.author)
        if guide is None and remote.former_uri is not None:
            guide = await moves.arrived(self.session, remote, community, author)
        fields = rules.remote_fields(remote, guide.revision if guide else 0)
        if guide is None:
            slug = await free_slug(self.session, community, remote.slug_hint or fields["title"])
            guide = Guide(
                uri=remote.uri, community=community, author=author, slug=slug, status="published", local=False,
                instance=remote.instance, former_uri=remote.former_uri, created_at=remote.published or utcnow(),
                **fields,
            )  # fmt: skip
            self.session.add(guide)
            await self.session.flush()
            verb = "Create"
        else:
            if guide.community_id != community.id:
                raise conflict("a guide cannot move to another community")
            for key, value in fields.items():
                setattr(guide, key, value)
            verb = "Update"
        await changes.record(self.session, self.settings, verb, guide)
        return "guide stored"

    def remote_batch(self) -> RemoteGuideBatch:
        """`apply_remote` for many new guides at once, where it is the plain case (see guides/batch.py)."""
        return RemoteGuideBatch(self.session, self.settings)

    async def apply_remote_delete(self, uri: str, instance: str) -> bool | None:
        """Delete our copy of a peer's guide: None when there is none, False when it was deleted already."""
        copy = select(Guide).where(Guide.uri == uri, Guide.instance == instance)
        guide = await self.session.scalar(copy)
        if guide is None or guide.deleted_at is not None:
            return None if guide is None else False
        guide.deleted_at = utcnow()
        await changes.record(self.session, self.settings, "Delete", guide)
        return True


async def delete_with_community(session: AsyncSession, settings: Settings, change: changes.Change) -> None:
    """A deleted local community's guides become tombstones too, each announced so peers drop their copies."""
    if change.kind != "community" or change.verb != "Delete" or not change.local or change.entry is None:
        return
    guides = await session.scalars(
        select(Guide).where(Guide.community_id == change.entry_id, Guide.deleted_at.is_(None))
    )
    for guide in list(guides):
        guide.deleted_at = change.entry.deleted_at or utcnow()
        await changes.record(session, settings, "Delete", guide, public=rules.is_public(guide.status))


async def free_slug(session: AsyncSession, community: Community, title: str) -> str:
    """A slug for the title that no other guide of the community uses."""
    base = rules.slug_base(title)
    taken = await session.scalars(
        select(Guide.slug).where(
            Guide.community_id == community.id, or_(Guide.slug == base, Guide.slug.like(f"{base}-%"))
        )
    )
    return rules.first_free_slug(base, set(taken))


def _snapshot(guide: Guide, author_id: UUID, summary_of_change: str) -> GuideRevision:
    return GuideRevision(
        guide_id=guide.id, number=guide.revision, title=guide.title, summary=guide.summary,
        body_markdown=guide.body_markdown, tags=list(guide.tags), license=guide.license,
        status=guide.status, author_id=author_id, summary_of_change=summary_of_change,
        created_at=guide.updated_at,
    )  # fmt: skip
