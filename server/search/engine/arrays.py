"""Term postings, their BM25 scores and field-length columns as numpy arrays, cached across searches."""

from __future__ import annotations

import logging
import struct
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from whoosh.reading import IndexReader
from whoosh.util.numeric import byte_to_length

from .blocks import read_length_bytes, read_postings
from .postings import PostingsFile, open_postings_file

log = logging.getLogger(__name__)

# A posting costs 12 bytes (document number as a native integer, weight as float32 when that is exact, as
# term frequencies are) plus 8 for its score under the current statistics, so a word in every one of
# 100,000 documents costs 2 MB; a length column costs 1 byte per document and field, its length factors 8.
# 80 MB hold the commonest words of a 100,000-guide index, which two-word queries keep coming back to,
# within the server's memory target; a word read again comes from the segment's compact postings file.
ARRAY_CACHE_BYTES = 80 * 2**20
# Per-entry bookkeeping counted on top of the arrays.
_ENTRY_OVERHEAD = 256

# A field length is stored as one byte; this maps each byte to the length Whoosh's scorer sees.
_LENGTHS = np.array([0.0] + [float(byte_to_length(b)) for b in range(1, 256)], dtype=np.float64)


class RankArrays:
    """Per-segment term postings and length columns as arrays, least recently used first out (thread-safe)."""

    def __init__(self, max_bytes: int = ARRAY_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        # segment id -> its compact postings file (postings.py), None for a segment without one.
        self._files: dict[str, PostingsFile | None] = {}

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def _put(self, key: tuple[Any, ...], value: Any, size: int) -> None:
        size += _ENTRY_OVERHEAD
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, (_, old) = self._entries.popitem(last=False)
                self._bytes -= old

    def postings(self, reader: IndexReader, field: str, btext: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The term's document numbers (ascending, deleted ones included) and posting weights.

        The numbers are native integers (np.intp): numpy converts any other index array on every scatter
        and lookup, which cost more than a term's scoring. Weights are float32 when that is exact.
        """
        segment_id = reader.segment().segment_id()
        key = ("p", segment_id, field, btext)
        cached = self._get(key)
        if cached is None:
            kept = self._postings_file(reader, segment_id)
            cached = kept.get(field, btext) if kept is not None else None
            if cached is None:  # a short list, or a segment written without the compact file
                cached = read_postings(reader, field, btext)
            self._put(key, cached, cached[0].nbytes + cached[1].nbytes)
        return cached

    def _postings_file(self, reader: IndexReader, segment_id: str) -> PostingsFile | None:
        with self._lock:
            if segment_id in self._files:
                return self._files[segment_id]
        # Opened outside the lock (it reads the file's table); two threads may both open it once.
        try:
            opened = open_postings_file(reader)
        except (OSError, ValueError, EOFError, TypeError, struct.error):
            # A damaged file only costs speed: the segment is read from Whoosh's postings.
            log.warning("cannot read the compact postings of segment %s", segment_id, exc_info=True)
            opened = None
        with self._lock:
            return self._files.setdefault(segment_id, opened)

    def lengths(self, reader: IndexReader, field: str) -> np.ndarray:
        """The field's stored length byte for every document of the segment."""
        key = ("l", reader.segment().segment_id(), field)
        cached = self._get(key)
        if cached is None:
            cached = read_length_bytes(reader, field)
            self._put(key, cached, cached.nbytes)
        return cached

    def norms(self, reader: IndexReader, field: str, avgfl: float, B: float, K1: float) -> np.ndarray:
        """K1 * ((1 - B) + B * fl / avgfl) for every document of the segment: bm25's length part.

        Computed per document exactly as whoosh.scoring.bm25 computes it; kept until the average
        length (a statistic of the whole index) changes.
        """
        key = ("n", reader.segment().segment_id(), field, avgfl, B, K1)
        cached = self._get(key)
        if cached is None:
            fl = _LENGTHS[self.lengths(reader, field)]
            cached = K1 * ((1 - B) + B * fl / avgfl)
            self._put(key, cached, cached.nbytes)
        return cached

    def term_scores(
        self, reader: IndexReader, field: str, btext: bytes, idf: float, avgfl: float, B: float, K1: float
    ) -> np.ndarray:
        """The term's bm25 score for each of its postings (in postings order), for these statistics."""
        key = ("s", reader.segment().segment_id(), field, btext, idf, avgfl, B, K1)
        cached = self._get(key)
        if cached is None:
            posting_docs, weights = self.postings(reader, field, btext)
            w = weights.astype(np.float64)  # stored as float32 when exact; scored in double, as Whoosh does
            # whoosh.scoring.bm25, posting by posting the same operations in the same order.
            cached = idf * ((w * (K1 + 1)) / (w + self.norms(reader, field, avgfl, B, K1)[posting_docs]))
            self._put(key, cached, cached.nbytes)
        return cached

    def retain(self, segment_ids: set[str]) -> None:
        """Forget the segments a merge has replaced."""
        with self._lock:
            for key in [key for key in self._entries if key[1] not in segment_ids]:
                self._bytes -= self._entries.pop(key)[1]
            # A dropped file closes once no search still reads it: a merge's old segments free their space.
            for segment_id in [segment_id for segment_id in self._files if segment_id not in segment_ids]:
                del self._files[segment_id]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._files.clear()
