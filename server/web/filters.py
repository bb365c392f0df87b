"""Jinja filters the templates share."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from litestar.contrib.jinja import JinjaTemplateEngine
from markupsafe import Markup

from server.communities.schemas import Community
from server.markdown import sanitize
from server.settings import host_of
from server.web.cards import GuideCard, OfferCard

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
    local_host = context["local_host"]
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


MACROS = "partials/shared/_macros.html"
_encode = msgspec.msgpack.Encoder().encode


class CardMarkup:
    """A card's markup (the `guide_card`, `offer_card` or `community_tile` macro), kept by everything the card
    shows: its row's values and, for cards that print one, the relative time ("5 min ago"). Pages read their
    cards from the database on every request; only the rendering of a card seen before is skipped, which took
    most of a page's template time (10 to 18 escaped values a card). The same values give the same markup, so
    nothing shown can be stale. Entries of another type than the page cards are rendered each time."""

    def __init__(self, env: Environment, macro: str, kind: type[Any], *, timed: bool = True, size: int = 4096) -> None:
        self.env = env
        self.macro = macro
        self.kind = kind
        self.timed = timed
        self.size = size
        self.cache: dict[tuple[bytes, str], Markup] = {}

    def __call__(self, entry: Any) -> Markup:
        if type(entry) is not self.kind:
            return self._render(entry)
        key = (_encode(entry), when(entry.updated_at) if self.timed else "")
        markup = self.cache.get(key)
        if markup is None:
            markup = self._render(entry)
            if len(self.cache) >= self.size:
                self.cache.clear()
            self.cache[key] = markup
        return markup

    def many(self, entries: Any) -> Markup:
        """The markup of a list of cards, one after another: one call from the template for the whole list
        (each call from a template goes through Jinja's `Context.call`, a few µs a card)."""
        return Markup("".join([self(entry) for entry in entries]))

    def _render(self, entry: Any) -> Markup:
        return getattr(self.env.get_template(MACROS).module, self.macro)(entry)  # type: ignore[no-any-return]


def prose(stored_html: str) -> Markup:
    """Guide and offer HTML, cleaned again as it is shown: rows written under an older sanitizer (or by an older
    Kith) meet today's rules too, such as images that load without a referrer."""
    return Markup(sanitize(stored_html))


def register_filters(engine: JinjaTemplateEngine, local_host: str) -> None:
    """`local_host` is the instance's own host, for `community_ref` (a global, so that macros imported without
    the page's context can use it)."""
    env = engine.engine
    env.filters.update(when=when, iso=iso, community_ref=community_ref, text_on=text_on, prose=prose, host_of=host_of)
    env.globals["htmx_version"] = HTMX_VERSION
    env.globals["local_host"] = local_host
    env.globals["guide_card"] = CardMarkup(env, "guide_card", GuideCard)
    env.globals["offer_card"] = CardMarkup(env, "offer_card", OfferCard)
    env.globals["community_tile"] = CardMarkup(env, "community_tile", Community, timed=False)
    env.trim_blocks = True
    env.lstrip_blocks = True
    # Templates change with a release, not while the server runs: no stat of every template on every render.
    env.auto_reload = False
