"""Reading a term's postings and a field's length column straight out of Whoosh 3's segment files.

Whoosh hands postings out one at a time through a matcher (`id()`, `weight()`, `next()`), and unpickling
a posting block also builds every posting's positions. The search side needs only the document numbers
and weights, as arrays: here a term's whole extent is read in one call and the ids and weights are taken
out of each block's pickle with strided slices. Used for a segment without a compact postings file
(postings.py) and for the short lists that file leaves out.
"""

from __future__ import annotations

import struct
import zlib
from pickle import loads
from typing import Any

import numpy as np
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3LeafMatcher, W3TermsReader
from whoosh.filedb.structfile import BufferFile
from whoosh.reading import IndexReader

_EMPTY_DOCS = np.zeros(0, dtype=np.intp)
_EMPTY_WEIGHTS = np.zeros(0, dtype=np.float64)


def read_postings(reader: IndexReader, field: str, btext: bytes) -> tuple[np.ndarray, np.ndarray]:
    if (field, btext) not in reader:
        return _EMPTY_DOCS, _EMPTY_WEIGHTS
    # The raw postings, without the deletion filter reader.postings() adds: candidates are live already.
    terms = reader._terms
    terminfo = terms.term_info(field, btext)
    fmt = reader.schema[field].format
    if isinstance(terms, W3TermsReader) and not terminfo.is_inlined():
        # One read of the term's whole extent, then the blocks are decoded from memory: the file is
        # not mapped (see storage.open_generation), and a matcher on it reads every block header
        # with several small reads.
        offset, length = terminfo.extent()
        if isinstance(length, tuple):  # this Whoosh release unpacks the stored length into a 1-tuple
            length = length[0]
        m = W3LeafMatcher(BufferFile(terms._postfile.get(offset, length)), 0, length, fmt)
    else:
        m = terms.matcher(field, btext, fmt, scorer=None)
    if type(m) is not W3LeafMatcher or m._byteids:  # another codec: one posting at a time, the public way
        one_ids, one_weights = [], []
        while m.is_active():
            one_ids.append(m.id())
            one_weights.append(m.weight())
            m.next()
        return np.asarray(one_ids, dtype=np.intp), np.asarray(one_weights, dtype=np.float64)
    # Whole blocks at a time, decoded as W3LeafMatcher._read_ids/_read_weights do, without a Python loop
    # per posting: a block's ids are deltas from 0, so turning each block's first id into a delta from the
    # previous block's last id makes one cumulative sum decode them all.
    deltas: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    previous_max = 0
    while m.is_active():
        count = m._blocklength
        data = m._postfile.get(m._dataoffset, m._nextoffset - m._dataoffset)
        # Only the ids and weights are needed, and they come first: decompress just that much.
        head = zlib.decompressobj().decompress(data, _head_size(count)) if m._compression else data
        decoded = _decode_block(head, count)
        if decoded is None:  # not the common shape: unpickle the whole block as Whoosh does
            ids, block_weights, _ = loads(zlib.decompress(data) if m._compression else data)
            block = np.asarray(ids, dtype=np.int64)
        else:
            block, block_weights = decoded
        block[0] -= previous_max
        deltas.append(block)
        if block_weights is None:
            weights.append(np.ones(count, dtype=np.float64))
        elif isinstance(block_weights, (int, float)):
            weights.append(np.full(count, block_weights, dtype=np.float64))
        else:
            weights.append(np.asarray(block_weights, dtype=np.float64))
        previous_max = m._maxid
        m._next_block()
    if not deltas:
        return _EMPTY_DOCS, _EMPTY_WEIGHTS
    all_weights = np.concatenate(weights)
    narrow = all_weights.astype(np.float32)
    if np.array_equal(narrow, all_weights):  # term frequencies times a field boost: exact in 4 bytes
        all_weights = narrow
    return np.cumsum(np.concatenate(deltas)).astype(np.intp), all_weights


_PICKLE_HEAD = b"\x80\x02("  # protocol 2, then MARK: the block's (ids, weights, values) tuple opens with a list
_BININT1, _BININT2, _BININT, _BINFLOAT, _MARK, _TUPLE, _NONE, _BINPUT, _LONG_BINPUT = b"KMJG(tNqr"


_BININT1_RUN = bytes([_BININT1]) * 1024
_BINFLOAT_RUN = bytes([_BINFLOAT]) * 1024


def _head_size(count: int) -> int:
    """Bytes of a block's pickle that hold at most its ids and weights in the shape _decode_block reads."""
    return 8 + 2 * count + 6 + 2 + 9 * count + 8


def _decode_block(data: bytes, count: int) -> tuple[np.ndarray, Any] | None:
    """A block's id deltas and weights, read straight from its pickle; None if it has another shape.

    Unpickling a block builds every posting's positions too (a bytes object each, through a REDUCE),
    which is most of the cost of reading postings. The ids and weights come first in the pickle; in
    the common case every id delta after the first is a one-byte int (BININT1) and the weights are
    None, one float or one float per posting (BINFLOAT), and those are picked out with strided slices.
    Anything else returns None, and the caller unpickles the block.
    """
    if not 4 <= count <= 1024 or not data.startswith(_PICKLE_HEAD):
        return None
    # The first id of a block is a document number (its delta from 0), so it may take 2 or 4 bytes.
    first_op = data[3]
    if first_op == _BININT1:
        first, at = data[4], 5
    elif first_op == _BININT2:
        first, at = int.from_bytes(data[4:6], "little"), 6
    elif first_op == _BININT:
        first, at = int.from_bytes(data[4:8], "little", signed=True), 8
    else:
        return None
    end = at + 2 * (count - 1)
    if len(data) <= end + 2 or data[end] != _TUPLE or data[at:end:2] != _BININT1_RUN[: count - 1]:
        return None
    ids = np.empty(count, dtype=np.int64)
    ids[0] = first
    ids[1:] = np.frombuffer(data[at + 1 : end : 2], dtype=np.uint8)
    at = end + 1
    if data[at] == _BINPUT:
        at += 2
    elif data[at] == _LONG_BINPUT:
        at += 5
    op = data[at] if at < len(data) else None
    if op == _NONE:
        return ids, None
    if op == _BINFLOAT and at + 9 <= len(data):
        return ids, struct.unpack_from(">d", data, at + 1)[0]
    if op == _MARK:
        start, stop = at + 1, at + 1 + 9 * count
        if len(data) <= stop or data[stop] != _TUPLE or data[start:stop:9] != _BINFLOAT_RUN[:count]:
            return None
        # Each weight is BINFLOAT + 8 big-endian bytes: a strided view over them, then native doubles.
        floats = np.ndarray(shape=(count,), dtype=">f8", buffer=data, offset=start + 1, strides=(9,))
        return ids, floats.astype(np.float64)
    return None


def read_length_bytes(reader: IndexReader, field: str) -> np.ndarray:
    doc_count = reader.doc_count_all()
    out = np.zeros(doc_count, dtype=np.uint8)
    perdoc = getattr(reader, "_perdoc", None)
    column = perdoc._cached_reader(f"_{field}_len", LENGTHS_COLUMN) if perdoc is not None else None
    if column is None:
        return out
    count = min(column._count, doc_count)
    raw = column._dbfile.get(column._basepos, count)
    out[:count] = np.frombuffer(bytes(raw), dtype=np.uint8)
    return out
