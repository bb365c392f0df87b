"""Turning user input into Whoosh queries, or a readable `QueryError`.

The syntax is Whoosh's: words (all required), "phrases", AND/OR/NOT,
parentheses, `field:value` and `word^2` boosts. Wildcards, regexes, fuzzy
terms and ranges are not offered: they expand to arbitrarily many terms and
are the usual way to make a search engine slow on purpose.
"""

from __future__ import annotations

import copy
import functools
import re
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple

from whoosh import query as wq
from whoosh.qparser import (
    BoostPlugin,
    FieldsPlugin,
    GroupPlugin,
    MultifieldPlugin,
    OperatorsPlugin,
    PhrasePlugin,
    QueryParser,
    syntax,
)

from .schema import DEFAULT_FIELDS, SCHEMA

MAX_QUERY_LENGTH = 500
MAX_NESTING = 10

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
# Shown in the "needs a value" message.
_FIELD_EXAMPLES = {
    "type": "guide",
    "origin": "remote",
    "community": "gardening",
    "instance": "kith.example.org",
    "language": "es",
    "languages": "es",
}
# Tab and newlines are ordinary whitespace in a pasted query.
_WHITESPACE_CONTROLS = frozenset("\t\n\r")


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


def _check_balance(text: str) -> None:
    # Whoosh silently reads an unclosed quote or bracket as part of a word,
    # which searches for something other than what was typed.
    if text.count('"') % 2:
        raise QueryError('Unbalanced quotation marks: close the phrase with a second ".')
    depth = 0
    for i, part in enumerate(text.split('"')):
        if i % 2:  # inside a phrase, brackets are just text
            continue
        for ch in part:
            if ch == "(":
                depth += 1
                if depth > MAX_NESTING:
                    raise QueryError(f"Parentheses are nested too deeply (more than {MAX_NESTING} levels).")
            elif ch == ")":
                depth -= 1
                if depth < 0:
                    raise QueryError('Unbalanced parentheses: a ")" has no matching "(".')
    if depth:
        raise QueryError('Unbalanced parentheses: a "(" is never closed.')


_BINARY_OPERATORS = frozenset({"AND", "OR", "ANDNOT", "ANDMAYBE"})


def _check_operators(text: str) -> None:
    # Whoosh reads a dangling operator as the word "and"/"not", which finds
    # nothing useful and hides the mistake.
    words = text.split()
    if words[0] in _BINARY_OPERATORS:
        raise QueryError(f'"{words[0]}" needs a search term before it.')
    if words[-1] in _BINARY_OPERATORS or words[-1] == "NOT":
        raise QueryError(f'"{words[-1]}" needs a search term after it.')


def _field_list() -> str:
    return ", ".join(QUERY_FIELDS)


class _StrictFieldsPlugin(FieldsPlugin):
    """`field:value` where an unknown or valueless field is an error.

    Whoosh's own plugin quietly turns an unknown `name:` back into text; here
    it is reported so that a typo in a field name does not silently search
    for the typo.
    """

    def __init__(self) -> None:
        # Field names start with a letter, so "10:30" or "::1" stay text.
        super().__init__(expr=r"(?P<text>[^\W\d]\w*):", remove_unknown=False)

    def do_fieldnames(self, parser: QueryParser, group: syntax.GroupNode) -> syntax.GroupNode:
        for i, node in enumerate(group):
            if isinstance(node, syntax.FieldnameNode):
                self._check_field(node, group[i + 1] if i + 1 < len(group) else None)
        return super().do_fieldnames(parser, group)

    @staticmethod
    def _check_field(node: syntax.FieldnameNode, following: syntax.SyntaxNode | None) -> None:
        typed = node.fieldname
        name = typed.lower()
        if name not in QUERY_FIELDS:
            raise QueryError(
                f'Unknown field "{typed}". Searchable fields are: {_field_list()}. '
                "To search for text containing a colon, put it in double quotes."
            )
        if following is None or following.is_ws() or isinstance(following, syntax.FieldnameNode):
            example = _FIELD_EXAMPLES.get(name, "python")
            raise QueryError(f'The field "{typed}" needs a value right after the colon, e.g. {name}:{example}.')
        node.fieldname = FIELD_ALIASES.get(name, name)


def make_parser() -> QueryParser:
    """A parser over the default fields with only the safe plugins."""
    plugins = [
        _StrictFieldsPlugin(),
        PhrasePlugin(),
        GroupPlugin(),
        OperatorsPlugin(),
        BoostPlugin(),
        MultifieldPlugin(list(DEFAULT_FIELDS)),
    ]
    return QueryParser(None, SCHEMA, plugins=plugins)


