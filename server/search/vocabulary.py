"""What the `postgres` backend asks of its words: the whoosh backend's prefix and spelling rules, in SQL.

Whoosh reads term lists and document frequencies from its index; here the GIN index on the vectors answers
how many public entries hold a term, and `search_vector_words` (the words of public titles and tags, see
`vectors.py`) holds the words a respelling may be. A word in that table that no public entry holds any more
is found in no entry, so it is never suggested.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from whoosh import query as wq

from .engine.analysis import word_terms
from .query import KEYWORD_FIELDS, ParsedQuery, TypedWord, any_of
from .schema import DEFAULT_FIELDS
from .spelling import MAX_EDITS, RARE, RARE_RATIO, checked, closest, respelled, respelling_fields
from .tsquery import HITS, WEIGHTS, tsquery
from .vectors import KEYWORD_MARKS, lexeme

# Entries counted for a candidate respelling at most: enough to order candidates by frequency without counting
# every entry that holds a common word.
COUNT_CAP = 1000
_COUNTS = (
    "SELECT q.n, (SELECT count(*) FROM (SELECT 1 FROM " + HITS + " WHERE hits.v @@ CAST(q.query AS tsquery) "
    "LIMIT :cap) AS found) AS documents FROM unnest(CAST(:queries AS text[])) WITH ORDINALITY AS q(query, n)"
)
_CANDIDATES = (
    "SELECT field, word FROM search_vector_words WHERE field = ANY(CAST(:fields AS text[])) "
    "AND word >= :low AND word < :high AND length(word) BETWEEN :shortest AND :longest"
)


async def _documents(connection: Any, queries: list[str], cap: int) -> list[int]:
    """How many public entries match each tsquery, counting up to cap."""
    if not queries:
        return []
    rows = await connection.execute(text(_COUNTS), {"queries": queries, "cap": cap})
    found = {row.n: row.documents for row in rows}
    return [found[n] for n in range(1, len(queries) + 1)]


def _field_query(name: str, word: str) -> str:
    """The tsquery of a typed word in one field, as `spelling._frequency` looks it up."""
    if name in KEYWORD_FIELDS:
        return lexeme(KEYWORD_MARKS[name] + word.lower()) if name in KEYWORD_MARKS else ""
    return f"{lexeme(word_terms(word)[0])}:{WEIGHTS[name]}"


async def _frequencies(connection: Any, typed: list[TypedWord]) -> list[int]:
    """For each typed word, the entries holding it in its most common field, counted up to RARE."""
    asked = []
    for i, one in enumerate(typed):
        for name in DEFAULT_FIELDS if one.field is None else (one.field,):
            if query := _field_query(name, one.word):
                asked.append((i, query))
    counts = await _documents(connection, [q for _, q in asked], RARE)
    best = [0] * len(typed)
    for (i, _), n in zip(asked, counts, strict=True):
        best[i] = max(best[i], n)
    return best


def _candidate_query(field: str, word: str) -> str:
    # A title word's entries are those whose title holds its term: the vectors keep terms, not the words.
    if field == "tags":
        return lexeme(KEYWORD_MARKS["tags"] + word)
    terms = word_terms(word)
    return f"{lexeme(terms[0])}:A" if terms else ""


async def _respelling(connection: Any, word: str, fields: tuple[str, ...], more_than: int) -> str | None:
    """The closest known word: the same first letter and at most MAX_EDITS edits away, as on whoosh."""
    rows = await connection.execute(
        text(_CANDIDATES),
        {"fields": list(fields), "low": word[0], "high": chr(ord(word[0]) + 1),
         "shortest": len(word) - MAX_EDITS, "longest": len(word) + MAX_EDITS},
    )  # fmt: skip
    candidates = [(row.field, row.word) for row in rows if closest(word, [(row.word, 1)], 0)]
    queries = [_candidate_query(field, candidate) for field, candidate in candidates]
    kept = [(c, q) for (_, c), q in zip(candidates, queries, strict=True) if q]
    counts = await _documents(connection, [q for _, q in kept], COUNT_CAP)
    return closest(word, [(c, n) for (c, _), n in zip(kept, counts, strict=True)], more_than)


async def suggest(connection: Any, parsed: ParsedQuery) -> str | None:
    """As `spelling.suggest`: the query text with unknown (or rare) words respelled, or None."""
    words = checked(parsed)
    known = await _frequencies(connection, [typed for typed, _ in words])
    replacements = []
    for (typed, word), frequency in zip(words, known, strict=True):
        if frequency >= RARE:
            continue
        more_than = frequency * RARE_RATIO if frequency else 0
        if respelling := await _respelling(connection, word, respelling_fields(typed), more_than):
            replacements.append((typed.start, typed.end, respelling))
    return respelled(parsed.text, replacements)


async def expand_prefixes(connection: Any, q: wq.Query) -> wq.Query:
    """As `prefixes.expand_prefixes`: a last word that is itself a term some public entry holds is taken as
    typed, its prefix dropped. Otherwise the prefix stays a `:*` lexeme, which PostgreSQL expands itself."""
    if isinstance(q, wq.Or) and any(isinstance(sub, wq.Prefix) for sub in q.subqueries):
        typed = [sub for sub in q.subqueries if not isinstance(sub, wq.Prefix)]
        terms = [sub for sub in typed if isinstance(sub, wq.Term)]
        if terms and (await _documents(connection, [tsquery(wq.Or(terms))], 1))[0]:
            return any_of(typed) or wq.NullQuery
        return q
    if isinstance(q, wq.Not):
        return wq.Not(await expand_prefixes(connection, q.query))
    if isinstance(q, (wq.And, wq.Or)):
        return type(q)([await expand_prefixes(connection, sub) for sub in q.subqueries], boost=q.boost)
    return q
