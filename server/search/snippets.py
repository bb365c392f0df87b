"""Result snippets: escaped text with the matched words in `<mark>`."""

from __future__ import annotations

import html
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from whoosh import highlight
from whoosh import query as wq

from .query import positive_leaves
from .schema import SCHEMA, SNIPPET_FIELDS

SNIPPET_CHARS = 200
# Only this much of a long text is searched for matches to mark: analysing a
# whole book per hit would dominate the search. A later match falls back to
# the plain excerpt.
HIGHLIGHT_SCAN_CHARS = 20_000
_FRAGMENTS = 2
_ELLIPSIS = "…"


class MarkFormatter(highlight.Formatter):
    """Wraps matches in `<mark>` and HTML-escapes everything else.

    Whoosh's HtmlFormatter adds class attributes and leaves quotes alone;
    the only markup a snippet may carry is a bare `<mark>`.
    """

    between = f" {_ELLIPSIS} "

    def _text(self, text: str) -> str:
        return html.escape(text, quote=True)

    def format_token(self, text: str, token: Any, replace: bool = False) -> str:
        word = highlight.get_text(text, token, replace)
        return f"<mark>{html.escape(word, quote=True)}</mark>"

    def format(self, fragments: list[highlight.Fragment], replace: bool = False) -> str:
        if not fragments:
            return ""
        body = super().format(fragments, replace=replace)
        # Say when a fragment starts or ends mid-text, so it reads as an excerpt.
        head = _ELLIPSIS if fragments[0].startchar > 0 else ""
        tail = _ELLIPSIS if fragments[-1].endchar < len(fragments[-1].text) else ""
        return f"{head}{body}{tail}"


def terms_by_field(q: wq.Query | None) -> dict[str, set[str]]:
    """The words worth marking in each snippet field (negated ones excluded)."""
    found: dict[str, set[str]] = {name: set() for name in SNIPPET_FIELDS}
    if q is None:
        return found
    for leaf in positive_leaves(q):
        if leaf.fieldname not in found:
            continue
        words: Iterable[str] = leaf.words if isinstance(leaf, wq.Phrase) else [leaf.text]
        found[leaf.fieldname].update(str(w) for w in words)
    return found


def _highlighted(field: str, text: str, terms: set[str]) -> str:
    fragmenter = highlight.ContextFragmenter(maxchars=SNIPPET_CHARS, surround=60, charlimit=HIGHLIGHT_SCAN_CHARS)
    return highlight.highlight(
        text,
        terms,
        SCHEMA[field].analyzer,
        fragmenter,
        MarkFormatter(),
        top=_FRAGMENTS,
    )


def _excerpt(text: str) -> str:
    short = textwrap.shorten(text, width=SNIPPET_CHARS, placeholder=f" {_ELLIPSIS}")
    return html.escape(short, quote=True)


def snippet_html(stored: Mapping[str, Any], terms: Mapping[str, set[str]]) -> str:
    """A snippet for one hit: matches in the body, else summary, else title.

    Without a match in any of them (e.g. a tag-only match), the start of the
    summary or body stands in, escaped.
    """
    for field in SNIPPET_FIELDS:
        text = stored.get(field) or ""
        if text and terms.get(field):
            marked = _highlighted(field, text, terms[field])
            if marked:
                return marked
    for field in ("summary", "body"):
        text = stored.get(field) or ""
        if text.strip():
            return _excerpt(text)
    return ""
