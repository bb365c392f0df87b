"""The last word as a prefix: `Prefix` nodes of a parsed query replaced by the index's terms they begin."""

from __future__ import annotations

import heapq

from whoosh import query as wq
from whoosh.reading import IndexReader

from .query import any_of

# The terms a last word's prefix may stand for, the most frequent first: a few, so that a short prefix
# costs a search no more than a few more words would.
MAX_PREFIX_TERMS = 12
# Terms looked at when expanding a prefix: a two-letter prefix begins thousands of words.
_PREFIX_SCAN = 400


def expand_prefixes(q: wq.Query, reader: IndexReader) -> wq.Query:
    """q with each `Prefix` replaced by its most frequent terms in the index (or nothing).

    A last word that is itself in the index is taken as typed: its prefix is dropped unexpanded. That
    costs a finished word nothing, and a word being typed (`jupy`) is rarely one the index holds.
    """
    if isinstance(q, wq.Or) and any(isinstance(sub, wq.Prefix) for sub in q.subqueries):
        typed = [sub for sub in q.subqueries if not isinstance(sub, wq.Prefix)]
        if any(isinstance(sub, wq.Term) and (sub.fieldname, sub.text) in reader for sub in typed):
            return any_of(typed) or wq.NullQuery
    if isinstance(q, wq.Prefix):
        return _expanded(q, reader)
    if q.is_leaf():
        return q
    return q.apply(lambda child: expand_prefixes(child, reader))


def _expanded(q: wq.Prefix, reader: IndexReader) -> wq.Query:
    if q.fieldname not in reader.schema:
        return wq.NullQuery
    found = []
    for i, term in enumerate(reader.expand_prefix(q.fieldname, q.text)):
        if i == _PREFIX_SCAN:
            break
        text = term.decode("utf-8") if isinstance(term, bytes) else term
        found.append((reader.doc_frequency(q.fieldname, text), text))
    best = heapq.nlargest(MAX_PREFIX_TERMS, found)
    if not best:
        return wq.NullQuery
    return any_of([wq.Term(q.fieldname, text) for _, text in sorted(best, key=lambda b: b[1])]) or wq.NullQuery
