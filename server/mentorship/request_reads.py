"""Reading mentorship requests and their threads: who may see what (the parties, the moderators of a local
offer's community, admins), and the lists people see them in."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.security import Principal
from server.accounts.service import person_ref
from server.errors import forbidden, not_found
from server.mentorship import schemas
from server.mentorship.service import MentorshipService, request_schema
from server.models import MentorshipMessage, MentorshipOffer, MentorshipRequest
from server.pagination import keyset, split_page
from server.settings import Settings


def message_schema(message: MentorshipMessage) -> schemas.Message:
    return schemas.Message(
        id=message.id, uri=message.uri, author=person_ref(message.author), body_markdown=message.body_markdown,
        body_html=message.body_html, created_at=message.created_at,
    )  # fmt: skip


class RequestReads:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.offers = MentorshipService(session, settings)

    def schema(self, request: MentorshipRequest) -> schemas.MentorshipRequest:
        return request_schema(request, self.settings)

    async def get(self, principal: Principal | None, request_id: UUID) -> MentorshipRequest:
        """A request its parties, the moderators of a local offer's community and admins may see; 404 to others,
        so that nobody learns a private request exists."""
        request = await self.session.get(MentorshipRequest, request_id)
        if request is None or principal is None or not await self.may_see(principal, request):
            raise not_found("Mentorship request")
        return request

    async def may_see(self, principal: Principal, request: MentorshipRequest) -> bool:
        if principal.is_admin or principal.user_id in (request.requester_id, request.offer.mentor_id):
            return True
        offer = request.offer
        return offer.local and await self.offers.communities.role(principal, offer.community) == "moderator"

    async def messages(
        self, principal: Principal, request_id: UUID, limit: int, cursor: str | None
    ) -> tuple[list[schemas.Message], str | None]:
        """The thread, newest first."""
        request = await self.get(principal, request_id)
        query = select(MentorshipMessage).where(MentorshipMessage.request_id == request.id)
        rows = list((await self.session.scalars(keyset(query, MentorshipMessage, limit, cursor))).unique())
        page, next_cursor = split_page(rows, limit)
        return [message_schema(m) for m in page], next_cursor

    async def for_offer(
        self, principal: Principal, offer_id: UUID, limit: int, cursor: str | None
    ) -> tuple[list[schemas.MentorshipRequest], str | None]:
        offer = await self.offers.get(offer_id)
        if not await self.offers.is_mentor_or_moderator(principal, offer):
            raise forbidden("Only the mentor or a moderator can see the requests for this offer.")
        query = select(MentorshipRequest).where(MentorshipRequest.offer_id == offer.id)
        return await self._page(query, limit, cursor)

    async def mine(
        self, principal: Principal, mine: bool, limit: int, cursor: str | None
    ) -> tuple[list[schemas.MentorshipRequest], str | None]:
        """mine=true: the requests I made; mine=false: the requests on offers I mentor (from anywhere)."""
        if mine:
            query = select(MentorshipRequest).where(MentorshipRequest.requester_id == principal.user_id)
        else:
            mentored = select(MentorshipOffer.id).where(MentorshipOffer.mentor_id == principal.user_id)
            query = select(MentorshipRequest).where(MentorshipRequest.offer_id.in_(mentored.scalar_subquery()))
        return await self._page(query, limit, cursor)

    async def _page(self, query, limit: int, cursor: str | None):  # type: ignore[no-untyped-def]
        rows = list((await self.session.scalars(keyset(query, MentorshipRequest, limit, cursor))).unique())
        page, next_cursor = split_page(rows, limit)
        return [self.schema(r) for r in page], next_cursor
