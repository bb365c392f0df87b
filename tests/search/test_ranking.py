"""The array ranking (server.search.engine.ranking) against Whoosh's own scoring of every match."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from whoosh import query as wq
from whoosh.searching import Searcher

from server.search import IndexWriterQueue, SearchDocument, SearchIndex, SearchService
from server.search.engine import postings, ranking
from server.search.engine.arrays import RankArrays
from server.search.engine.matches import MatchSets, match_bits
from server.search.engine.postings import open_postings_file
from server.search.engine.ranking import Unsupported, top_k
from server.search.prefixes import expand_prefixes
from server.search.query import build_filter, parse_query
from server.search.storage import open_generation, read_current

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WORDS = ["seed", "compost", "tulip", "garden", "water", "soil", "bee", "rain", "sun", "leaf", "root", "worm"]
TAGS = ["alpha", "beta", "gamma", "delta"]

QUERIES = [
    "seed",
    "seed compost",
    "garden water",
    "seed OR tulip",
    "seed OR tulip^2",
    "garden NOT water",
    "NOT water",
    "soil -bee",
    "soil NOT bee",
    "title:tulip (bee OR rain)",
    "title:tulip^3 body:rain",
    "(bee rain)^2 OR sun",
    "tag:alpha",
    "tag:alpha OR tag:beta water",
    "type:offer seed",
    "community:gardeners leaf root",
    "instance:b.example OR worm",
    "seed compost tulip garden",
    "(seed OR compost) (water OR soil) NOT (bee OR rain)",
    "summary:leaf",
    "leaf^0.5 root",
    "nothingmatchesthis",
    "seed nothingmatchesthis",
]
FILTERS: list[dict[str, str]] = [
    {},
    {"type": "offer"},
    {"community": "bees@b.example", "tag": "beta"},
    {"instance": "a.example"},
]


def _doc(rng: random.Random, n: int) -> SearchDocument:
    remote = rng.random() < 0.3
    return SearchDocument(
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        type=rng.choice(["guide", "offer"]),
        title=" ".join(rng.choices(WORDS, k=rng.randint(1, 4))) + f" {n}",
        url=f"https://a.example/guides/{n}",
        community="bees@b.example" if remote else "gardeners",
        community_name="Gardeners",
        instance="b.example" if remote else "a.example",
        origin="remote" if remote else "local",
        created_at=NOW,
        updated_at=NOW,
        summary=" ".join(rng.choices(WORDS, k=rng.randint(0, 6))),
        # Skewed word counts, so that term weights and field lengths vary and scores rarely tie by accident.
        body=" ".join(rng.choices(WORDS, weights=range(len(WORDS), 0, -1), k=rng.randint(3, 60))),
        tags=rng.sample(TAGS, rng.randint(0, 2)),
        status="published",
    )


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four segments (four commits), with deletions in each and updates that move documents.

    Every list of two postings or more goes into the segments' compact postings files, so the arrays
    ranked here come from them (postings.py).
    """
    rng = random.Random(11)
    path = tmp_path_factory.mktemp("ranking") / "index"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(postings, "MIN_POSTINGS", 2)
        queue = IndexWriterQueue(SearchIndex(path))
        docs: list[SearchDocument] = []
        for _ in range(4):
            for _n in range(70):
                doc = _doc(rng, len(docs))
                docs.append(doc)
                queue.add(doc)
            queue.flush()
        for doc in docs[::6]:
            queue.delete(doc.id)
        for doc in docs[2::9]:
            queue.add(msgspec.structs.replace(_doc(rng, len(docs)), id=doc.id))
        queue.flush()
    return path


@pytest.fixture
def searcher(index: Path) -> Iterator[Searcher]:
    ix = open_generation(index / str(read_current(index)))
    with ix.searcher() as s:
        yield s
    ix.close()


def _whoosh_page(searcher: Searcher, q: wq.Query, filter_q: wq.Query | None, k: int) -> list[tuple[float, int]]:
    """Whoosh's ranking: every match scored by its matcher tree, in its order (score down, docnum up).

    Less the deleted documents: a root NOT's InverseMatcher in this Whoosh release can yield a segment's
    last document although it is deleted (and matches the negated query).
    """
    results = searcher.search(q, limit=None, filter=filter_q)
    reader = searcher.reader()
    return [(score, docnum) for score, docnum in results.top_n if not reader.is_deleted(docnum)][:k]


def _assert_same(mine: list[tuple[float, int]], theirs: list[tuple[float, int]], what: str) -> None:
    assert [d for _, d in mine] == [d for _, d in theirs], what
    for (a, _), (b, _) in zip(mine, theirs, strict=True):
        assert a == pytest.approx(b, rel=1e-9, abs=0.0), what


def _query(searcher: Searcher, text: str) -> wq.Query:
    """The query the service runs for text (the last word's prefix expanded to the index's terms)."""
    parsed = parse_query(text)
    assert parsed is not None
    return expand_prefixes(parsed.query, searcher.reader())


