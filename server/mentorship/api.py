from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.deps import require, require_writer
from server.accounts.security import Principal
from server.mentorship import schemas
from server.mentorship.requests import RequestService, message_schema
from server.mentorship.service import MentorshipService, etag, to_schema
from server.openapi_docs import READ, WRITE, problems
from server.pagination import link_header
from server.ratelimit import limiter_of
from server.refs import Origin
from server.settings import Settings

Limit = Parameter(default=20, ge=1, le=100)


class MentorshipController(Controller):
    tags = ["Mentorship"]

    @get("/api/v1/mentorship/offers", operation_id="listOffers", summary="List mentorship offers", responses=READ)
    async def list_offers(
        self, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings,
        community: str | None = None, topic: str | None = None, language: str | None = None,
        status: schemas.OfferStatus | None = None, origin: Origin = "all", instance: str | None = None,
        limit: int = Limit, cursor: str | None = None,
    ) -> Response[schemas.OfferPage]:  # fmt: skip
        items, next_cursor = await MentorshipService(db, settings).list(
            community=community, topic=topic, language=language, status=status, origin=origin,
            instance=instance, limit=limit, cursor=cursor,
        )  # fmt: skip
        return Response(
            schemas.OfferPage(items=items, next_cursor=next_cursor),
            headers=link_header(request, settings.base_url, next_cursor),
        )

    @post(
        "/api/v1/communities/{slug:str}/mentorship/offers", operation_id="createOffer",
        summary="Offer mentorship in a community (member)", responses=WRITE,
    )  # fmt: skip
    async def create_offer(
        self, slug: str, data: schemas.OfferCreate, db: AsyncSession, settings: Settings,
        principal: Principal | None,
    ) -> Response[schemas.Offer]:  # fmt: skip
        offer = await MentorshipService(db, settings).create(require(principal), slug, data)
        return Response(to_schema(offer), status_code=201, headers={"ETag": etag(offer), "Location": offer.url})

    @get(
        "/api/v1/mentorship/offers/{offer_id:uuid}",
        operation_id="getOffer",
        summary="Get an offer",
        responses=problems(404),
    )
    async def get_offer(self, offer_id: UUID, db: AsyncSession, settings: Settings) -> Response[schemas.Offer]:
        offer = await MentorshipService(db, settings).get(offer_id)
        return Response(to_schema(offer), headers={"ETag": etag(offer)})

    @patch(
        "/api/v1/mentorship/offers/{offer_id:uuid}", operation_id="updateOffer",
        summary="Edit an offer (mentor or moderator)", responses=WRITE | problems(412),
    )  # fmt: skip
    async def update_offer(
        self, offer_id: UUID, data: schemas.OfferUpdate, db: AsyncSession, settings: Settings,
        principal: Principal | None, if_match: str | None = Parameter(header="If-Match", default=None),
    ) -> Response[schemas.Offer]:  # fmt: skip
        offer = await MentorshipService(db, settings).update(require_writer(principal), offer_id, data, if_match)
        return Response(to_schema(offer), headers={"ETag": etag(offer)})

    @delete(
        "/api/v1/mentorship/offers/{offer_id:uuid}",
        operation_id="deleteOffer",
        summary="Delete an offer",
        responses=WRITE,
    )
    async def delete_offer(
        self, offer_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> None:
        await MentorshipService(db, settings).delete(require_writer(principal), offer_id)

    @post(
        "/api/v1/mentorship/offers/{offer_id:uuid}/requests", operation_id="requestMentorship",
        summary="Ask for a seat on an offer, here or on a peer (a remote one starts as `sending`)",
        responses=WRITE | problems(409),
    )  # fmt: skip
    async def create_request(
        self, offer_id: UUID, data: schemas.RequestCreate, db: AsyncSession, settings: Settings,
        principal: Principal | None,
    ) -> schemas.MentorshipRequest:  # fmt: skip
        service = RequestService(db, settings)
        return service.schema(await service.ask(require(principal), offer_id, data.message))

    @get(
        "/api/v1/mentorship/offers/{offer_id:uuid}/requests", operation_id="listOfferRequests",
        summary="Requests for an offer, local and remote people alike (mentor or moderator)",
        responses=problems(401, 403, 404, 422),
    )  # fmt: skip
    async def list_offer_requests(
        self, request: Request[Any, Any, Any], offer_id: UUID, db: AsyncSession, settings: Settings,
        principal: Principal | None, limit: int = Limit, cursor: str | None = None,
    ) -> Response[schemas.RequestPage]:  # fmt: skip
        items, next_cursor = await RequestService(db, settings).for_offer(require(principal), offer_id, limit, cursor)
        return Response(
            schemas.RequestPage(items=items, next_cursor=next_cursor),
            headers=link_header(request, settings.base_url, next_cursor),
        )

    @get(
        "/api/v1/mentorship/requests", operation_id="listMyRequests",
        summary="My requests (mine=true) or the requests on offers I mentor (mine=false)",
        responses=problems(401, 422),
    )  # fmt: skip
    async def list_my_requests(
        self, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings,
        principal: Principal | None, mine: bool = True, limit: int = Limit, cursor: str | None = None,
    ) -> Response[schemas.RequestPage]:  # fmt: skip
        items, next_cursor = await RequestService(db, settings).mine(require(principal), mine, limit, cursor)
        return Response(
            schemas.RequestPage(items=items, next_cursor=next_cursor),
            headers=link_header(request, settings.base_url, next_cursor),
        )

    @get(
        "/api/v1/mentorship/requests/{request_id:uuid}", operation_id="getRequest",
        summary="A request (its two parties, the offer community's moderators); 404 to anyone else",
        responses=problems(401, 404),
    )  # fmt: skip
    async def get_request(
        self, request_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.MentorshipRequest:
        service = RequestService(db, settings)
        return service.schema(await service.get(require(principal), request_id))

    @post(
        "/api/v1/mentorship/requests/{request_id:uuid}/accept", operation_id="acceptRequest",
        summary="Accept a request (mentor); 409 when every seat is taken", status_code=200,
        responses=WRITE | problems(409),
    )  # fmt: skip
    async def accept(
        self, request_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.MentorshipRequest:
        service = RequestService(db, settings)
        return service.schema(await service.decide(require(principal), request_id, "accepted"))

    @post(
        "/api/v1/mentorship/requests/{request_id:uuid}/decline", operation_id="declineRequest",
        summary="Decline a request (mentor)", status_code=200, responses=WRITE | problems(409),
    )  # fmt: skip
    async def decline(
        self, request_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.MentorshipRequest:
        service = RequestService(db, settings)
        return service.schema(await service.decide(require(principal), request_id, "declined"))

    @post(
        "/api/v1/mentorship/requests/{request_id:uuid}/withdraw", operation_id="withdrawRequest",
        summary="Withdraw my request; an accepted seat frees up", status_code=200,
        responses=WRITE | problems(409),
    )  # fmt: skip
    async def withdraw(
        self, request_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.MentorshipRequest:
        service = RequestService(db, settings)
        return service.schema(await service.withdraw(require(principal), request_id))

    @post(
        "/api/v1/mentorship/requests/{request_id:uuid}/retry", operation_id="retryRequest",
        summary="Send a request that could not be delivered once more (requester)", status_code=200,
        responses=WRITE | problems(409),
    )  # fmt: skip
    async def retry(
        self, request_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.MentorshipRequest:
        service = RequestService(db, settings)
        return service.schema(await service.retry(require(principal), request_id))

    @get(
        "/api/v1/mentorship/requests/{request_id:uuid}/messages", operation_id="listRequestMessages",
        summary="The private thread of a request, newest first (its parties; moderators read)",
        responses=problems(401, 404, 422),
    )  # fmt: skip
    async def list_messages(
        self, request: Request[Any, Any, Any], request_id: UUID, db: AsyncSession, settings: Settings,
        principal: Principal | None, limit: int = Limit, cursor: str | None = None,
    ) -> Response[schemas.MessagePage]:  # fmt: skip
        items, next_cursor = await RequestService(db, settings).messages(require(principal), request_id, limit, cursor)
        return Response(
            schemas.MessagePage(items=items, next_cursor=next_cursor),
            headers=link_header(request, settings.base_url, next_cursor),
        )

    @post(
        "/api/v1/mentorship/requests/{request_id:uuid}/messages", operation_id="postRequestMessage",
        summary="Write in a request's thread (mentor or requester); markdown, at most 10 KB",
        responses=WRITE | problems(409, 429),
    )  # fmt: skip
    async def post_message(
        self, request: Request[Any, Any, Any], request_id: UUID, data: schemas.MessageCreate, db: AsyncSession,
        settings: Settings, principal: Principal | None,
    ) -> schemas.Message:  # fmt: skip
        who = require(principal)
        limiter_of(request).check("messages", str(who.user_id))
        return message_schema(await RequestService(db, settings).post_message(who, request_id, data.body_markdown))
