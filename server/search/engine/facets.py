"""Facet counts over an exact set of matches, without loading a single matched document.

Each facet value's count is the popcount of the matches AND that value's bitmap. A rare value (most tags)
would cost a bitmap of doc_count / 8 bytes for a handful of documents, so the rare values of a segment are
kept document by document instead and counted all at once (`Segment`): the cost follows the number of
documents and facet values, not the number of matches.
"""

from __future__ import annotations

from array import array
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
from whoosh.reading import IndexReader

from .bitmaps import bits_of, flags_of

if TYPE_CHECKING:
    from .matches import LeafMatches

FACET_LIMIT = 50
# Facet name in results -> index field.
FACET_FIELDS = {"type": "type", "community": "community", "instance": "instance", "tag": "tags"}

# A facet value with fewer documents than doc_count / SPARSE_RATIO keeps a list of them, not a bitmap.
SPARSE_RATIO = 64

# facet name -> [(value, bitmap)] for one segment's common values.
_FacetBits = dict[str, list[tuple[str, int]]]


def empty_facets() -> dict[str, dict[str, int]]:
    return {name: {} for name in FACET_FIELDS}


class Segment:
    """What is kept of one segment: its size, its live documents, its facet values' documents.

    The rare values of every facet are kept document by document (`rare_starts`, `rare_values`: the
    values of document n are rare_values[rare_starts[n]:rare_starts[n + 1]], as indexes into
    `rare_names`), with their counts over the whole segment (`rare_totals`). Counting them for a set of
    matches then reads only the matched documents' values, or, when more than half the segment
    matches, the others' values, subtracted from the totals: a broad query costs what a narrow one does.
    """

    def __init__(self, reader: IndexReader) -> None:
        self.doc_count = reader.doc_count_all()
        self.all = (1 << self.doc_count) - 1
        # (number of deletions, bitmap of the documents left), for the last deletion set seen.
        self.live: tuple[int, int] | None = None
        self.facets: _FacetBits = {}
        self.rare_names: list[tuple[str, str]] = []  # (facet name, value)
        rare_docs: list[np.ndarray] = []
        for name, field in FACET_FIELDS.items():
            common: list[tuple[str, int]] = []
            for value in reader.field_terms(field):
                docs = _value_docs(reader, field, value, self.doc_count)
                if isinstance(docs, int):
                    common.append((value, docs))
                else:
                    self.rare_names.append((name, value))
                    rare_docs.append(np.frombuffer(docs, dtype=np.uint32))
            self.facets[name] = common
        docs = np.concatenate(rare_docs or [np.zeros(0, np.uint32)])
        values = np.repeat(np.arange(len(rare_docs), dtype=np.int32), [len(d) for d in rare_docs])
        by_doc = np.argsort(docs, kind="stable")
        self.rare_values = values[by_doc]
        self.rare_starts = np.zeros(self.doc_count + 1, dtype=np.int64)
        np.cumsum(np.bincount(docs, minlength=self.doc_count), out=self.rare_starts[1:])
        self.rare_totals = np.bincount(values, minlength=len(rare_docs))

    def rare_counts(self, docs: np.ndarray) -> np.ndarray:
        """How many of docs (segment document numbers) hold each rare value."""
        starts = self.rare_starts[docs]
        lengths = self.rare_starts[docs + 1] - starts
        count = int(lengths.sum())
        if not count:
            return np.zeros(len(self.rare_names), dtype=np.int64)
        # Position i of the output reads rare_values[start of its document + its rank within the document].
        runs = np.cumsum(lengths) - lengths
        at = np.arange(count) + np.repeat(starts - runs, lengths)
        return np.bincount(self.rare_values[at], minlength=len(self.rare_names))


def _value_docs(reader: IndexReader, field: str, value: str, doc_count: int) -> int | array[int]:
    """A facet value's documents: a bitmap, or for a rare value (most tags) a list of document numbers.

    A bitmap costs doc_count / 8 bytes whatever the value's frequency; thousands of rare tags would
    cost far more as bitmaps than as lists, and all the rare values of a facet are counted at once.
    """
    docnums = array("I", reader.postings(field, value).all_ids())
    if len(docnums) * SPARSE_RATIO < doc_count:
        return docnums
    return bits_of(docnums, doc_count)


def _ranked(counter: Counter[str]) -> dict[str, int]:
    pairs = [(value, count) for value, count in counter.items() if value]
    pairs.sort(key=lambda vc: (-vc[1], vc[0]))
    return dict(pairs[:FACET_LIMIT])


def facet_counts(matches: list[LeafMatches]) -> dict[str, dict[str, int]]:
    """{facet: {value: count}} over the matches.

    Values are ordered most frequent first, at most FACET_LIMIT per facet. A document with several
    tags counts once for each of them; one without a value (no tags, say) counts for none.
    """
    counters: dict[str, Counter[str]] = {name: Counter() for name in FACET_FIELDS}
    for m in matches:
        if not m.bits:
            continue
        for name, values in m.segment.facets.items():
            counter = counters[name]
            for value, bits in values:
                count = (m.bits & bits).bit_count()
                if count:
                    counter[value] += count
        seg = m.segment
        if not seg.rare_names:
            continue
        matched = flags_of(m.bits, seg.doc_count)
        if m.bits.bit_count() * 2 > seg.doc_count:
            counts = seg.rare_totals - seg.rare_counts(np.flatnonzero(~matched))
        else:
            counts = seg.rare_counts(np.flatnonzero(matched))
        found = np.flatnonzero(counts)
        for i, count in zip(found.tolist(), counts[found].tolist(), strict=True):
            name, value = seg.rare_names[i]
            counters[name][value] += count
    return {name: _ranked(counter) for name, counter in counters.items()}