def _ranked(searcher: Searcher, text: str, filters: dict[str, str], k: int) -> list[tuple[float, int]]:
    query = _query(searcher, text)
    arrays = RankArrays()
    sets = MatchSets(postings=arrays.postings)
    matches = match_bits(searcher, sets, query, build_filter(**filters))
    return top_k(searcher, arrays, sets, query, matches, k)


def test_index_has_several_segments_with_deletions(searcher: Searcher) -> None:
    leaves = [leaf.reader() for leaf, _ in searcher.leaf_searchers()]
    assert len(leaves) >= 3
    assert sum(1 for r in leaves if r.has_deletions()) >= 2
    assert all(open_postings_file(r) is not None for r in leaves)


# ranking.DENSE_RATIO values that make every segment be scored per candidate, or per document.
PER_CANDIDATE, PER_DOCUMENT = 0, 10**9


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f) or "none")
@pytest.mark.parametrize("or_matcher", ["auto", "tree"])
@pytest.mark.parametrize("dense_ratio", [PER_CANDIDATE, PER_DOCUMENT], ids=["per-candidate", "per-document"])
def test_pages_and_scores_are_whooshs(
    searcher: Searcher, filters: dict[str, str], or_matcher: str, dense_ratio: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Segments this small make Whoosh add an OR's scores child by child (ArrayUnionMatcher); on segments of
    # more than 5,000 documents it adds them along a size-weighted tree of UnionMatchers: force that too.
    if or_matcher == "tree":
        monkeypatch.setattr(wq.Or, "matcher_type", wq.Or.DEFAULT_MATCHER)
    monkeypatch.setattr(ranking, "DENSE_RATIO", dense_ratio)
    for text in QUERIES:
        query = _query(searcher, text)
        for k in (1, 5, 20, 1000):
            mine = _ranked(searcher, text, filters, k)
            theirs = _whoosh_page(searcher, query, build_filter(**filters), k)
            _assert_same(mine, theirs, f"{text!r} {filters} k={k}")


@pytest.mark.parametrize("dense_ratio", [PER_CANDIDATE, PER_DOCUMENT], ids=["per-candidate", "per-document"])
def test_scores_are_bit_for_bit_whooshs(searcher: Searcher, dense_ratio: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The additions follow Whoosh's tree, so even ties between documents come out as Whoosh has them.
    monkeypatch.setattr(ranking, "DENSE_RATIO", dense_ratio)
    for text in QUERIES:
        assert _ranked(searcher, text, {}, 1000) == _whoosh_page(searcher, _query(searcher, text), None, 1000), text


def test_phrases_are_not_scored_here(searcher: Searcher) -> None:
    with pytest.raises(Unsupported):
        _ranked(searcher, '"rain rain" seed', {}, 10)


def test_service_pages_match_whoosh_with_offsets_and_filters(index: Path, searcher: Searcher) -> None:
    svc = SearchService(index)
    try:
        for text in [*QUERIES[:12], '"rain rain"', 'seed "garden water"']:
            query = _query(searcher, text)
            for filters in FILTERS[:3]:
                full = _whoosh_page(searcher, query, build_filter(**filters), 10_000)
                for offset in (0, 7):
                    page = svc.search(text, limit=7, offset=offset, **filters)
                    if page.corrected or page.relaxed:
                        continue  # another query than the one compared (few or no results as typed)
                    expected = full[offset : offset + 7]
                    got = [(item.score, item.id) for item in page.items]
                    want = [(score, searcher.stored_fields(d)["id"]) for score, d in expected]
                    assert [i for _, i in got] == [i for _, i in want], (text, filters, offset)
                    assert [s for s, _ in got] == pytest.approx([s for s, _ in want], rel=1e-9), (text, filters)
                    assert page.total == len(full)
    finally:
        svc.close()


def test_array_cache_stays_within_its_byte_bound(searcher: Searcher) -> None:
    arrays = RankArrays(max_bytes=8_000)
    sets = MatchSets(postings=arrays.postings)
    for text in QUERIES:
        query = _query(searcher, text)
        top_k(searcher, arrays, sets, query, match_bits(searcher, sets, query, None), 10)
        assert arrays.nbytes <= 8_000
    arrays.retain(set())
    assert arrays.nbytes == 0


def test_term_arrays_hold_whooshs_postings(searcher: Searcher) -> None:
    arrays = RankArrays()
    for leaf, _ in searcher.leaf_searchers():
        reader = leaf.reader()
        for word in ("seed", "bee", "nothingmatchesthis"):
            docs, weights = arrays.postings(reader, "body", word.encode())
            expected: list[Any] = []
            if ("body", word) in reader:
                m = reader.postings("body", word)  # without deleted documents
                while m.is_active():
                    expected.append((m.id(), m.weight()))
                    m.next()
            # The arrays keep deleted documents too (a search's candidates are live already).
            live = [(d, w) for d, w in zip(docs.tolist(), weights.tolist(), strict=True) if not reader.is_deleted(d)]
            assert live == expected
            assert len(docs) == reader.doc_frequency("body", word)
            assert docs.dtype == np.intp
