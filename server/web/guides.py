"""Guide pages: reading, writing with a live preview, editing with conflict care, revisions and diffs."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.service import AccountService
from server.communities.service import CommunityService
from server.db import fetch_all
from server.errors import ProblemError, forbidden, not_found
from server.etags import make_etag
from server.guides import rules, schemas
from server.guides.diffs import line_diff
from server.guides.queries import PUBLISHED_GUIDE, GuideView, guide_view, to_schema
from server.guides.service import GuideService
from server.markdown import render
from server.models import Guide
from server.ratelimit import limiter_of, person_or_address
from server.refs import split_ref
from server.settings import Settings
from server.web.core import Viewer, app_engine, current_viewer, flash, fragment, is_fragment_request, page, see_other
from server.web.errors import signed_in
from server.web.feeds import guide_feeds
from server.web.forms import build, field_errors, form_data, labels
from server.web.upstream import adapt_context


async def _find(db: AsyncSession, settings: Settings, ref: str, guide_slug: str, viewer: Viewer | None) -> Guide:
    community = await CommunityService(db, settings).get(ref)
    guide_id = await db.scalar(
        select(Guide.id).where(Guide.community_id == community.id, Guide.slug == guide_slug, Guide.deleted_at.is_(None))
    )
    if guide_id is None:
        raise not_found("Guide")
    return await GuideService(db, settings).get(guide_id, viewer.principal if viewer else None)


def _edit_right(viewer: Viewer | None, guide: Guide | GuideView) -> bool | None:
    """Whether the viewer may edit the guide, where that is known without their role in its community (None)."""
    if viewer is None or not guide.local:
        return False
    return rules.edit_right(viewer, guide.author_id)


async def _may_edit(db: AsyncSession, settings: Settings, viewer: Viewer | None, guide: Guide | GuideView) -> bool:
    known = _edit_right(viewer, guide)
    if known is not None:
        return known
    assert viewer is not None  # _edit_right answers for anonymous visitors
    role = await AccountService(db, settings).role_in(viewer.user_id, guide.community_id)
    return rules.may_edit(viewer, guide.author_id, role)


def guide_path(guide: schemas.Guide | Guide) -> str:
    community = guide.community
    ref = community.slug if guide.local else f"{community.slug}@{community.instance}"
    return f"/c/{ref}/guides/{guide.slug}"


@get("/c/{ref:str}/guides/{guide_slug:str}", name="guide_show")
async def guide_show(ref: str, guide_slug: str, request: Request[Any, Any, Any]) -> Template:
    """No injected session: an anonymous visitor's published guide is read without one."""
    settings: Settings = request.app.state.settings
    viewer = await current_viewer(request)
    # A published guide is everyone's to read: one light statement. Anything else (a draft, or nothing at
    # this address) takes the service's path, which decides who may see it and how the 404 reads.
    slug, host = split_ref(ref, settings.host)
    params = {"community_slug": slug, "community_instance": host, "guide_slug": guide_slug}
    rows = await fetch_all(app_engine(request), PUBLISHED_GUIDE, params, quick=True)
    shown: GuideView | schemas.Guide
    if rows:
        shown = guide_view(rows[0])
        right = _edit_right(viewer, shown)
        if right is None:  # it depends on the viewer's role: a session only for that lookup
            async with request.app.state.sessionmaker() as db:
                right = await _may_edit(db, settings, viewer, shown)
        can_edit = right
    else:
        async with request.app.state.sessionmaker() as db:
            guide = await _find(db, settings, ref, guide_slug, viewer)
            shown = to_schema(guide)
            can_edit = await _may_edit(db, settings, viewer, guide)
    context = {
        "guide": shown,
        "can_edit": can_edit,
        "ref": ref,
        "feeds": guide_feeds(shown, settings.host),
        **await adapt_context(request, shown, viewer, can_edit),
    }
    return await page(request, None, "guides/show", context, title=shown.title)


def _editor_context(ref: str, form: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "ref": ref, "form": form, "errors": {}, "preview_html": "", "conflict": None, "guide": None, "merge": None,
        **extra,
    }  # fmt: skip


