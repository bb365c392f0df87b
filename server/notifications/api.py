from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.deps import require, require_writer
from server.accounts.security import Principal
from server.notifications import schemas
from server.notifications.service import NotificationService
from server.openapi_docs import WRITE, problems
from server.pagination import link_header
from server.settings import Settings

Limit = Parameter(default=20, ge=1, le=100)


class NotificationController(Controller):
    path = "/api/v1/me/notifications"
    tags = ["Notifications"]

    @get(
        "/", operation_id="listNotifications",
        summary="My notifications, newest first (unread=true: only those not read yet)",
        responses=problems(401),
    )  # fmt: skip
    async def list_notifications(
        self, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, principal: Principal | None,
        unread: bool = False, limit: int = Limit, cursor: str | None = None,
    ) -> Response[schemas.NotificationPage]:  # fmt: skip
        items, next_cursor = await NotificationService(db, settings).list(
            require(principal), unread=unread, limit=limit, cursor=cursor
        )
        return Response(
            schemas.NotificationPage(items=items, next_cursor=next_cursor),
            headers=link_header(request, settings.base_url, next_cursor),
        )

    @post(
        "/read", operation_id="markNotificationsRead",
        summary="Mark {ids} of mine or {all: true} read; answers 200 with how many stay unread",
        status_code=200, responses=WRITE,
    )  # fmt: skip
    async def mark_read(
        self, data: schemas.MarkRead, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.Unread:
        unread = await NotificationService(db, settings).mark_read(require_writer(principal), data)
        return schemas.Unread(unread=unread)
