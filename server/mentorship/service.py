"""Mentorship offers: the only code that writes them (requests: requests.py)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server import changes
from server.accounts.security import Principal
from server.accounts.service import AccountService, person_ref
from server.communities.moving import not_moved_locked
from server.communities.service import CommunityService, community_ref
from server.db import new_id, utcnow
from server.errors import conflict, forbidden, invalid, not_found
from server.etags import check_if_match, make_etag
from server.guides.schemas import Origin as OriginRef
from server.markdown import render
from server.mentorship import moves, rules, schemas
from server.models import Community, MentorshipOffer, MentorshipRequest, User
from server.pagination import keyset, split_page
from server.refs import Origin, apply_origin_filters, key_of
from server.rules import is_news, normalize_labels
from server.settings import Settings, host_of


def etag(offer: MentorshipOffer) -> str:
    return make_etag(offer.id.hex[:12], offer.version, offer.seats_taken)


def to_schema(offer: MentorshipOffer) -> schemas.Offer:
    return schemas.Offer(
        id=offer.id, uri=offer.uri, url=offer.url, title=offer.title,
        description_markdown=offer.description_markdown, description_html=offer.description_html,
        topics=list(offer.topics), format=offer.format, capacity=offer.capacity,  # type: ignore[arg-type]
        seats_taken=offer.seats_taken, languages=list(offer.languages),
        availability=offer.availability, status=offer.status,  # type: ignore[arg-type]
        mentor=person_ref(offer.mentor), community=community_ref(offer.community), local=offer.local,
        origin=OriginRef(instance=offer.instance, uri=offer.uri, url=offer.url, former_peer=offer.former_peer),
        created_at=offer.created_at, updated_at=offer.updated_at, moved_from=offer.former_uri,
    )  # fmt: skip


def request_schema(request: MentorshipRequest, settings: Settings) -> schemas.MentorshipRequest:
    offer = request.offer
    return schemas.MentorshipRequest(
        id=request.id, uri=request.uri, url=f"{settings.base_url}/mentorship/requests/{request.id}",
        state=request.state, reason=request.reason, message=request.message,  # type: ignore[arg-type]
        offer=schemas.OfferSummary(
            id=offer.id, uri=offer.uri, title=offer.title, url=offer.url, mentor=person_ref(offer.mentor),
            instance=offer.instance,
        ),
        requester=person_ref(request.requester), local=request.local, created_at=request.created_at,
        updated_at=request.updated_at,
    )  # fmt: skip


class MentorshipService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.communities = CommunityService(session, settings)

    # offers

    async def list(
        self, *, community: str | None = None, topic: str | None = None, language: str | None = None,
        status: schemas.OfferStatus | None = None, origin: Origin = "all", instance: str | None = None,
        format: schemas.Format | None = None, open_seats: bool = False, limit: int = 20, cursor: str | None = None,
    ) -> tuple[list[schemas.Offer], str | None]:  # fmt: skip
        """`open_seats`: only open offers with a seat left. Filters run in the query, so pages are full."""
        query = select(MentorshipOffer).where(
            MentorshipOffer.deleted_at.is_(None), ~MentorshipOffer.community.has(Community.moved_away)
        )
        query = apply_origin_filters(
            query, MentorshipOffer, self.settings.host, origin=origin, instance=instance, community=community
        )
        if status:
            query = query.where(MentorshipOffer.status == status)
        if format:
            query = query.where(MentorshipOffer.format == format)
        if open_seats:
            query = query.where(
                MentorshipOffer.status == "open", MentorshipOffer.seats_taken < MentorshipOffer.capacity
            )
        if topic:
            query = query.where(MentorshipOffer.topics_key.contains(f"|{topic.strip().lower()}|", autoescape=True))
        if language:
            query = query.where(
                MentorshipOffer.languages_key.contains(f"|{language.strip().lower()}|", autoescape=True)
            )
        rows = list((await self.session.scalars(keyset(query, MentorshipOffer, limit, cursor))).unique())
        page, next_cursor = split_page(rows, limit)
        return [to_schema(o) for o in page], next_cursor

    async def get(self, offer_id: UUID) -> MentorshipOffer:
        offer = await self.session.get(MentorshipOffer, offer_id)
        if offer is None or offer.deleted_at is not None:
            raise not_found("Mentorship offer")
        return offer

    async def is_mentor_or_moderator(self, principal: Principal, offer: MentorshipOffer) -> bool:
        if principal.is_admin or offer.mentor_id == principal.user_id:
            return True
        return await self.communities.role(principal, offer.community) == "moderator"

    async def _require_manage(self, principal: Principal, offer: MentorshipOffer) -> None:
        if not offer.local:
            raise forbidden("This offer lives on another instance; it can only be changed there.")
        if not principal.can_write or not await self.is_mentor_or_moderator(principal, offer):
            raise forbidden("Only the mentor or a moderator of the community can manage this offer.")
        await not_moved_locked(self.session, offer.community)

    async def create(self, principal: Principal, community_ref_: str, data: schemas.OfferCreate) -> MentorshipOffer:
        community = await self.communities.get_local(community_ref_)
        await self.communities.require_member(principal, community)
        await not_moved_locked(self.session, community)
        topics = normalize_labels("topics", data.topics)
        languages = normalize_labels("languages", data.languages)
        title = rules.title(data.title)
        offer_id = new_id()
        uri = f"{self.settings.base_url}/mentorship/offers/{offer_id}"
        now = utcnow()
        offer = MentorshipOffer(
            id=offer_id, uri=uri, url=uri, community=community,
            mentor=await self.session.get(User, principal.user_id), title=title,
            description_markdown=data.description_markdown,
            description_html=render(data.description_markdown), topics=topics,
            topics_key=key_of(topics), format=data.format, capacity=data.capacity,
            languages=languages, languages_key=key_of(languages), availability=rules.availability(data.availability),
            status=data.status, local=True, instance=self.settings.host, created_at=now, updated_at=now,
        )  # fmt: skip
        self.session.add(offer)
        await changes.record(self.session, self.settings, "Create", offer)
        await self.session.commit()
        return offer

    async def update(
        self, principal: Principal, offer_id: UUID, data: schemas.OfferUpdate, if_match: str | None
    ) -> MentorshipOffer:
        offer = await self.get(offer_id)
        await self._require_manage(principal, offer)
        check_if_match(if_match, etag(offer))
        if data.title is not msgspec.UNSET:
            offer.title = rules.title(data.title)
        if data.description_markdown is not msgspec.UNSET:
            offer.description_markdown = data.description_markdown
            offer.description_html = render(data.description_markdown)
        if data.topics is not msgspec.UNSET:
            offer.topics = normalize_labels("topics", data.topics)
            offer.topics_key = key_of(offer.topics)
        if data.languages is not msgspec.UNSET:
            offer.languages = normalize_labels("languages", data.languages)
            offer.languages_key = key_of(offer.languages)
        if data.format is not msgspec.UNSET:
            offer.format = data.format
        if data.capacity is not msgspec.UNSET:
            offer.capacity = rules.capacity(data.capacity, offer.seats_taken)
        if data.availability is not msgspec.UNSET:
            offer.availability = rules.availability(data.availability)
        if data.status is not msgspec.UNSET:
            offer.status = data.status
        offer.version += 1
        offer.updated_at = utcnow()
        await changes.record(self.session, self.settings, "Update", offer)
        await self.session.commit()
        return offer

    async def delete(self, principal: Principal, offer_id: UUID) -> None:
        offer = await self.get(offer_id)
        await self._require_manage(principal, offer)
        offer.deleted_at = utcnow()
        await changes.record(self.session, self.settings, "Delete", offer)
        await self.session.commit()

    # a peer's writes: the caller's transaction, committed by the caller

    async def mark_former_peer(self, host: str, former: bool) -> None:
        """A former peer's offers stay, shown as from a former peer (or no more, when it is one again)."""
        copies = (MentorshipOffer.instance == host, MentorshipOffer.local.is_(False))
        await self.session.execute(update(MentorshipOffer).where(*copies).values(former_peer=former))

    async def purge_instance(self, host: str) -> int:
        """Remove a former peer's offers; returns how many."""
        copies = (MentorshipOffer.instance == host, MentorshipOffer.local.is_(False))
        result = await self.session.execute(delete(MentorshipOffer).where(*copies))
        return result.rowcount or 0

    async def is_news(self, uri: str, updated: datetime | None) -> bool:
        """Whether a peer's version of `uri` as of `updated` changes our copy (see rules.is_news)."""
        copy = (
            await self.session.execute(
                select(MentorshipOffer.deleted_at, MentorshipOffer.updated_at).where(MentorshipOffer.uri == uri)
            )
        ).first()
        return is_news(updated, None if copy is None else (copy[0], copy[1]))

    async def apply_remote(self, remote: schemas.RemoteOffer) -> str:
        """Keep our copy of a peer's offer current (last writer wins); say what happened."""
        if not await self.is_news(remote.uri, remote.updated or remote.published):
            return "ignored stale offer"
        offer = await self.session.scalar(select(MentorshipOffer).where(MentorshipOffer.uri == remote.uri))
        if offer is not None and offer.local:
            raise conflict("a peer cannot change an entry of this instance")
        if host_of(remote.uri) != remote.instance:
            raise invalid("id", "the offer is not on the instance that sends it")
        community = await self.communities.remote_home(remote.community_uris, remote.instance)
        if community.moved_to is not None:
            return "ignored offer of a community that moved"  # its new home sends it now
        mentor = await AccountService(self.session, self.settings).apply_remote_person(remote.mentor)
        if offer is None and remote.former_uri is not None:
            offer = await moves.arrived(self.session, remote, community, mentor)
        fields = rules.remote_fields(remote)
        if offer is None:
            offer = MentorshipOffer(
                uri=remote.uri, community=community, mentor=mentor, local=False, instance=remote.instance,
                former_uri=remote.former_uri, created_at=remote.published or utcnow(), **fields,
            )  # fmt: skip
            self.session.add(offer)
            await self.session.flush()
            verb = "Create"
        else:
            for key, value in fields.items():
                setattr(offer, key, value)
            offer.version += 1
            verb = "Update"
        await changes.record(self.session, self.settings, verb, offer)
        return "offer stored"

    async def apply_remote_delete(self, uri: str, instance: str) -> bool | None:
        """Delete our copy of a peer's offer: None when there is none, False when it was deleted already."""
        offer = await self.session.scalar(
            select(MentorshipOffer).where(MentorshipOffer.uri == uri, MentorshipOffer.instance == instance)
        )
        if offer is None or offer.deleted_at is not None:
            return None if offer is None else False
        offer.deleted_at = utcnow()
        await changes.record(self.session, self.settings, "Delete", offer)
        return True

    async def announce_seats(self, offer: MentorshipOffer, changed: bool) -> None:
        """Open seats are part of an offer's public state, so peers hear about them."""
        if changed:
            await self.session.refresh(offer)
            await changes.record(self.session, self.settings, "Update", offer)


async def delete_with_community(session: AsyncSession, settings: Settings, change: changes.Change) -> None:
    """A deleted local community's offers become tombstones too, each announced so peers drop their copies."""
    if change.kind != "community" or change.verb != "Delete" or not change.local or change.entry is None:
        return
    offers = await session.scalars(
        select(MentorshipOffer).where(
            MentorshipOffer.community_id == change.entry_id, MentorshipOffer.deleted_at.is_(None)
        )
    )
    for offer in list(offers):
        offer.deleted_at = change.entry.deleted_at or utcnow()
        await changes.record(session, settings, "Delete", offer)
