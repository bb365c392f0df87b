"""Home, community pages, and creating and editing communities."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.communities import schemas
from server.communities.queries import MEMBERS, ONE_BY_REF, community_from_row, member_from_row
from server.communities.service import CommunityService
from server.db import fetch_all
from server.errors import ProblemError, forbidden, not_found
from server.pagination import split_page
from server.settings import Settings
from server.web.cards import guide_card, guide_cards_query, offer_card, offer_cards_query
from server.web.core import Viewer, app_engine, current_viewer, flash, page, see_other
from server.web.errors import signed_in
from server.web.feeds import community_feed_of, instance_feed
from server.web.forms import build, field_errors, form_data

HOME_GUIDES = 10
HOME_OFFERS = 6
COMMUNITIES = 100
COMMUNITY_GUIDES = 20
COMMUNITY_OFFERS = 50
DRAFTS = 50


@get("/", name="home")
async def home(request: Request[Any, Any, Any]) -> Template:
    """Reads without a session (none is opened for an anonymous visitor) and with no injected parameters: each
    costs Litestar a dependency or a validation per request."""
    settings: Settings = request.app.state.settings
    viewer = await current_viewer(request)
    cursor = request.query_params.get("cursor") or None
    communities_query, communities_params = CommunityService.list_statement_for(settings, limit=COMMUNITIES)
    guides_query, guides_params = guide_cards_query(
        viewer.principal if viewer else None, by_community=False, limit=HOME_GUIDES, cursor=cursor
    )
    offers_query = offer_cards_query(by_community=False, open_only=True, limit=HOME_OFFERS)

    # Each is a page of an index read in order: quick reads, run on the event loop on SQLite.
    engine = app_engine(request)
    communities = await fetch_all(engine, communities_query, communities_params, quick=True, into=community_from_row)
    guides, next_cursor = split_page(
        await fetch_all(engine, guides_query, guides_params, quick=True, into=guide_card), HOME_GUIDES
    )
    offers = await fetch_all(engine, offers_query, quick=True, into=offer_card)
    context = {
        "communities": communities[:COMMUNITIES],
        "guides": guides,
        "offers": offers[:HOME_OFFERS],
        "next_cursor": next_cursor,
        "cursor": cursor,
        "feeds": [instance_feed(settings)],
    }
    return await page(request, None, "home/home", context, title=settings.instance_name)


async def community_page(
    request: Request[Any, Any, Any], db: AsyncSession | None, settings: Settings, ref: str
) -> Template:
    """The human page of a community; the ActivityPub route hands browsers here. Its reads need no session."""
    viewer = await current_viewer(request, db)
    principal = viewer.principal if viewer else None
    cursor = request.query_params.get("cursor") or None
    guides_query, guides_params = guide_cards_query(principal, by_community=True, limit=COMMUNITY_GUIDES, cursor=cursor)
    drafts = None
    if viewer is not None:
        drafts = guide_cards_query(principal, by_community=True, status="draft", limit=DRAFTS)
    offers_query = offer_cards_query(by_community=True, open_only=False, limit=COMMUNITY_OFFERS)

    # A row by its key and pages of indexes read in order: quick reads, run on the event loop on SQLite. The
    # drafts' statement carries the visibility rule and stays off the loop.
    engine = app_engine(request)
    found = await fetch_all(
        engine, ONE_BY_REF, CommunityService.ref_params_for(settings, ref), quick=True, into=community_from_row
    )
    if not found:
        raise not_found(f"Community {ref!r}")
    community = found[0]
    bound = {"community_id": community.id}
    guides, next_cursor = split_page(
        await fetch_all(engine, guides_query, {**guides_params, **bound}, quick=True, into=guide_card),
        COMMUNITY_GUIDES,
    )
    drafts_shown = []
    if drafts is not None:
        drafts_shown = (await fetch_all(engine, drafts[0], {**drafts[1], **bound}, into=guide_card))[:DRAFTS]
    offers = await fetch_all(engine, offers_query, bound, quick=True, into=offer_card)
    members = await fetch_all(engine, MEMBERS, bound, quick=True, into=member_from_row)
    context = {
        "community": community,
        "guides": guides,
        "drafts": drafts_shown,
        "offers": offers[:COMMUNITY_OFFERS],
        "members": members,
        "role": _role(viewer, community, members),
        "next_cursor": next_cursor,
        "cursor": cursor,
        "errors": {},
        "feeds": [community_feed_of(community, settings.host)],
    }
    return await page(request, db, "community/show", context, title=community.name, at_object_id=True)


def _role(viewer: Viewer | None, community: schemas.Community, members: list[schemas.Member]) -> str | None:
    if viewer is None or not community.local:
        return None
    if viewer.is_admin:
        return "moderator"
    return next((m.role for m in members if m.username == viewer.username), None)


@get("/communities/new", name="community_new")
async def community_new(request: Request[Any, Any, Any], db: AsyncSession) -> Template:
    viewer = await signed_in(request, db)
    if not viewer.is_admin:
        raise forbidden("Only instance admins can create communities.")
    return await page(request, db, "community/new", {"form": {}, "errors": {}}, title="New community")


@post("/communities", name="community_create")
async def community_create(
    request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template | Redirect:
    viewer = await signed_in(request, db)
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
    viewer = await signed_in(request, db)
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
    viewer = await signed_in(request, db)
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
