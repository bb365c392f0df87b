"""A Whoosh segment writer that writes each term's postings in one go.

Whoosh's `SegmentWriter` pools one tuple per posting and sorts them all at commit (termpool.py replaces
that pool), then looks up the document's field length once per posting while writing the posting lists:
together the bulk of the CPU time of indexing a guide. Here each field's lengths are read once per
document and a term's postings go into Whoosh 3's block buffers a block at a time. A merge reads the
other segments' postings a block at a time when they have no deletions. Documents can also be analyzed
ahead of the commit (`analyze`, `PREPARED`).

The files written are the ones Whoosh writes (`tests/unit/test_search_analysis.py` compares every term,
term statistic, posting, value, length and stored field with an index written by Whoosh's own writer, after
plain commits, spills, merges and deletions), so indexes written either way are interchangeable, plus one:
a compact copy of the longer posting lists that the search side reads instead of Whoosh's blocks
(`postings.py`; a segment without it is read the old way). The rest (per-document storage, the merge
policy, deletions, the TOC) is Whoosh's own code; merges go through this writer, so a merged segment gets
its own copy.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

from whoosh.codec.whoosh3 import W3Codec, W3FieldWriter, W3LeafMatcher, W3PostingsWriter
from whoosh.index import Index
from whoosh.writing import SegmentWriter

from .postings import EXTENSION, PostingsWriter
from .termpool import TermPool


def _each_posting(matcher: Any) -> Iterator[tuple[int, Any, Any]]:
    while matcher.is_active():
        yield matcher.id(), matcher.weight(), matcher.value()
        matcher.next()


# The key of `Analysis` in the fields given to `KithSegmentWriter.add_document`/`update_document`.
PREPARED = "_kith_analysis"


class Analysis:
    """A document's postings per field and field lengths, computed apart from writing them."""

    __slots__ = ("schema", "postings", "lengths")

    def __init__(self, schema: Any, postings: list[tuple[str, bool, list[Any]]], lengths: dict[str, int]) -> None:
        self.schema = schema
        self.postings = postings  # (field, is a spelling field, [(term, freq, weight, value)])
        self.lengths = lengths


def analyze(schema: Any, fields: dict[str, Any]) -> Analysis:
    """What `SegmentWriter.add_document` computes from a document's fields before writing it.

    Done ahead of a commit by the worker's writer thread (`IndexWriterQueue.add`), in short slices, so that
    a commit of a batch is only the writing.
    """
    docboost = float(fields["_boost"]) if "_boost" in fields else 1.0
    postings: list[tuple[str, bool, list[Any]]] = []
    lengths: dict[str, int] = {}
    for fieldname in sorted(name for name in fields if not name.startswith("_")):
        value = fields[fieldname]
        if value is None:
            continue
        field = schema[fieldname]
        vbytes = None
        if field.indexed:
            boostkw = f"_{fieldname}_boost"
            fieldboost = float(fields[boostkw]) if boostkw in fields else docboost
            items = list(field.index(value))
            if fieldboost != 1.0:
                items = [(t, freq, w * fieldboost, v) for t, freq, w, v in items]
            if field.scorable:
                lengths[fieldname] = sum(item[1] for item in items)
            if items:
                postings.append((fieldname, False, items))
                # Whoosh gives the spelling postings the last value of this loop.
                vbytes = items[-1][3]
        if field.separate_spelling():
            # ...and weight 1.
            words = [(word.encode("utf-8"), 1, 1, vbytes) for word in field.spellable_words(value)]
            postings.append((field.spelling_fieldname(fieldname), True, words))
    return Analysis(schema, postings, lengths)


