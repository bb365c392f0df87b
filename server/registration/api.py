from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, delete, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.deps import require, require_writer
from server.accounts.security import Principal
from server.openapi_docs import WRITE, problems
from server.ratelimit import client_address, limiter_of
from server.registration import schemas
from server.registration.invites import InviteService
from server.registration.service import RegistrationService
from server.settings import Settings


class RegistrationController(Controller):
    path = "/api/v1/accounts"
    tags = ["Accounts"]

    @post(
        "/",
        operation_id="createAccount",
        summary="Sign up, as the instance's registration mode allows (403 when it is closed)",
        description=(
            "`closed`: 403. `invite`: needs `invite`, the code of an invite link. `approval`: needs `reason`; the "
            "account is `pending` and cannot sign in until an admin approves it (an invite skips the wait). "
            "`open`: anyone. An invite to a community also makes the new person its member."
        ),
        security=[{}],
        responses=problems(403, 404, 409, 413, 429),
    )
    async def create_account(
        self, request: Request[Any, Any, Any], data: schemas.AccountCreate, db: AsyncSession, settings: Settings
    ) -> schemas.Account:
        limiter_of(request).check("registration", client_address(request))
        return await RegistrationService(db, settings).sign_up(data)

    @get(
        "/pending",
        operation_id="listPendingAccounts",
        summary="Sign-ups waiting for approval, with their reasons (admin)",
        responses=problems(401, 403),
    )
    async def pending(self, db: AsyncSession, settings: Settings, principal: Principal | None) -> schemas.PendingList:
        return schemas.PendingList(items=await RegistrationService(db, settings).pending(require(principal)))

    @post(
        "/{username:str}/approve",
        operation_id="approveAccount",
        summary="Let a pending sign-up in (admin)",
        status_code=200,
        responses=WRITE,
    )
    async def approve(
        self, username: str, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.Account:
        return await RegistrationService(db, settings).approve(require(principal), username)

    @post(
        "/{username:str}/reject",
        operation_id="rejectAccount",
        summary="Refuse a pending sign-up; the account is removed (admin)",
        status_code=204,
        responses=WRITE,
    )
    async def reject(self, username: str, db: AsyncSession, settings: Settings, principal: Principal | None) -> None:
        await RegistrationService(db, settings).reject(require(principal), username)


class InviteController(Controller):
    path = "/api/v1/invites"
    tags = ["Accounts"]

    @post(
        "/",
        operation_id="createInvite",
        summary="Make an invite link (admins; moderators for their community); the link is shown only here",
        responses=WRITE,
    )
    async def create_invite(
        self, data: schemas.InviteCreate, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.InviteCreated:
        return await InviteService(db, settings).create(require_writer(principal), data)

    @get(
        "/",
        operation_id="listInvites",
        summary="Invites I made (admins: every invite), never their links",
        responses=problems(401),
    )
    async def list_invites(
        self, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.InviteList:
        return schemas.InviteList(items=await InviteService(db, settings).list(require(principal)))

    @delete("/{invite_id:uuid}", operation_id="revokeInvite", summary="Withdraw an invite at once", responses=WRITE)
    async def revoke_invite(
        self, invite_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> None:
        await InviteService(db, settings).revoke(require(principal), invite_id)
