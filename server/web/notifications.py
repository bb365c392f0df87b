"""The notifications page: what needs me, newest first, and marking it read."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.notifications.schemas import MarkRead
from server.notifications.service import NotificationService
from server.settings import Settings
from server.web.core import flash, page, see_other
from server.web.errors import signed_in
from server.web.forms import form_data


@get("/notifications", name="notifications")
async def notifications(
    request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, unread: bool = False,
    cursor: str | None = None,
) -> Template:  # fmt: skip
    viewer = await signed_in(request, db)
    service = NotificationService(db, settings)
    entries, next_cursor = await service.entries(viewer.principal, unread=unread, limit=20, cursor=cursor)
    context = {
        "entries": entries,
        "unread_only": unread,
        "unread_count": await service.unread_count(viewer.principal),
        "next_cursor": next_cursor,
        "cursor": cursor,
    }
    return await page(request, db, "notifications/list", context, title="Notifications")


@post("/notifications/read", name="notifications_read")
async def notifications_read(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Redirect:
    """`all` marks every one read, `id` one of them; back to the list either way."""
    viewer = await signed_in(request, db)
    data = await form_data(request)
    service = NotificationService(db, settings)
    if data.get("all"):
        await service.mark_read(viewer.principal, MarkRead(all=True))
        flash(request, "All notifications are marked read.")
    else:
        try:
            ids = [UUID(data.get("id", ""))]
        except ValueError:
            flash(request, "That is not a notification.", "error")
        else:
            await service.mark_read(viewer.principal, MarkRead(ids=ids))
    return see_other("/notifications?unread=true" if data.get("unread_only") else "/notifications")


@get("/notifications/{notification_id:uuid}", name="notification_open")
async def notification_open(
    notification_id: UUID, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Redirect:
    """The link a notification's entry gives: it is read once opened, and the request's page opens."""
    viewer = await signed_in(request, db)
    return see_other(await NotificationService(db, settings).open(viewer.principal, notification_id))


notification_handlers = [notifications, notifications_read, notification_open]