class KithSegmentWriter(SegmentWriter):
    """`SegmentWriter` with a `TermPool` and a faster way of writing the posting lists."""

    def __init__(self, ix: Index, *, limitmb: int = 128, **kwargs: Any) -> None:
        super().__init__(ix, limitmb=limitmb, **kwargs)
        self.pool = TermPool(self._tempstorage, limitmb=limitmb)

    def add_document(self, **fields: Any) -> None:
        # SegmentWriter.add_document, with the analysis done by `analyze` (possibly beforehand, see PREPARED)
        # and each field's postings handed to the pool in one call.
        self._check_state()
        perdocwriter = self.perdocwriter
        schema = self.schema
        docnum = self.docnum

        prepared = fields.pop(PREPARED, None)
        fieldnames = sorted(name for name in fields if not name.startswith("_"))
        self._check_fields(schema, fieldnames)
        if not isinstance(prepared, Analysis) or prepared.schema is not schema:
            # Analyzed before anything is written: a document that fails leaves nothing behind (Whoosh's
            # own writer keeps the postings of the fields before the failure).
            prepared = analyze(schema, fields)

        perdocwriter.start_doc(docnum)
        try:
            for fieldname in fieldnames:
                value = fields.get(fieldname)
                if value is None:
                    continue
                field = schema[fieldname]

                vformat = field.vector
                if vformat:
                    vitems = vformat.word_values(value, field.analyzer, mode="index")
                    vitems = sorted((text, weight, vb) for text, _, weight, vb in vitems)
                    perdocwriter.add_vector_items(fieldname, field, vitems)

                customval = fields.get(f"_stored_{fieldname}", value)
                length = prepared.lengths.get(fieldname, 0)
                perdocwriter.add_field(fieldname, field, customval if field.stored else None, length)

                column = field.column_type
                if column and customval is not None:
                    perdocwriter.add_column_value(fieldname, column, field.to_column_value(customval))
        except Exception:
            perdocwriter.cancel_doc()
            raise

        for fieldname, spelling, items in prepared.postings:
            # Whoosh adds spelling words with document number 0.
            self.pool.add_terms(fieldname, 0 if spelling else docnum, items)
        perdocwriter.finish_doc()
        self._added = True
        self.docnum += 1

    def add_postings_to_pool(self, reader: Any, startdoc: int, docmap: Any) -> None:
        # Merges: the other segment's postings, renumbered. Whoosh reads them one posting at a time through
        # matcher calls; a segment without deletions is read here a block at a time instead.
        if reader.has_deletions() or docmap is not None:
            self.pool.add_postings(self._process_posts(reader.iter_postings(), startdoc, docmap))
            return
        schema, pool = self.schema, self.pool
        for fieldname, btext in reader.all_terms():
            if fieldname not in schema:
                continue
            matcher = reader.postings(fieldname, btext)
            if type(matcher) is not W3LeafMatcher:
                pool.add_postings(
                    (fieldname, btext, startdoc + docnum, weight, value)
                    for docnum, weight, value in _each_posting(matcher)
                )
                continue
            while matcher.is_active():
                matcher._read_ids()
                matcher._read_weights()
                matcher._read_values()
                ids = array("I", (startdoc + docnum for docnum in matcher._ids))
                # What `matcher.weight()` and `.value()` give for each posting of the block: a format with
                # values of a fixed size may split a stray longer value into more pieces than postings.
                n = len(ids)
                pool.add_block(fieldname, btext, ids, list(matcher._weights[:n]), list(matcher._values[:n]))
                matcher._next_block()

    def _flush_segment(self) -> None:
        self.perdocwriter.close()
        lengths = self.per_document_reader() if self.codec.length_stats else None
        # The compact copy of the longer posting lists (see postings.py), for the weights as Whoosh 3 keeps
        # them. Merges come through here too, so a merged segment gets its own.
        postings = None
        if type(self.codec) is W3Codec:
            postings = PostingsWriter(self.newsegment.create_file(self.storage, EXTENSION))
        try:
            write_postings(self.fieldwriter, self.schema, lengths, self.pool.terms(), self.docnum, postings)
            self.fieldwriter.close()
            if postings is not None:
                postings.close()
        finally:
            if lengths is not None:
                lengths.close()


def write_postings(
    fieldwriter: Any, schema: Any, lengths: Any, terms: Any, doccount: int, postings: PostingsWriter | None = None
) -> None:
    """`FieldWriter.add_postings` for postings grouped by term, also handing each term to `postings`.

    Each field's lengths are read once per document instead of once per posting, and a term's postings go
    into the postings writer's block buffers a block at a time, doing exactly what `add_posting` does to
    them. Writers other than Whoosh 3's get the postings one by one.
    """
    lastfn = None
    field_lengths: list[int] | None = None
    for fieldname, btext, ids, weights, values in terms:
        if fieldname != lastfn:
            if lastfn is not None:
                fieldwriter.finish_field()
            fieldobj = schema[fieldname]
            fieldwriter.start_field(fieldname, fieldobj)
            lastfn = fieldname
            field_lengths = None
            if lengths is not None and fieldobj.scorable:
                dfl = lengths.doc_field_length
                # None (no length byte) and 0 both mean "no length" to the postings writer.
                field_lengths = [dfl(docnum, fieldname) or 0 for docnum in range(doccount)]
        fieldwriter.start_term(btext)
        postwriter = getattr(fieldwriter, "_postwriter", None)
        if type(fieldwriter) is W3FieldWriter and type(postwriter) is W3PostingsWriter:
            _add_block_postings(postwriter, ids, weights, values, field_lengths)
        else:
            for i, docnum in enumerate(ids):
                length = field_lengths[docnum] if field_lengths is not None else 0
                fieldwriter.add(docnum, weights[i], values[i] or b"", length)
        fieldwriter.finish_term()
        if postings is not None:
            postings.add(fieldname, btext, ids, weights)
    if lastfn is not None:
        fieldwriter.finish_field()


def _add_block_postings(
    pw: W3PostingsWriter, ids: array, weights: list[Any], values: list[bytes], lengths: list[int] | None
) -> None:
    # W3PostingsWriter.add_posting, a block's worth of postings at a time.
    limit = pw._blocklimit
    at, count = 0, len(ids)
    while at < count:
        if len(pw._ids) >= limit:
            pw._write_block()
        end = min(count, at + limit - len(pw._ids))
        chunk_weights = weights[at:end]
        pw._ids.extend(ids[at:end])
        pw._weights.extend(chunk_weights)
        top = max(chunk_weights)
        if top > pw._maxweight:
            pw._maxweight = top
        pw._values.extend(v for v in values[at:end] if v)
        if lengths is not None:
            chunk_lengths = [n for n in (lengths[d] for d in ids[at:end]) if n]
            if chunk_lengths:
                low, high = min(chunk_lengths), max(chunk_lengths)
                if pw._minlength is None or low < pw._minlength:
                    pw._minlength = low
                if high > pw._maxlength:
                    pw._maxlength = high
        at = end
