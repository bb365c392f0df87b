"""Facet counts, rare values read document by document (engine.facets.Segment), against a count of the matches."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from server.search import IndexWriterQueue, SearchDocument, SearchIndex
from server.search.engine import facets
from server.search.engine.bitmaps import docnums_of
from server.search.engine.facets import FACET_FIELDS, Segment, facet_counts
from server.search.engine.matches import LeafMatches, MatchSets, match_bits
from server.search.query import build_filter, parse_query
from server.search.storage import open_generation, read_current
from tests.search.test_ranking import _doc


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three segments with deletions and updates."""
    rng = random.Random(21)
    path = tmp_path_factory.mktemp("facets") / "index"
    queue = IndexWriterQueue(SearchIndex(path))
    docs: list[SearchDocument] = []
    for _ in range(3):
        for _n in range(80):
            doc = _doc(rng, len(docs))
            docs.append(doc)
            queue.add(doc)
        queue.flush()
    for doc in docs[::5]:
        queue.delete(doc.id)
    for doc in docs[3::8]:
        queue.add(msgspec.structs.replace(_doc(rng, len(docs)), id=doc.id))
    queue.flush()
    return path


def _counted(searcher: object, matches: list[LeafMatches]) -> dict[str, dict[str, int]]:
    """Each facet value's documents among the matches, counted from the stored fields."""
    counters: dict[str, Counter[str]] = {name: Counter() for name in FACET_FIELDS}
    for m in matches:
        for docnum in docnums_of(m.bits):
            stored = searcher.stored_fields(m.offset + docnum)  # type: ignore[attr-defined]
            for name in ("type", "community", "instance"):
                counters[name][stored[name].lower()] += 1
            counters["tag"].update(t.lower() for t in stored.get("tags", "").split(",") if t)
    return {name: dict(counter) for name, counter in counters.items()}


@pytest.mark.parametrize("sparse_ratio", [facets.SPARSE_RATIO, 1], ids=["some-rare", "all-rare"])
def test_counts_are_exact_for_narrow_and_broad_matches(
    index: Path, sparse_ratio: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a ratio of 1, every value (but one held by every document) is counted document by document.
    monkeypatch.setattr(facets, "SPARSE_RATIO", sparse_ratio)
    ix = open_generation(index / str(read_current(index)))
    halves: set[bool] = set()
    with ix.searcher() as searcher:
        assert len(searcher.leaf_searchers()) >= 3
        sets = MatchSets()
        for text, filters in [
            ("seed", {}),
            ("worm", {}),
            ("tulip title:rain", {}),
            ("NOT nothingmatchesthis", {}),
            ("garden OR water", {"type": "offer"}),
            ("nothingmatchesthis", {}),
        ]:
            parsed = parse_query(text)
            assert parsed is not None
            matches = match_bits(searcher, sets, parsed.query, build_filter(**filters))
            got = facet_counts(matches)
            want = _counted(searcher, matches)
            assert {name: dict(values) for name, values in got.items()} == want, text
            # Broad matches are counted as the segment's totals less the documents left out.
            halves.update(m.bits.bit_count() * 2 > m.segment.doc_count for m in matches)
    ix.close()
    assert halves == {True, False}


def test_rare_values_are_kept_per_document(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facets, "SPARSE_RATIO", 1)
    ix = open_generation(index / str(read_current(index)))
    with ix.searcher() as searcher:
        for leaf, _ in searcher.leaf_searchers():
            reader = leaf.reader()
            seg = Segment(reader)
            assert seg.rare_names
            for docnum in range(seg.doc_count):
                start, end = seg.rare_starts[docnum], seg.rare_starts[docnum + 1]
                held = {seg.rare_names[v] for v in seg.rare_values[start:end]}
                if reader.is_deleted(docnum):  # deleted before the segment was read: no values
                    assert not held
                    continue
                stored = reader.stored_fields(docnum)
                tags = {("tag", t.lower()) for t in stored.get("tags", "").split(",") if t}
                singles = {(name, stored[name].lower()) for name in ("type", "community", "instance")}
                assert held <= tags | singles
                assert tags <= held
    ix.close()
