"""Home, community pages, and creating and editing communities."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.communities import schemas
from server.communities.service import CommunityService
from server.errors import ProblemError, forbidden
from server.guides.service import GuideService
from server.mentorship.service import MentorshipService
from server.settings import Settings
from server.web.core import current_viewer, flash, page, see_other
from server.web.errors import SignInRequired
from server.web.forms import build, field_errors, form_data

HOME_GUIDES = 10


@get("/", name="home")
async def home(
    request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, cursor: str | None = None
) -> Template:
    viewer = await current_viewer(request, db)
    communities, _ = await CommunityService(db, settings).list(limit=100)
    guides, next_cursor = await GuideService(db, settings).list(
        viewer.principal if viewer else None, limit=HOME_GUIDES, cursor=cursor
    )
    offers, _ = await MentorshipService(db, settings).list(status="open", limit=6)
    context = {
        "communities": communities,
        "guides": guides,
        "offers": offers,
        "next_cursor": next_cursor,
        "cursor": cursor,
    }
    return await page(request, db, "home/home", context, title=settings.instance_name)


async def community_page(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, ref: str) -> Template:
    """The human page of a community; the ActivityPub route hands browsers here."""
    viewer = await current_viewer(request, db)
    service = CommunityService(db, settings)
    community = await service.to_schema(await service.get(ref))
    cursor = request.query_params.get("cursor") or None
    guides, next_cursor = await GuideService(db, settings).list(
        viewer.principal if viewer else None, community=ref, limit=20, cursor=cursor
    )
    drafts: list[Any] = []
    if viewer is not None:
        drafts, _ = await GuideService(db, settings).list(viewer.principal, community=ref, status="draft", limit=50)
    offers, _ = await MentorshipService(db, settings).list(community=ref, limit=50)
    members = await service.members(ref)
    role = await _role(db, settings, viewer, community)
    context = {
        "community": community,
        "guides": guides,
        "drafts": drafts,
        "offers": offers,
        "members": members,
        "role": role,
        "next_cursor": next_cursor,
        "cursor": cursor,
        "errors": {},
    }
    response = await page(request, db, "community/show", context, title=community.name)
    response.headers["Vary"] = "Accept, HX-Request"
    return response


async def _role(db: AsyncSession, settings: Settings, viewer: Any, community: schemas.Community) -> str | None:
    if viewer is None or not community.local:
        return None
    if viewer.is_admin:
        return "moderator"
    members = await CommunityService(db, settings).members(community.slug)
    return next((m.role for m in members if m.username == viewer.username), None)


@get("/communities/new", name="community_new")
async def community_new(request: Request[Any, Any, Any], db: AsyncSession) -> Template:
    viewer = await current_viewer(request, db)
    if viewer is None:
        raise SignInRequired
    if not viewer.is_admin:
        raise forbidden("Only instance admins can create communities.")
    return await page(request, db, "community/new", {"form": {}, "errors": {}}, title="New community")


@post("/communities", name="community_create")
async def community_create(
    request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template | Redirect:
    viewer = await current_viewer(request, db)
    if viewer is None:
        raise SignInRequired
    data = await form_data(request)
    try:
        payload = build(schemas.CommunityCreate, _community_fields(data, with_slug=True))
        community = await CommunityService(db, settings).create(viewer.principal, payload)
    except ProblemError as exc:
        if exc.status not in (409, 422):
            raise
        context = {"form": data, "errors": field_errors(exc)}
        return await page(request, db, "community/new", context, status_code=exc.status, title="New community")
    flash(request, f"{community.name} is ready. Invite members from its page.")
    return see_other(f"/c/{community.slug}")


@post("/c/{ref:str}/edit", name="community_update")
async def community_update(
    ref: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template | Redirect:
    viewer = await current_viewer(request, db)
    if viewer is None:
        raise SignInRequired
    data = await form_data(request)
    try:
        payload = build(schemas.CommunityUpdate, _community_fields(data, with_slug=False))
        await CommunityService(db, settings).update(viewer.principal, ref, payload)
    except ProblemError as exc:
        if exc.status != 422:
            raise
        flash(request, f"Not saved: {exc.detail}", "error")
        return see_other(f"/c/{ref}")
    flash(request, "Community updated.")
    return see_other(f"/c/{ref}")


@post("/c/{ref:str}/members", name="community_member_add")
async def community_member_add(
    ref: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Redirect:
    viewer = await current_viewer(request, db)
    if viewer is None:
        raise SignInRequired
    data = await form_data(request)
    try:
        member = build(
            schemas.MemberCreate, {"username": data.get("username", "").strip(), "role": data.get("role", "member")}
        )
        await CommunityService(db, settings).set_member(viewer.principal, ref, member)
    except ProblemError as exc:
        if exc.status != 422:
            raise
        flash(request, f"Not added: {exc.detail}", "error")
        return see_other(f"/c/{ref}#members")
    flash(request, f"{member.username} is now a {member.role}.")
    return see_other(f"/c/{ref}#members")


def _community_fields(data: dict[str, str], *, with_slug: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": data.get("name", "").strip(), "description": data.get("description", "")}
    if data.get("color"):
        fields["color"] = data["color"]
    if with_slug:
        fields["slug"] = data.get("slug", "").strip().lower()
    links = []
    for line in data.get("links", "").splitlines():
        title, _, url = line.strip().rpartition(" ")
        if url:
            links.append({"title": title.strip() or url, "url": url})
    if links or "links" in data:
        fields["links"] = links
    return {k: v for k, v in fields.items() if v is not msgspec.UNSET}


community_handlers = [home, community_new, community_create, community_update, community_member_add]
