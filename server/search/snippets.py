"""Result snippets: escaped text with the matched words in `<mark>`.

A page highlights up to 100 hits, so a snippet must cost a fraction of a millisecond. Whoosh's
highlighter runs every token of the text through the analyzer and its fragmenter; here the text is
split with the analyzer's own tokenizer pattern in C, each distinct word is analyzed once and
remembered, and fragments are cut around the matched words only. Only the stored excerpt (the start
of the body, see `documents.EXCERPT_CHARS`) is highlighted.
"""

from __future__ import annotations

import html
import re
import textwrap
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from whoosh import query as wq

from .engine.analysis import WORD_PATTERN, word_terms
from .query import positive_leaves
from .schema import SNIPPET_FIELDS, SNIPPET_SOURCES

SNIPPET_CHARS = 200
# Context kept before the first and after the last match of a fragment.
_SURROUND = 60
_FRAGMENTS = 2
# Matches looked for before choosing the fragments.
_ENOUGH_MATCHES = 8
_ELLIPSIS = "…"
# The text analyzer's words.
_WORD = re.compile(WORD_PATTERN)
# Distinct pieces of text remembered with their tokens' indexed forms; cleared when full.
_MAX_CACHED_WORDS = 100_000

_cache_lock = threading.Lock()
# Per field: each whitespace-separated piece of text seen so far with its (token, indexed terms) pairs,
# and for each indexed term the pieces holding a token indexed under it.
_pieces: dict[str, dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {}
_by_term: dict[str, dict[str, set[str]]] = {}


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


def _learn(field: str, pieces: set[str]) -> tuple[dict[str, tuple[tuple[str, tuple[str, ...]], ...]], dict]:
    """Tokenize and analyze the pieces not seen before in field; the field's two maps."""
    with _cache_lock:
        known = _pieces.setdefault(field, {})
        by_term = _by_term.setdefault(field, {})
        new = [piece for piece in pieces if piece not in known]  # (set - keys view would walk every key)
        if len(known) + len(new) > _MAX_CACHED_WORDS:
            known.clear()
            by_term.clear()
            new = pieces
        for piece in new:
            pairs = []
            # Most pieces are one plain word (the tokenizer's \w is exactly str.isalnum() or "_").
            for token in (piece,) if piece.isalnum() else _WORD.findall(piece):
                pairs.append((token, word_terms(token)))  # word_terms remembers its words
            known[piece] = tuple(pairs)
            for _, terms in pairs:
                for term in terms:
                    by_term.setdefault(term, set()).add(piece)
        return known, by_term


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _whole_token(text: str, i: int, j: int) -> bool:
    """True if text[i:j] is a whole token as _WORD splits text: a maximal run of word characters joined by
    single dots, with a leading dot where nothing of a word comes before it and a trailing ++ or #."""
    if i > 0 and (_word_char(text[i - 1]) or (text[i - 1] == "." and (i < 2 or text[i - 2] not in ".+#"))):
        return False
    if text[i] == "." and i > 0 and text[i - 1] in ".+#":
        return False
    n = len(text)
    if text[j - 1] in "+#":
        return True  # the suffix ends a token whatever follows
    if j < n and (text[j] == "#" or text.startswith("++", j)):
        return False
    return not (j < n and (_word_char(text[j]) or (text[j] == "." and j + 1 < n and _word_char(text[j + 1]))))


def _token_spans(text: str, tokens: set[str]) -> list[tuple[int, int]]:
    """The first _ENOUGH_MATCHES places (in text order) where one of tokens stands as a whole token."""
    spans: list[tuple[int, int]] = []
    for token in tokens:
        found = 0
        at = text.find(token)
        while at != -1 and found < _ENOUGH_MATCHES:
            end = at + len(token)
            if _whole_token(text, at, end):
                spans.append((at, end))
                found += 1
            at = text.find(token, at + 1)
    spans.sort()
    return spans[:_ENOUGH_MATCHES]


def _matches(field: str, text: str, terms: set[str]) -> list[tuple[int, int]]:
    # Tokens never contain whitespace, so the text is first cut at whitespace (in C, far quicker than
    # the tokenizer's pattern), and the distinct pieces are compared as sets with the pieces known to
    # hold a wanted term. Only pieces never seen before are tokenized and analyzed.
    pieces = set(text.split())
    known = _pieces.get(field)
    by_term = _by_term.get(field)
    if known is None or by_term is None or not known.keys() >= pieces:
        known, by_term = _learn(field, pieces)
    hits = [piece for term in terms for piece in tuple(by_term.get(term, ())) if piece in pieces]
    if not hits:
        return []
    tokens = {token for piece in hits for token, indexed in known[piece] if not terms.isdisjoint(indexed)}
    # Found with str.find: a pattern compiled for each page's tokens would cost more than the search.
    return _token_spans(text, tokens)


def _fragments(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """Cut (start, end, matches) fragments of at most SNIPPET_CHARS around clusters of matches."""
    frags: list[tuple[int, int, list[tuple[int, int]]]] = []
    i = 0
    while i < len(spans):
        first_start = spans[i][0]
        start = max(0, first_start - _SURROUND)
        if start:
            # Begin on a word boundary, not mid-word.
            space = text.find(" ", start, first_start)
            start = space + 1 if space != -1 else first_start
        inside = [spans[i]]
        i += 1
        while i < len(spans) and spans[i][1] - start <= SNIPPET_CHARS:
            inside.append(spans[i])
            i += 1
        end = min(len(text), inside[-1][1] + _SURROUND, start + SNIPPET_CHARS)
        if end < len(text):
            space = text.rfind(" ", inside[-1][1], end)
            end = space if space != -1 else inside[-1][1]
        frags.append((start, end, inside))
    return frags


def _format(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> str:
    out: list[str] = []
    at = start
    for s, e in spans:
        out.append(html.escape(text[at:s], quote=True))
        out.append(f"<mark>{html.escape(text[s:e], quote=True)}</mark>")
        at = e
    out.append(html.escape(text[at:end], quote=True))
    return "".join(out)


def _highlighted(field: str, text: str, terms: set[str]) -> str:
    spans = _matches(field, text, terms)
    if not spans:
        return ""
    frags = _fragments(text, spans)
    # The fragments with the most matches, shown in text order.
    best = sorted(sorted(frags, key=lambda f: -len(f[2]))[:_FRAGMENTS], key=lambda f: f[0])
    body = f" {_ELLIPSIS} ".join(_format(text, start, end, inside) for start, end, inside in best)
    # Say when the snippet starts or ends mid-text, so it reads as an excerpt.
    head = _ELLIPSIS if best[0][0] > 0 else ""
    tail = _ELLIPSIS if best[-1][1] < len(text) else ""
    return f"{head}{body}{tail}"


def _excerpt(text: str) -> str:
    short = textwrap.shorten(text, width=SNIPPET_CHARS, placeholder=f" {_ELLIPSIS}")
    return html.escape(short, quote=True)


def snippet_html(stored: Mapping[str, Any], terms: Mapping[str, set[str]]) -> str:
    """A snippet for one hit: matches in the body, else summary, else title.

    Without a match in any of them (e.g. a tag-only match), the start of the
    summary or body stands in, escaped.
    """
    for field in SNIPPET_FIELDS:
        text = stored.get(SNIPPET_SOURCES[field]) or ""
        if text and terms.get(field):
            marked = _highlighted(field, text, terms[field])
            if marked:
                return marked
    for field in ("summary", "body"):
        text = stored.get(SNIPPET_SOURCES[field]) or ""
        if text.strip():
            return _excerpt(text)
    return ""