@get("/c/{ref:str}/new-guide", name="guide_new")
async def guide_new(ref: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template:
    await signed_in(request, db)
    community = await CommunityService(db, settings).get_local(ref)
    context = _editor_context(ref, {"license": "CC-BY-4.0"}, community=community)
    return await page(request, db, "guides/edit", context, title="New guide")


@post("/c/{ref:str}/guides", name="guide_create")
async def guide_create(
    ref: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template | Redirect:
    viewer = await signed_in(request, db)
    community = await CommunityService(db, settings).get_local(ref)
    data = await form_data(request)
    if data.get("action") == "preview":
        limiter_of(request).check("preview", person_or_address(request, viewer.username))
        context = _editor_context(ref, data, community=community, preview_html=render(data.get("body_markdown", "")))
        return await page(request, db, "guides/edit", context, title="New guide")
    try:
        payload = build(schemas.GuideCreate, _guide_fields(data))
        guide = await GuideService(db, settings).create(viewer.principal, ref, payload)
    except ProblemError as exc:
        if exc.status != 422:
            raise
        context = _editor_context(ref, data, community=community, errors=field_errors(exc))
        return await page(request, db, "guides/edit", context, status_code=422, title="New guide")
    flash(request, "Draft saved." if guide.status == "draft" else "Guide published.")
    return see_other(guide_path(guide))


@get("/c/{ref:str}/guides/{guide_slug:str}/edit", name="guide_edit")
async def guide_edit(
    ref: str, guide_slug: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template:
    viewer = await signed_in(request, db)
    guide = await _find(db, settings, ref, guide_slug, viewer)
    if not await _may_edit(db, settings, viewer, guide):
        raise forbidden("Only the guide's author or a moderator of its community can change it.")
    form = {
        "title": guide.title,
        "summary": guide.summary,
        "body_markdown": guide.body_markdown,
        "tags": ", ".join(guide.tags),
        "license": guide.license,
        "revision": str(guide.revision),
    }
    context = _editor_context(
        ref, form, guide=to_schema(guide), community=guide.community, preview_html=guide.body_html
    )
    return await page(request, db, "guides/edit", context, title=f"Edit {guide.title}")


@post("/c/{ref:str}/guides/{guide_slug:str}/edit", name="guide_update")
async def guide_update(
    ref: str, guide_slug: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template | Redirect:
    viewer = await signed_in(request, db)
    guide = await _find(db, settings, ref, guide_slug, viewer)
    data = await form_data(request)
    current = to_schema(guide)
    base = _editor_context(ref, data, guide=current, community=guide.community)
    if data.get("action") == "preview":
        limiter_of(request).check("preview", person_or_address(request, viewer.username))
        context = {**base, "preview_html": render(data.get("body_markdown", ""))}
        return await page(request, db, "guides/edit", context, title=f"Edit {guide.title}")
    # The revision the editor started from: if someone saved since, the service refuses (412).
    if_match = make_etag(guide.id.hex[:12], data.get("revision", ""))
    try:
        fields = {**_guide_fields(data), "summary_of_change": data.get("summary_of_change", "")}
        if data.get("upstream_revision", "").isdigit():  # the save of a merge with the upstream's change
            fields["upstream_revision"] = int(data["upstream_revision"])
        payload = build(schemas.GuideUpdate, fields)
        guide = await GuideService(db, settings).update(viewer.principal, guide.id, payload, if_match)
    except ProblemError as exc:
        if exc.status == 412:
            context = {**base, "conflict": current}
            return await page(request, db, "guides/edit", context, status_code=409, title=f"Edit {guide.title}")
        if exc.status != 422:
            raise
        context = {**base, "errors": field_errors(exc)}
        return await page(request, db, "guides/edit", context, status_code=422, title=f"Edit {guide.title}")
    flash(request, f"Saved as revision {guide.revision}.")
    return see_other(guide_path(guide))


@post("/preview", name="guide_preview")
async def guide_preview(request: Request[Any, Any, Any], db: AsyncSession) -> Template | Redirect:
    """The live preview: the same sanitizing renderer the service stores with."""
    data = await form_data(request)
    if not is_fragment_request(request):
        return see_other("/")
    viewer = await current_viewer(request, db)
    limiter_of(request).check("preview", person_or_address(request, viewer.username if viewer else None))
    return await fragment(
        request, db, "partials/guides/_preview.html", {"preview_html": render(data.get("body_markdown", ""))}
    )


@get("/c/{ref:str}/guides/{guide_slug:str}/revisions", name="guide_revisions")
async def guide_revisions(
    ref: str,
    guide_slug: str,
    request: Request[Any, Any, Any],
    db: AsyncSession,
    settings: Settings,
    older: int | None = Parameter(query="from", default=None, ge=1),
    newer: int | None = Parameter(query="to", default=None, ge=1),
) -> Template:
    viewer = await current_viewer(request, db)
    guide = await _find(db, settings, ref, guide_slug, viewer)
    principal = viewer.principal if viewer else None
    service = GuideService(db, settings)
    revisions = await service.revisions(guide.id, principal)
    newer = newer or (revisions[0].number if revisions else 1)
    older_number = older or max(1, newer - 1)
    diff: list[dict[str, str]] = []
    if revisions and older_number != newer:
        left, right = await service.revision_pair(guide.id, older_number, newer, principal)
        diff = line_diff(left.body_markdown, right.body_markdown)
        if left.title != right.title:
            diff.insert(0, {"kind": "note", "text": f"Title: “{left.title}” → “{right.title}”"})
    shown = to_schema(guide)
    context = {
        "guide": shown, "revisions": revisions, "older": older_number, "newer": newer, "diff": diff,
        "feeds": guide_feeds(shown, settings.host)[:1],
    }  # fmt: skip
    return await page(request, db, "guides/revisions", context, title=f"Revisions of {guide.title}")


def _guide_fields(data: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "title": data.get("title", ""),
        "body_markdown": data.get("body_markdown", ""),
        "summary": data.get("summary", ""),
        "tags": labels(data.get("tags", "")),
        "license": data.get("license", "").strip() or "CC-BY-4.0",
        "status": "draft" if data.get("action") == "draft" else "published",
    }
    return fields


guide_handlers = [guide_show, guide_new, guide_create, guide_edit, guide_update, guide_preview, guide_revisions]
