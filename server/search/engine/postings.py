"""A compact copy of each segment's longer posting lists, for reading them in one call.

Whoosh keeps a term's postings in zlib-compressed pickled blocks of 128 with the positions interleaved;
decoding them for a common word is slow, and searches keep meeting words whose arrays have left the
cache. `KithSegmentWriter` therefore writes one more file per segment
(`<segment id>.kpo`, inside the segment's compound file like the others) holding, for every term with at
least `MIN_POSTINGS` postings, its document numbers as little-endian uint32 and its weights as uint8 (when
they are all small whole numbers, as term frequencies are) or float32, the precision Whoosh's postings
writer keeps. A term is then one `pread` and two `np.frombuffer`.

Layout: the terms' arrays one after another, then a marshalled {(field, term bytes): (offset, count,
weight type)}, then a footer (table offset, table length, magic). The file is named after its segment,
so Whoosh deletes it with the segment's other files; a segment without one (written by Whoosh's own
writer, or before this file existed) is read from Whoosh's postings as before.
"""

from __future__ import annotations

import marshal
import os
import struct
from array import array
from typing import Any

import numpy as np
from whoosh.filedb.filestore import OverlayStorage
from whoosh.reading import IndexReader

EXTENSION = ".kpo"
# Shorter lists are a block or two of Whoosh's postings (or inlined in its term table): already cheap.
MIN_POSTINGS = 64
_MAGIC = b"KPO1"
_FOOTER = struct.Struct("<QQ4s")
_DOCS = np.dtype("<u4")

# (field, term bytes) -> (byte offset, postings, numpy type code of the weights)
_Table = dict[tuple[str, bytes], tuple[int, int, str]]


class PostingsWriter:
    """Writes a segment's `.kpo` file as `write_postings` goes through its terms."""

    def __init__(self, dbfile: Any) -> None:
        self._file = dbfile
        self._at = 0
        self._table: _Table = {}

    def add(self, fieldname: str, btext: bytes, ids: array, weights: list[Any]) -> None:
        count = len(ids)
        if count < MIN_POSTINGS:
            return
        docs = np.frombuffer(ids, dtype=np.uint32) if ids.itemsize == 4 else np.asarray(ids, dtype=np.uint32)
        if not (docs[1:] > docs[:-1]).all():
            # Repeated document numbers (a spelling field adds every word with document 0): no search
            # reads these as postings, and they would not be a plain list.
            return
        # Whoosh's postings writer keeps weights in a float32 array: store exactly what it reads back.
        narrow = np.asarray(weights, dtype=np.float64).astype(np.float32)
        data = narrow.astype("<f4")
        if narrow.min() >= 0 and narrow.max() <= 255 and np.array_equal(small := narrow.astype(np.uint8), narrow):
            data = small
        self._table[(fieldname, btext)] = (self._at, count, data.dtype.str)
        for part in (docs.astype(_DOCS, copy=False), data):
            raw = part.tobytes()
            self._file.write(raw)
            self._at += len(raw)

    def close(self) -> None:
        table = marshal.dumps(self._table)
        self._file.write(table)
        self._file.write(_FOOTER.pack(self._at, len(table), _MAGIC))
        self._file.close()


class PostingsFile:
    """A segment's `.kpo` file, open for reading (thread-safe: every read is one `os.pread`)."""

    def __init__(self, path: str, start: int, length: int) -> None:
        # Unbuffered, positioned reads only; closed when the last reference goes (see RankArrays.retain).
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115
        self._start = start
        footer = os.pread(self._file.fileno(), _FOOTER.size, start + length - _FOOTER.size)
        table_at, table_length, magic = _FOOTER.unpack(footer)
        if magic != _MAGIC:
            raise ValueError(f"{path} holds no postings table")
        self._table: _Table = marshal.loads(os.pread(self._file.fileno(), table_length, start + table_at))

    def get(self, fieldname: str, btext: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        """The term's document numbers (ascending, as np.intp) and weights (float32).

        None if the term is not kept here, or if the file is cut short.
        """
        entry = self._table.get((fieldname, btext))
        if entry is None:
            return None
        offset, count, code = entry
        weight_type = np.dtype(code)
        size = count * (4 + weight_type.itemsize)
        raw = os.pread(self._file.fileno(), size, self._start + offset)
        if len(raw) != size:  # cut short: not what the table says
            return None
        docs = np.frombuffer(raw, dtype=_DOCS, count=count).astype(np.intp)
        weights = np.frombuffer(raw, dtype=weight_type, count=count, offset=4 * count).astype(np.float32)
        return docs, weights


def open_postings_file(reader: IndexReader) -> PostingsFile | None:
    """The `.kpo` file of a segment reader's segment, or None if it has none (or is not on disk)."""
    segment = reader.segment()
    storage = getattr(reader, "_storage", None)
    if segment is None or storage is None:
        return None
    # A compound segment's reader sees an overlay of its compound file on the index's storage.
    base = storage.b if isinstance(storage, OverlayStorage) else storage
    folder = getattr(base, "folder", None)
    if not folder:  # in memory, say: nothing to pread from
        return None
    name = segment.make_filename(EXTENSION)
    if segment.is_compound():
        # Where the file lies inside the compound file; read with a handle of our own, as the reader's
        # goes when its searcher is closed.
        files = segment.open_compound_file(base)
        try:
            if not files.file_exists(name):
                return None
            start, length = files.range(name)
        finally:
            files.close()
        path = os.path.join(folder, segment.make_filename(segment.COMPOUND_EXT))
    else:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            return None
        start, length = 0, os.path.getsize(path)
    return PostingsFile(path, start, length)