def walk(q: wq.Query) -> Iterator[wq.Query]:
    """Every node of a query tree, depth first."""
    yield q
    if not q.is_leaf():
        for child in q.children():
            yield from walk(child)


def _first_error(q: wq.Query) -> str | None:
    for node in walk(q):
        error = getattr(node, "error", None)
        if error:
            return str(error)
    return None


def _unpositional_phrases(q: wq.Query) -> wq.Query:
    """Replace phrases on fields without positions by an AND of their words.

    A quoted phrase is searched in every default field, including the keyword
    fields, which keep no positions; Whoosh would refuse the whole search.
    """
    if isinstance(q, wq.Phrase):
        field = SCHEMA[q.fieldname]
        if not field.format.supports("positions"):
            return wq.And([wq.Term(q.fieldname, w, boost=q.boost) for w in q.words])
        return q
    if q.is_leaf():
        return q
    return q.apply(_unpositional_phrases)


def _parse(text: str) -> wq.Query:
    try:
        q = make_parser().parse(text)
    except QueryError:
        raise
    except RecursionError as exc:
        raise QueryError("The query is nested too deeply.") from exc
    except Exception as exc:  # the parser has no documented error types
        raise QueryError("The query could not be understood; check its syntax.") from exc
    error = _first_error(q)
    if error:
        raise QueryError(f"The query could not be understood: {error}.")
    return q


# Text of plain words (letters and digits), none of them an operator: what most searches are.
_PLAIN_WORDS = re.compile(r"[^\W_]+(?: [^\W_]+)*")
_OPERATOR_WORDS = _BINARY_OPERATORS | {"NOT"}


@functools.lru_cache(maxsize=4096)
def _word_query(word: str) -> wq.Query:
    """One plain word as the parser reads it on its own (shared: never changed, only copied)."""
    return _unpositional_phrases(_parse(word)).normalize()


def _shifted(q: wq.Query, by: int) -> wq.Query:
    """A copy of q with its character positions moved `by` characters on."""
    q = copy.copy(q) if q.is_leaf() else q.apply(lambda child: _shifted(child, by))
    if getattr(q, "startchar", None) is not None and getattr(q, "endchar", None) is not None:
        q.startchar += by
        q.endchar += by
    return q


def _plain_query(text: str) -> wq.Query | None:
    """The query for text of plain words, or None for anything else.

    The parser reads such text as the AND of its words, each read as if alone; parsing costs more
    than a search's ranking, and a few thousand words make up most queries, so each word's query is
    remembered and only its positions are moved to where the word stands (the spelling suggestion
    reads them).
    """
    if not _PLAIN_WORDS.fullmatch(text):
        return None
    words = text.split(" ")
    if not _OPERATOR_WORDS.isdisjoint(words):
        return None
    parts: list[wq.Query] = []
    at = 0
    for word in words:
        parts.append(_shifted(_word_query(word), at))
        at += len(word) + 1
    return wq.And(parts).normalize()


class ParsedQuery(NamedTuple):
    """A parsed query and the cleaned text its character positions refer to."""

    text: str
    query: wq.Query


def parse_query(text: str | None) -> ParsedQuery | None:
    """Parse a user query; None (no query at all) means "match every document".

    Raises QueryError for anything that cannot be searched as written,
    including a blank string: an empty search box is a mistake to report,
    while browsing by filters alone is asked for explicitly with None.
    """
    if text is None:
        return None
    cleaned = clean_text(text)
    if not cleaned:
        raise QueryError("The query is empty: type something to search for.")
    q = _plain_query(cleaned)
    if q is None:
        _check_balance(cleaned)
        _check_operators(cleaned)
        q = _unpositional_phrases(_parse(cleaned)).normalize()
    if isinstance(q, type(wq.NullQuery)):
        raise QueryError(
            "There is nothing to search for: the query has only operators, punctuation or very common words."
        )
    return ParsedQuery(cleaned, q)


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
    for field, value in (
        ("type", type),
        ("community", community),
        ("instance", instance),
        ("origin", None if origin == "all" else origin),
    ):
        if value:
            terms.append(wq.Term(field, _filter_value(value, field)))
    if tag:
        # Stored tags have commas replaced by spaces, so match the same way.
        terms.append(wq.Term("tags", " ".join(_filter_value(tag, "tag").replace(",", " ").split())))
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else wq.And(terms)


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
