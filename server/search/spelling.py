"""Did-you-mean: respell the words of a query that found nothing."""

from __future__ import annotations

from collections.abc import Iterator

from whoosh import query as wq
from whoosh.analysis import STOP_WORDS
from whoosh.reading import IndexReader
from whoosh.support.charset import accent_map
from whoosh.support.levenshtein import distance

from .query import positive_leaves

# Suggestions come from the words people named things with.
SPELLING_FIELDS = ("title", "tags")
_MAX_EDITS = 2
# Each respelling walks two word lists; a long query of gibberish must not
# turn a cheap "no results" into a slow one.
_MAX_WORDS_CHECKED = 10


def _leaf_spans(leaf: wq.Query) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, field, term) for each word of a parsed leaf query."""
    if isinstance(leaf, wq.Phrase):
        ranges = getattr(leaf, "char_ranges", None) or []
        for (start, end), word in zip(ranges, leaf.words, strict=False):
            if start is not None and end is not None:
                yield start, end, leaf.fieldname, word
        return
    start, end = getattr(leaf, "startchar", None), getattr(leaf, "endchar", None)
    if start is not None and end is not None:
        yield start, end, leaf.fieldname, leaf.text


def _word_spans(q: wq.Query) -> dict[tuple[int, int], list[tuple[str, str]]]:
    # The multifield parser turns one typed word into a term per field, all
    # pointing at the same characters; group them back into typed words.
    spans: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for leaf in positive_leaves(q):
        for start, end, field, term in _leaf_spans(leaf):
            spans.setdefault((start, end), []).append((field, term))
    # A quoted phrase also yields one keyword term spanning the whole phrase;
    # keep only the innermost spans so that replacements never overlap.
    return {
        span: terms
        for span, terms in spans.items()
        if not any(_contains(span, other) for other in spans if other != span)
    }


def _contains(outer: tuple[int, int], inner: tuple[int, int]) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1]


def _core(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a span to its alphanumeric core, so punctuation survives a respelling."""
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return start, end


def _best_respelling(reader: IndexReader, word: str) -> str | None:
    """The closest known word, preferring fewer edits, then more frequent words.

    Whoosh's own correctors rank only by frequency within the edit budget
    (so a common word two edits away beats a rare one a single edit away).
    """
    best: tuple[int, int, str] | None = None
    for field in SPELLING_FIELDS:
        spell_field = reader.schema[field].spelling_fieldname(field)
        for candidate in reader.terms_within(spell_field, word, _MAX_EDITS, prefix=1):
            if candidate == word:
                continue
            frequency = reader.doc_frequency(spell_field, candidate)
            key = (distance(word, candidate), -frequency, candidate)
            if best is None or key < best:
                best = key
    return best[2] if best else None


def _fold(word: str) -> str:
    # The spelling word lists are lowercased and accent-folded like the index.
    return word.lower().translate(accent_map)


def suggest(reader: IndexReader, text: str, q: wq.Query) -> str | None:
    """The query text with unknown words respelled, or None if nothing changes."""
    replacements: list[tuple[int, int, str]] = []
    spans = sorted(_word_spans(q).items())[:_MAX_WORDS_CHECKED]
    for (start, end), terms in spans:
        if any((field, term) in reader for field, term in terms):
            continue  # the word is in the index: not a misspelling
        start, end = _core(text, start, end)
        word = _fold(text[start:end])
        if len(word) < 3 or word in STOP_WORDS:
            continue
        respelled = _best_respelling(reader, word)
        if respelled:
            replacements.append((start, end, respelled))
    if not replacements:
        return None
    out = text
    for start, end, word in reversed(replacements):
        out = out[:start] + word + out[end:]
    return out
