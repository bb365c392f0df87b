"""Did-you-mean: respell the words of a query that found nothing or little."""

from __future__ import annotations

from whoosh.reading import IndexReader
from whoosh.support.levenshtein import distance

from .engine.analysis import fold, word_terms
from .query import KEYWORD_FIELDS, ParsedQuery, TypedWord
from .schema import DEFAULT_FIELDS

# Suggestions come from the words people named things with.
SPELLING_FIELDS = ("title", "tags")
_MAX_EDITS = 2
# Each respelling walks two word lists; a long query of gibberish must not
# turn a cheap "no results" into a slow one.
_MAX_WORDS_CHECKED = 10
# A word found in fewer documents than this may be a misspelling of a far more common one
# (one guide's typo); a respelling must be found in RARE_RATIO times as many documents.
RARE = 3
RARE_RATIO = 3


def _frequency(reader: IndexReader, typed: TypedWord) -> int:
    """The documents holding the typed word in its most common field."""
    names = DEFAULT_FIELDS if typed.field is None else (typed.field,)
    best = 0
    for name in names:
        text = typed.word.lower() if name in KEYWORD_FIELDS else word_terms(typed.word)[0]
        if (name, text) in reader:
            best = max(best, reader.doc_frequency(name, text))
    return best


def _best_respelling(reader: IndexReader, word: str, fields: tuple[str, ...], more_than: int) -> str | None:
    """The closest known word, preferring fewer edits, then more frequent words.

    Whoosh's own correctors rank only by frequency within the edit budget
    (so a common word two edits away beats a rare one a single edit away).
    """
    best: tuple[int, int, str] | None = None
    for name in fields:
        spell_field = reader.schema[name].spelling_fieldname(name)
        for candidate in reader.terms_within(spell_field, word, _MAX_EDITS, prefix=1):
            if candidate == word:
                continue
            frequency = reader.doc_frequency(spell_field, candidate)
            if frequency <= more_than:
                continue
            key = (distance(word, candidate), -frequency, candidate)
            if best is None or key < best:
                best = key
    return best[2] if best else None


def suggest(reader: IndexReader, parsed: ParsedQuery) -> str | None:
    """The query text with unknown (or rare) words respelled, or None if nothing changes."""
    text = parsed.text
    replacements: list[tuple[int, int, str]] = []
    for typed in parsed.words[:_MAX_WORDS_CHECKED]:
        word = fold(typed.word)
        if len(word) < 3 or not word.isalpha():
            continue
        known = _frequency(reader, typed)
        if known >= RARE:
            continue
        fields = ("tags",) if typed.field in KEYWORD_FIELDS else SPELLING_FIELDS
        respelled = _best_respelling(reader, word, fields, known * RARE_RATIO if known else 0)
        if respelled:
            replacements.append((typed.start, typed.end, respelled))
    if not replacements:
        return None
    out = text
    for start, end, word in sorted(replacements, reverse=True):
        out = out[:start] + word + out[end:]
    return out
