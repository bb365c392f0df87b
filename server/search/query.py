"""Turning what people type into Whoosh queries: web-search syntax, never a syntax error.

The language, as the search page and the README describe it:

- words: a result contains every word (in any form: stemmed, accents folded), except common words
  such as "the", "of" or "how", which are not required; a query of nothing but common words is searched
  as a phrase. The last word also matches words it begins (`jupy` finds JupyterHub) unless a space
  follows it;
- `"a phrase"`: these words in this order, common words included;
- `-word`, `-"a phrase"`, `NOT word`: results without it;
- `a OR b`: either (OR binds its neighbours: `python OR julia notebooks` is (python or julia) and
  notebooks); `AND` may be written and changes nothing;
- `field:value` or `field:"two words"` for the fields in QUERY_FIELDS (`tag:`, `community:`,
  `instance:`, ...).

Anything else (a stray quote or bracket, an unknown `name:`, an operator with nothing beside it) is
searched as words. Only input that cannot be searched at all is a `QueryError`: control characters,
more than MAX_QUERY_LENGTH characters, nothing but punctuation. Wildcards, regexes and ranges are not
offered: they expand to arbitrarily many terms and are the usual way to make a search engine slow on
purpose (the last word's prefix is expanded to at most a few terms, see `prefixes.py`).

Words are analyzed with the index's own analysis (`engine.analysis`), so a query never requires a term
the index cannot hold.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from whoosh import query as wq

from .engine.analysis import fold, is_stop_word, word_terms, words
from .schema import DEFAULT_FIELDS, SCHEMA

MAX_QUERY_LENGTH = 500
# A prefix shorter than this is not expanded (one letter begins too many words to mean anything).
MIN_PREFIX = 2

# Singular spellings people naturally type, mapped to the index's fields.
FIELD_ALIASES = {"tag": "tags", "topic": "topics", "language": "languages"}
QUERY_FIELDS = (
    "title",
    "summary",
    "body",
    "tag",
    "tags",
    "topic",
    "topics",
    "language",
    "languages",
    "type",
    "community",
    "instance",
    "origin",
)
TEXT_FIELDS = ("title", "summary", "body")
KEYWORD_FIELDS = ("tags", "topics", "languages")
PREFIX_FIELDS = (*TEXT_FIELDS, "tags", "topics")
# Fields whose typed words take part in spelling suggestions.
SPELLED_FIELDS = (None, *TEXT_FIELDS, "tags", "topics")
# Tab and newlines are ordinary whitespace in a pasted query.
_WHITESPACE_CONTROLS = frozenset("\t\n\r")
_OPERATORS = frozenset({"AND", "OR", "NOT"})
_FIELD_PREFIX = re.compile(r"([^\W\d]\w*):(?=[^\s])")


class QueryError(ValueError):
    """The query (or a filter) cannot be searched; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def clean_text(text: str, *, what: str = "The query") -> str:
    """Reject control characters and overlong input; return text with plain spaces."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"{what} is too long ({len(text)} characters; the limit is {MAX_QUERY_LENGTH}).")
    for ch in text:
        if ch in _WHITESPACE_CONTROLS:
            continue
        category = unicodedata.category(ch)
        if category == "Cc":
            raise QueryError(f"{what} contains a control character (U+{ord(ch):04X}).")
        if category == "Cs":  # a lone surrogate: Whoosh cannot even encode it
            raise QueryError(f"{what} contains an invalid character (U+{ord(ch):04X}).")
    return " ".join(text.split())


# Reading the text


@dataclass
class Item:
    """One thing typed: a run of words, a quoted phrase, or an operator; `start` is where its text starts."""

    kind: str  # "words", "phrase" or "operator"
    text: str
    start: int
    field: str | None = None
    negated: bool = False


@dataclass
class Clause:
    """Items of which a result must contain one (or, negated, none)."""

    items: list[Item] = field(default_factory=list)
    negated: bool = False


def _items(text: str) -> list[Item]:
    out: list[Item] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        # "-word" and '-"a phrase"' exclude; a lone "-" or "--" is punctuation.
        negated = (text[i] == "-" and i + 1 < n and text[i + 1] not in ' -"') or text.startswith('-"', i)
        if negated:
            i += 1
        name = None
        match = _FIELD_PREFIX.match(text, i)
        if match and match.group(1).lower() in QUERY_FIELDS:
            name = FIELD_ALIASES.get(match.group(1).lower(), match.group(1).lower())
            i = match.end()
        if text[i] == '"':
            close = text.find('"', i + 1)
            if close != -1:
                out.append(Item("phrase", text[i + 1 : close], i + 1, name, negated))
                i = close + 1
                continue
            i += 1  # a quote never closed: what follows is plain words
            if i >= n:
                continue
        end = i
        while end < n and text[end] not in ' "':
            end += 1
        chunk = text[i:end]
        kind = "operator" if chunk in _OPERATORS and not negated and name is None else "words"
        if chunk:
            out.append(Item(kind, chunk, i, name, negated))
        i = end
    return out


def _clauses(items: list[Item]) -> list[Clause]:
    clauses: list[Clause] = []
    pending_not = join_or = False
    for item in items:
        if item.kind == "operator":
            if item.text == "NOT":
                pending_not = True
            elif item.text == "OR":
                join_or = bool(clauses) and not clauses[-1].negated
            continue
        negated = item.negated or pending_not
        item.negated = negated
        if join_or and not negated:
            clauses[-1].items.append(item)
        else:
            clauses.append(Clause([item], negated))
        pending_not = join_or = False
    if not clauses:
        # Nothing but operators ("OR", "NOT"): they were meant as words.
        return [Clause([Item("words", item.text, item.start)]) for item in items]
    return clauses


# Building the query


def _term_query(name: str, word: str) -> wq.Query:
    """One typed word in one field: its whole term, or for a compound (DataFrames.jl) all of its parts."""
    if name in KEYWORD_FIELDS:
        return wq.Term(name, word.lower())
    terms = word_terms(word)
    if len(terms) == 1:
        return wq.Term(name, terms[0])
    return wq.Or([wq.Term(name, terms[0]), wq.And([wq.Term(name, t) for t in terms[1:]])])


def _word_query(name: str | None, word: str, *, prefix: bool = False) -> wq.Query:
    names = DEFAULT_FIELDS if name is None else (name,)
    parts: list[wq.Query] = [_term_query(f, word) for f in names]
    if prefix:
        folded = fold(word)
        # Text fields hold stems: "readme" is indexed as "readm", so its stem is the prefix there when the
        # word begins with it.
        stem = word_terms(word)[0]
        stem = stem if folded.startswith(stem) else folded
        parts += [wq.Prefix(f, stem if f in TEXT_FIELDS else folded) for f in names if f in PREFIX_FIELDS]
    return parts[0] if len(parts) == 1 else wq.Or(parts)


def _exact_value(name: str, text: str) -> wq.Query | None:
    # Stored keywords have commas replaced by spaces and spaces collapsed.
    value = " ".join(text.lower().replace(",", " ").split())
    return wq.Term(name, value) if value else None


def _phrase_query(name: str | None, text: str) -> wq.Query | None:
    if name is not None and name not in TEXT_FIELDS:
        return _exact_value(name, text)
    typed = [w for w in words(text) if word_terms(w)]
    if not typed:
        return None
    if len(typed) == 1:
        return _word_query(name, typed[0])
    terms = [word_terms(w)[0] for w in typed]
    parts: list[wq.Query] = [wq.Phrase(f, terms) for f in (TEXT_FIELDS if name is None else (name,))]
    if name is None:
        parts += [q for f in ("tags", "topics") if (q := _exact_value(f, text))]
    return parts[0] if len(parts) == 1 else wq.Or(parts)


def _content_words(item: Item) -> list[str]:
    return [w for w in words(item.text) if word_terms(w) and not is_stop_word(w)]


def _item_query(item: Item, *, prefix: bool) -> wq.Query | None:
    if item.kind == "phrase":
        return _phrase_query(item.field, item.text)
    if item.field is not None and item.field not in TEXT_FIELDS:
        return _exact_value(item.field, item.text)
    content = _content_words(item)
    if not content:
        return None
    queries = [
        _word_query(item.field, w, prefix=prefix and i == len(content) - 1 and prefixable(w))
        for i, w in enumerate(content)
    ]
    return queries[0] if len(queries) == 1 else wq.And(queries)


def prefixable(word: str) -> bool:
    return len(word) >= MIN_PREFIX and word.isalnum() and len(word_terms(word)) == 1


def any_of(queries: list[wq.Query]) -> wq.Query | None:
    if not queries:
        return None
    return queries[0] if len(queries) == 1 else wq.Or(queries)


class TypedWord(NamedTuple):
    """A word of the query a spelling suggestion may replace: where it is, and the field it is searched in."""

    start: int
    end: int
    word: str
    field: str | None


class ParsedQuery(NamedTuple):
    """A query as Whoosh reads it (with `Prefix` nodes for `expand_prefixes`), and what was typed."""

    text: str
    query: wq.Query
    words: tuple[TypedWord, ...]
    prefix: bool


def _typed_words(clauses: list[Clause]) -> Iterator[TypedWord]:
    for clause in clauses:
        if clause.negated:
            continue
        for item in clause.items:
            if item.field not in SPELLED_FIELDS:
                continue
            if item.field in KEYWORD_FIELDS:
                yield TypedWord(item.start, item.start + len(item.text), item.text, item.field)
                continue
            for match in re.finditer(r"\S+", item.text):
                for word in words(match.group()):
                    if not is_stop_word(word):
                        at = item.start + match.start() + match.group().find(word)
                        yield TypedWord(at, at + len(word), word, item.field)


def parse_query(text: str | None, *, prefix: bool = True) -> ParsedQuery | None:
    """Parse a user query; None (no query at all) means "match every document".

    `prefix`: the last word also matches the words it begins (off when the person typed a space after it).
    Raises QueryError for a blank query (an empty search box is a mistake to report, while browsing by
    filters alone is asked for explicitly with None) and for one with nothing searchable in it.
    """
    if text is None:
        return None
    prefix = prefix and not text[-1:].isspace()
    cleaned = clean_text(text)
    if not cleaned:
        raise QueryError("The query is empty: type something to search for.")
    items = _items(cleaned)
    # Only what is typed last is still being typed.
    last = items[-1] if items and items[-1].kind == "words" else None
    clauses = _clauses(items)
    positive = [c for c in clauses if not c.negated]
    only_common = all(
        i.kind == "words" and i.field is None and not _content_words(i) for c in positive for i in c.items
    )
    if positive and only_common:
        # Nothing but common words ("the who", "to be or not"): search them as they were typed.
        joined = " ".join(i.text for c in positive for i in c.items)
        positive = [Clause([Item("phrase", joined, positive[0].items[0].start)])]
        clauses = positive + [c for c in clauses if c.negated]
    required = []
    for clause in positive:
        alternatives = [q for i in clause.items if (q := _item_query(i, prefix=prefix and i is last and not i.negated))]
        if (q := any_of(alternatives)) is not None:
            required.append(q)
    excluded = any_of([q for c in clauses if c.negated for i in c.items if (q := _item_query(i, prefix=False))])
    if not required and excluded is None:
        raise QueryError("There is nothing to search for: the query has only punctuation.")
    if excluded is not None:
        # As an And with a Not (not AndNot): Whoosh's AndNot matcher can count deleted documents.
        required.append(wq.Not(excluded))
    query: wq.Query = wq.And(required) if len(required) > 1 else required[0]
    return ParsedQuery(cleaned, query.normalize(), tuple(_typed_words(clauses)), prefix)


def clauses_of(text: str) -> tuple[list[Clause], Item | None]:
    """What was typed, read as `parse_query` reads it (call that first: it rejects what cannot be searched), for
    backends that build their own query: the clauses with something to search (a clause's items are alternatives,
    a negated one excludes them), and the words still being typed, which may also match the words they begin."""
    items = _items(clean_text(text))
    clauses = _clauses(items)  # marks the items a NOT negates
    last = items[-1] if items and items[-1].kind == "words" and not items[-1].negated else None
    kept = [Clause([i for i in c.items if _item_query(i, prefix=False)], c.negated) for c in clauses]
    return [c for c in kept if c.items], last


def exact_value(text: str) -> str:
    """A keyword or ID value as stored: lower case, commas replaced by spaces, spaces collapsed."""
    return " ".join(text.lower().replace(",", " ").split())


# Filters


def _filter_value(value: str, what: str) -> str:
    cleaned = clean_text(value, what=f"The {what} filter")
    return cleaned.lower()


def build_filter(
    *,
    type: str | None = None,
    community: str | None = None,
    instance: str | None = None,
    tag: str | None = None,
    origin: str | None = None,
) -> wq.Query | None:
    """An exact-match filter on the ID fields and tags, or None for no filter."""
    terms: list[wq.Query] = []
    for name, value in (
        ("type", type),
        ("community", community),
        ("instance", instance),
        ("origin", None if origin == "all" else origin),
    ):
        if value:
            terms.append(wq.Term(name, _filter_value(value, name)))
    if tag:
        # Stored tags have commas replaced by spaces, so match the same way.
        terms.append(wq.Term("tags", " ".join(_filter_value(tag, "tag").replace(",", " ").split())))
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else wq.And(terms)


def walk(q: wq.Query) -> Iterator[wq.Query]:
    """Every node of a query tree, depth first."""
    yield q
    if not q.is_leaf():
        for child in q.children():
            yield from walk(child)


def positive_leaves(q: wq.Query) -> Iterator[wq.Query]:
    """Terms and phrases a matching document contains (not those under NOT)."""
    if isinstance(q, wq.Not):
        return
    if isinstance(q, wq.AndNot):
        yield from positive_leaves(q.a)
        return
    if isinstance(q, (wq.Term, wq.Phrase)):
        yield q
        return
    if not q.is_leaf():
        for child in q.children():
            yield from positive_leaves(child)


assert set(DEFAULT_FIELDS) <= set(SCHEMA.names())
