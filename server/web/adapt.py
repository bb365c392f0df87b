"""Adapting a guide on the pages: the "Adapt for" form, the attribution and the upstream notice of an adaptation,
taking or dismissing the upstream's change, and the origin's list of its adaptations."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import ProblemError, forbidden
from server.guides import schemas
from server.guides.queries import to_schema
from server.guides.service import GuideService
from server.models import Guide
from server.settings import Settings
from server.web.core import Viewer, flash, page, see_other
from server.web.errors import signed_in
from server.web.forms import form_data
from server.web.guides import _editor_context, _find, _may_edit, guide_path
from server.web.upstream import adapt_context, cannot_adapt


async def _show_again(
    request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, viewer: Viewer, guide: Guide, error: str
) -> Template:
    shown = to_schema(guide)
    can_edit = await _may_edit(db, settings, viewer, guide)
    extra = await adapt_context(request, shown, viewer, can_edit)
    context = {"guide": shown, "can_edit": can_edit, "ref": "", **extra, "adapt_error": error}
    return await page(request, db, "guides/show", context, status_code=422, title=shown.title)


@post("/c/{ref:str}/guides/{guide_slug:str}/adapt", name="guide_adapt")
async def guide_adapt(
    ref: str, guide_slug: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template | Redirect:
    viewer = await signed_in(request, db)
    upstream = await _find(db, settings, ref, guide_slug, viewer)
    target = (await form_data(request)).get("community", "")
    try:
        guide = await GuideService(db, settings).create(
            viewer.principal, target, schemas.GuideCreate(derived_from=upstream.uri)
        )
    except ProblemError as exc:
        if exc.status not in (403, 404, 422):
            raise
        return await _show_again(request, db, settings, viewer, upstream, cannot_adapt(exc))
    flash(request, f"Adapted for {guide.community.name} as a draft: make it yours, then publish it.")
    return see_other(guide_path(guide))


@post("/c/{ref:str}/guides/{guide_slug:str}/upstream/merge", name="guide_take_upstream")
async def guide_take_upstream(
    ref: str, guide_slug: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template | Redirect:
    viewer = await signed_in(request, db)
    guide = await _find(db, settings, ref, guide_slug, viewer)
    guide, merged = await GuideService(db, settings).take_upstream(viewer.principal, guide.id)
    if not merged.conflicts:
        flash(request, f"Took the upstream's change (its revision {merged.revision}) as revision {guide.revision}.")
        return see_other(guide_path(guide))
    form = {
        "title": merged.title, "summary": guide.summary, "body_markdown": merged.markdown,
        "tags": ", ".join(guide.tags), "license": guide.license, "revision": str(guide.revision),
        "upstream_revision": str(merged.revision), "summary_of_change": f"Took upstream revision {merged.revision}",
    }  # fmt: skip
    context = _editor_context(ref, form, guide=to_schema(guide), community=guide.community, merge=merged)
    return await page(request, db, "guides/edit", context, title=f"Edit {guide.title}")


@post("/c/{ref:str}/guides/{guide_slug:str}/upstream/dismiss", name="guide_dismiss_upstream")
async def guide_dismiss_upstream(
    ref: str, guide_slug: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Redirect:
    viewer = await signed_in(request, db)
    guide = await _find(db, settings, ref, guide_slug, viewer)
    if not guide.local:
        raise forbidden("This guide lives on another instance.")
    await GuideService(db, settings).dismiss_upstream(viewer.principal, guide.id)
    flash(request, "The upstream's change is dismissed until its next one.")
    return see_other(guide_path(guide))


adapt_handlers = [guide_adapt, guide_take_upstream, guide_dismiss_upstream]
