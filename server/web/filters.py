"""Jinja filters the templates share."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context
from litestar.contrib.jinja import JinjaTemplateEngine

HTMX_VERSION = "2.0.11"


def when(value: datetime | None) -> str:
    if value is None:
        return "never"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - value).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return value.strftime("%-d %b %Y")


def iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


@pass_context
def community_ref(context: Context, community: Any) -> str:
    """How a page URL names a community: `slug` here, `slug@host` from elsewhere."""
    local_host = context["settings"].host
    return community.slug if community.instance == local_host else f"{community.slug}@{community.instance}"


@lru_cache(maxsize=1024)
def text_on(color: str) -> str:
    """Black or white, whichever reads better on the community's colour (a handful of colours, many calls)."""
    try:
        r, g, b = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    except (ValueError, IndexError):
        return "#fff"

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    return "#111" if luminance > 0.18 else "#fff"


def register_filters(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.filters.update(when=when, iso=iso, community_ref=community_ref, text_on=text_on)
    env.globals["htmx_version"] = HTMX_VERSION
    env.trim_blocks = True
    env.lstrip_blocks = True
