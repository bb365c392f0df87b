"""The compact postings file beside each segment (server.search.engine.postings) against Whoosh's own postings."""

from __future__ import annotations

import os
import random
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage
from whoosh.index import Index
from whoosh.reading import IndexReader

from server.search.documents import document_fields
from server.search.engine import KithSegmentWriter, postings
from server.search.engine.arrays import RankArrays
from server.search.engine.postings import EXTENSION, PostingsFile, PostingsWriter, open_postings_file
from server.search.schema import SCHEMA
from tests.search.test_ranking import _doc


@pytest.fixture(autouse=True)
def short_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small test segments: keep every list of two postings or more, so most terms go through the file.
    monkeypatch.setattr(postings, "MIN_POSTINGS", 2)


@pytest.fixture
def ix(tmp_path: Path) -> Iterator[Index]:
    index = whoosh_index.create_in(str(tmp_path), SCHEMA)
    yield index
    index.close()


def _add(ix: Index, rng: random.Random, count: int, **commit: object) -> None:
    writer = KithSegmentWriter(ix, compound=bool(commit.pop("compound", True)))
    for n in range(count):
        writer.add_document(**document_fields(_doc(rng, n)))
    writer.commit(**commit)


def _whoosh_postings(reader: IndexReader, field: str, btext: bytes) -> tuple[list[int], list[float]]:
    """Every posting as Whoosh reads it, deleted documents included."""
    m = reader._terms.matcher(field, btext, reader.schema[field].format, scorer=None)
    ids, weights = [], []
    while m.is_active():
        ids.append(m.id())
        weights.append(m.weight())
        m.next()
    return ids, weights


def _assert_file_matches_whoosh(reader: IndexReader) -> int:
    kept = open_postings_file(reader)
    assert kept is not None
    compared = 0
    for field, btext in reader.all_terms():
        if field.startswith("spell_"):
            continue
        got = kept.get(field, btext)
        ids, weights = _whoosh_postings(reader, field, btext)
        if len(ids) < postings.MIN_POSTINGS:
            assert got is None
            continue
        assert got is not None, (field, btext)
        assert got[0].tolist() == ids, (field, btext)
        assert got[1].tolist() == weights, (field, btext)
        assert got[0].dtype == np.intp and got[1].dtype == np.float32
        compared += 1
    return compared


def test_every_longer_list_is_whooshs_after_commits_merges_and_deletions(ix: Index) -> None:
    rng = random.Random(5)
    _add(ix, rng, 120, merge=False)
    _add(ix, rng, 90, merge=False)
    with ix.searcher() as searcher:
        readers = [leaf.reader() for leaf, _ in searcher.leaf_searchers()]
        assert len(readers) == 2
        assert all(_assert_file_matches_whoosh(reader) > 30 for reader in readers)
    writer = KithSegmentWriter(ix)
    writer.delete_by_term("type", "offer")
    for n in range(30):
        writer.add_document(**document_fields(_doc(rng, 1000 + n)))
    writer.commit(optimize=True)  # one segment merged from two with deletions, and the new documents
    with ix.searcher() as searcher:
        (leaf, _), *others = searcher.leaf_searchers()
        assert not others
        assert leaf.reader().doc_count_all() < 240
        assert _assert_file_matches_whoosh(leaf.reader()) > 30


@pytest.mark.parametrize("compound", [True, False])
def test_the_file_goes_with_its_segment(ix: Index, tmp_path: Path, compound: bool) -> None:
    rng = random.Random(6)
    _add(ix, rng, 40, merge=False, compound=compound)
    _add(ix, rng, 40, merge=False, compound=compound)
    old = {segment.segment_id() for segment in ix._segments()}
    loose = sorted(name for name in os.listdir(tmp_path) if name.endswith(EXTENSION))
    # In a compound segment it is one more part of the segment's .seg file.
    assert loose == ([] if compound else sorted(f"{segment_id}{EXTENSION}" for segment_id in old))

    _add(ix, rng, 10, optimize=True, compound=compound)
    (segment,) = ix._segments()
    names = os.listdir(tmp_path)
    assert not [name for name in names if any(name.startswith(segment_id) for segment_id in old)]
    assert (f"{segment.segment_id()}{EXTENSION}" in names) is not compound
    with ix.searcher() as searcher:
        assert _assert_file_matches_whoosh(searcher.leaf_searchers()[0][0].reader()) > 30


def test_segments_written_by_whoosh_fall_back_to_its_postings(ix: Index) -> None:
    rng = random.Random(7)
    with ix.writer() as writer:  # Whoosh's own SegmentWriter: no compact file
        for n in range(60):
            writer.add_document(**document_fields(_doc(rng, n)))
    with ix.searcher() as searcher:
        (leaf, _), *_ = searcher.leaf_searchers()
        reader = leaf.reader()
        assert open_postings_file(reader) is None
        docs, weights = RankArrays().postings(reader, "body", b"seed")
        ids, expected = _whoosh_postings(reader, "body", b"seed")
        assert len(ids) > 2
        assert docs.tolist() == ids and weights.tolist() == expected


def test_rank_arrays_read_the_file(ix: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    _add(ix, random.Random(8), 60)
    monkeypatch.setattr("server.search.engine.arrays.read_postings", None)  # any fallback would fail
    with ix.searcher() as searcher:
        (leaf, _), *_ = searcher.leaf_searchers()
        docs, weights = RankArrays().postings(leaf.reader(), "body", b"seed")
        assert (docs.tolist(), weights.tolist()) == _whoosh_postings(leaf.reader(), "body", b"seed")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_file_falls_back_to_whooshs_postings(
    ix: Index, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    _add(ix, random.Random(9), 60, compound=False)
    (segment,) = ix._segments()
    path = tmp_path / f"{segment.segment_id()}{EXTENSION}"
    data = path.read_bytes()
    path.write_bytes(b"\x00" * len(data) if damage == "garbage" else data[: len(data) // 2])
    with ix.searcher() as searcher:
        reader = searcher.leaf_searchers()[0][0].reader()
        docs, weights = RankArrays().postings(reader, "body", b"seed")
        assert (docs.tolist(), weights.tolist()) == _whoosh_postings(reader, "body", b"seed")
    assert "cannot read the compact postings" in caplog.text


def test_weights_keep_whooshs_float32_precision(tmp_path: Path) -> None:
    storage = FileStorage(str(tmp_path))
    writer = PostingsWriter(storage.create_file("x.kpo"))
    ids = [3, 9, 27, 81]
    writer.add("body", b"counts", array("I", ids), [1, 2, 3, 255])
    writer.add("body", b"boosted", array("I", ids), [0.5, 1.3, 300.0, 2.0])
    writer.add("body", b"short", array("I", [5]), [1.0])
    writer.add("spell_title", b"word", array("I", [0, 0, 0]), [1.0, 1.0, 1.0])
    writer.close()
    kept = PostingsFile(str(tmp_path / "x.kpo"), 0, (tmp_path / "x.kpo").stat().st_size)
    counts = kept.get("body", b"counts")
    boosted = kept.get("body", b"boosted")
    assert counts is not None and boosted is not None
    assert counts[0].tolist() == ids and counts[1].tolist() == [1.0, 2.0, 3.0, 255.0]
    assert boosted[1].tolist() == np.array([0.5, 1.3, 300.0, 2.0], dtype=np.float32).tolist()
    assert kept.get("body", b"short") is None
    assert kept.get("spell_title", b"word") is None
    assert kept.get("body", b"absent") is None
