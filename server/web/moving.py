"""Moving a community, on its page: naming its old Group (on the new home) and moving it (on the old instance)."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.communities import schemas
from server.communities.service import CommunityService
from server.errors import ProblemError
from server.federation.move_out import start_move
from server.settings import Settings
from server.web.core import flash, page, see_other
from server.web.errors import signed_in
from server.web.forms import build, form_data


@post("/c/{ref:str}/also-known-as", name="community_link")
async def community_link(ref: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Redirect:
    viewer = await signed_in(request, db)
    data = await form_data(request)
    names = [line.strip() for line in data.get("also_known_as", "").splitlines() if line.strip()]
    try:
        update = build(schemas.CommunityUpdate, {"also_known_as": names})
        await CommunityService(db, settings).update(viewer.principal, ref, update)
    except ProblemError as exc:
        if exc.status != 422:
            raise
        flash(request, f"Not saved: {exc.detail}", "error")
        return see_other(f"/c/{ref}#move-community")
    flash(request, "Saved. The old instance can now move the community here." if names else "Saved.")
    return see_other(f"/c/{ref}#move-community")


@post("/c/{ref:str}/move", name="community_move")
async def community_move(
    ref: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template | Redirect:
    viewer = await signed_in(request, db)
    data = await form_data(request)
    target = data.get("target", "").strip()
    if not data.get("confirm"):
        flash(request, "Not moved: tick the box to confirm that the community becomes read-only here.", "error")
        return see_other(f"/c/{ref}#move-community")
    try:
        community = await start_move(db, settings, request.app.state.http_client, viewer.principal, ref, target)
    except ProblemError as exc:
        if exc.status not in (409, 422, 502):
            raise
        flash(request, f"Not moved: {exc.detail}", "error")
        return see_other(f"/c/{ref}#move-community")
    context = {"community": await CommunityService(db, settings).to_schema(community)}
    # Shown here and not after a redirect: from now on every page of the community redirects to its new home.
    return await page(request, db, "community/moved", context, title=f"{community.name} has moved")


moving_handlers = [community_link, community_move]
