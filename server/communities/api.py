from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.deps import require, require_writer
from server.accounts.security import Principal
from server.communities import schemas
from server.communities.service import CommunityService
from server.openapi_docs import READ, WRITE, problems
from server.pagination import link_header
from server.refs import Origin
from server.settings import Settings


class CommunityController(Controller):
    path = "/api/v1/communities"
    tags = ["Communities"]

    @get("/", operation_id="listCommunities", summary="List communities", responses=READ)
    async def list_communities(
        self, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings,
        origin: Origin = "all", instance: str | None = None,
        limit: int = Parameter(default=20, ge=1, le=100), cursor: str | None = None,
    ) -> Response[schemas.CommunityPage]:  # fmt: skip
        items, next_cursor = await CommunityService(db, settings).list(
            origin=origin, instance=instance, limit=limit, cursor=cursor
        )
        return Response(
            schemas.CommunityPage(items=items, next_cursor=next_cursor),
            headers=link_header(request, settings.base_url, next_cursor),
        )

    @post("/", operation_id="createCommunity", summary="Create a community (admin)", responses=WRITE | problems(409))
    async def create_community(
        self, data: schemas.CommunityCreate, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.Community:
        service = CommunityService(db, settings)
        return await service.to_schema(await service.create(require(principal), data))

    @get(
        "/{ref:str}",
        operation_id="getCommunity",
        summary="Get a community by slug or slug@host",
        responses=problems(404),
    )
    async def get_community(self, ref: str, db: AsyncSession, settings: Settings) -> schemas.Community:
        service = CommunityService(db, settings)
        return await service.to_schema(await service.get(ref))

    @patch("/{ref:str}", operation_id="updateCommunity", summary="Update a community (moderator)", responses=WRITE)
    async def update_community(
        self, ref: str, data: schemas.CommunityUpdate, db: AsyncSession, settings: Settings,
        principal: Principal | None,
    ) -> schemas.Community:  # fmt: skip
        service = CommunityService(db, settings)
        return await service.to_schema(await service.update(require_writer(principal), ref, data))

    @delete(
        "/{ref:str}",
        operation_id="deleteCommunity",
        summary="Delete a community and tombstone its entries (admin)",
        responses=WRITE,
    )
    async def delete_community(
        self, ref: str, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> None:
        await CommunityService(db, settings).delete(require(principal), ref)

    @get(
        "/{ref:str}/members", operation_id="listMembers", summary="List a community's members", responses=problems(404)
    )
    async def list_members(self, ref: str, db: AsyncSession, settings: Settings) -> schemas.MemberList:
        return schemas.MemberList(items=await CommunityService(db, settings).members(ref))

    @post(
        "/{ref:str}/members",
        operation_id="addMember",
        summary="Add a member or change their role (moderator)",
        responses=WRITE,
    )
    async def add_member(
        self, ref: str, data: schemas.MemberCreate, db: AsyncSession, settings: Settings,
        principal: Principal | None,
    ) -> Response[schemas.Member]:  # fmt: skip
        member, created = await CommunityService(db, settings).set_member(require_writer(principal), ref, data)
        return Response(member, status_code=201 if created else 200)

    @delete(
        "/{ref:str}/members/{username:str}",
        operation_id="removeMember",
        summary="Remove a member (moderator)",
        responses=WRITE,
    )
    async def remove_member(
        self, ref: str, username: str, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> None:
        await CommunityService(db, settings).remove_member(require_writer(principal), ref, username)
