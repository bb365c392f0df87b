"""Search: the index when it is there, a title match over guides while it is being built."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlencode

from litestar import Request, get
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Guide
from server.ratelimit import limiter_of, person_or_address
from server.search import QueryError
from server.search.backend import search_backend
from server.settings import Settings
from server.web.core import current_viewer, page
from server.web.feeds import tag_feed

PAGE_SIZE = 20
FACET_NAMES = ("type", "community", "instance", "tag")


@get("/search", name="search")
async def search(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    state: State,
    settings: Settings,
    q: str = Parameter(default="", max_length=500),
    type: Literal["guide", "offer"] | None = None,
    community: str | None = None,
    instance: str | None = None,
    tag: str | None = None,
    offset: int = Parameter(default=0, ge=0, le=10_000),
) -> Template:
    filters = {"type": type, "community": community, "instance": instance, "tag": tag}
    context: dict[str, Any] = {
        "q": q,
        "filters": filters,
        "items": [],
        "total": 0,
        "facets": {},
        "suggestion": None,
        "corrected": False,
        "relaxed": False,
        "error": None,
        "offset": offset,
        "next_offset": None,
        "fallback": False,
        # A search by tag for guides is the page a tag's feed follows.
        "feeds": [tag_feed(tag.strip().lower())] if tag and tag.strip() and type != "offer" else [],
    }
    if q.strip() or any(filters.values()):
        viewer = await current_viewer(request, db)
        limiter_of(request).check("search", person_or_address(request, viewer.username if viewer else None))
        if search_backend(state, settings).searchable():
            context.update(await _from_index(state, settings, q, filters, offset))
        else:
            context.update(await _from_titles(db, q, offset))
    context["link"] = lambda **changes: _link(q, filters, changes)
    return await page(request, db, "search/search", context, title=f"Search: {q}" if q else "Search")


async def _from_index(state: State, settings: Settings, q: str, filters: dict[str, Any], offset: int) -> dict[str, Any]:
    try:
        results = await search_backend(state, settings).search(q or None, limit=PAGE_SIZE, offset=offset, **filters)
    except QueryError as exc:
        return {"error": exc.message}
    next_offset = offset + len(results.items)
    return {
        "items": results.items,
        "total": results.total,
        "facets": {name: results.facets.get(name, {}) for name in FACET_NAMES},
        "suggestion": results.suggestion,
        "corrected": results.corrected,
        "relaxed": results.relaxed,
        "next_offset": next_offset if next_offset < results.total else None,
    }


async def _from_titles(db: AsyncSession, q: str, offset: int) -> dict[str, Any]:
    """While the index is (re)built, a plain title match keeps search useful."""
    query = select(Guide).where(
        Guide.deleted_at.is_(None), Guide.status == "published", func.lower(Guide.title).contains(q.lower().strip())
    )
    rows = list(
        (await db.scalars(query.order_by(Guide.created_at.desc()).offset(offset).limit(PAGE_SIZE + 1))).unique()
    )
    items = [
        {
            "type": "guide",
            "title": g.title,
            "snippet_html": "",
            "community": g.community.slug,
            "community_name": g.community.name,
            "instance": g.instance,
            "url": f"/c/{g.community.slug}/guides/{g.slug}"
            if g.local
            else f"/c/{g.community.slug}@{g.instance}/guides/{g.slug}",
        }
        for g in rows[:PAGE_SIZE]
    ]
    more = len(rows) > PAGE_SIZE
    return {
        "items": items,
        "total": offset + len(items) + int(more),
        "fallback": True,
        "next_offset": offset + PAGE_SIZE if more else None,
    }


def _link(q: str, filters: dict[str, Any], changes: dict[str, Any]) -> str:
    params = {"q": q, **filters, **changes}
    return "/search?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})


search_handlers = [search]
