from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, delete, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts import schemas
from server.accounts.deps import require
from server.accounts.passwords import PasswordService
from server.accounts.security import Principal
from server.accounts.service import AccountService
from server.openapi_docs import WRITE, problems
from server.ratelimit import limiter_of, password_guesses
from server.settings import Settings


class AccountController(Controller):
    path = "/api/v1/me"
    tags = ["Accounts"]

    @get("/", operation_id="getMe", summary="Who the token belongs to, and their roles", responses=problems(401))
    async def me(self, db: AsyncSession, settings: Settings, principal: Principal | None) -> schemas.Me:
        principal = require(principal)
        service = AccountService(db, settings)
        user = await service.local_user(principal.username)
        assert user is not None  # a live token implies its user exists
        return schemas.Me(
            username=user.username, display_name=user.display_name or user.username,
            roles=await service.roles(principal),
        )  # fmt: skip

    @get(
        "/tokens",
        operation_id="listTokens",
        summary="List my API tokens (never their secrets)",
        responses=problems(401),
    )
    async def list_tokens(self, db: AsyncSession, settings: Settings, principal: Principal | None) -> schemas.TokenList:
        return schemas.TokenList(items=await AccountService(db, settings).list_tokens(require(principal)))

    @post(
        "/tokens",
        operation_id="createToken",
        summary="Create an API token; the secret is shown only here",
        responses={**WRITE, **problems(429)},
    )
    async def create_token(
        self,
        request: Request[Any, Any, Any],
        data: schemas.TokenCreate,
        db: AsyncSession,
        settings: Settings,
        principal: Principal | None,
    ) -> schemas.TokenCreated:
        principal = require(principal)
        limiter_of(request).check("token_create", principal.username)
        return await AccountService(db, settings).create_token(principal, data.name, data.scope, data.expires_at)

    @delete("/tokens/{token_id:uuid}", operation_id="revokeToken", summary="Revoke a token at once", responses=WRITE)
    async def revoke_token(
        self, token_id: UUID, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> None:
        await AccountService(db, settings).revoke_token(require(principal), token_id)

    @post(
        "/password",
        operation_id="changePassword",
        summary="Change my password; every web sign-in ends, API tokens stay",
        description=(
            "Needs the current password (403 when it is not right, and nothing changes) and a write or admin "
            "token. Every browser signed in as this person is signed out; API tokens keep working: revoke them "
            "one by one under /api/v1/me/tokens."
        ),
        status_code=204,
        responses=problems(401, 403, 409, 422),
    )
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        data: schemas.PasswordChange,
        db: AsyncSession,
        principal: Principal | None,
    ) -> None:
        principal = require(principal)
        with password_guesses(limiter_of(request), principal.username):
            await PasswordService(db).change(principal, data.current_password, data.new_password)
