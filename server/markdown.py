"""Markdown to safe HTML. Every piece of HTML Kith shows passes through sanitize()."""

from __future__ import annotations

import re
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "details", "dd", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "mark", "ol", "p",
    "pre", "s", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "th",
    "thead", "tr", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
}
# A reader's address and the page they read stay with them; images far down a long guide wait until needed.
_SET_ATTRIBUTES = {"img": {"referrerpolicy": "no-referrer", "loading": "lazy"}}
# Fenced code says its language as `language-x`; no other class reaches a page, so none can borrow its styles.
_LANGUAGE = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")


def _only_language_classes(tag: str, attribute: str, value: str) -> str | None:
    if attribute != "class":
        return value
    kept = [name for name in value.split() if tag == "code" and _LANGUAGE.fullmatch(name)]
    return " ".join(kept) or None


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Raw HTML in markdown is dropped at parse time; nh3 below is the real guarantee.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=_only_language_classes,
        set_tag_attribute_values=_SET_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def render(markdown: str) -> str:
    return sanitize(_parser().render(markdown))
