"""Document sets of one segment as Python ints: bit n set when document n is in the set.

AND, OR and NOT of whole sets are then single big-int operations and a count is a popcount, whatever
the number of documents in them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def bits_of(docnums: Iterable[int], doc_count: int) -> int:
    """A bitmap of segment-local document numbers."""
    buf = bytearray((doc_count + 7) >> 3)
    for docnum in docnums:
        buf[docnum >> 3] |= 1 << (docnum & 7)
    return int.from_bytes(buf, "little")


def bits_of_array(docs: np.ndarray, doc_count: int) -> int:
    """A bitmap of document numbers given as an array (no Python loop per document)."""
    flags = np.zeros(((doc_count + 7) >> 3) << 3, dtype=np.uint8)
    flags[docs] = 1
    return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")


def docnums_of(bits: int) -> list[int]:
    """The document numbers set in a bitmap, ascending."""
    out: list[int] = []
    data = bits.to_bytes((bits.bit_length() + 7) >> 3, "little")
    for i, byte in enumerate(data):
        if byte:
            base = i << 3
            out.extend(base + j for j in range(8) if byte >> j & 1)
    return out


def flags_of(bits: int, doc_count: int) -> np.ndarray:
    """One bool per document of the segment, True where its bit is set."""
    raw = np.frombuffer(bits.to_bytes((doc_count + 7) >> 3, "little"), dtype=np.uint8)
    return np.unpackbits(raw, count=doc_count, bitorder="little").view(bool)
