"""Did-you-mean: respell the words of a query that found nothing or little."""

from __future__ import annotations

from collections.abc import Iterable

from whoosh.reading import IndexReader
from whoosh.support.levenshtein import distance

from .engine.analysis import fold, word_terms
from .query import KEYWORD_FIELDS, ParsedQuery, TypedWord
from .schema import DEFAULT_FIELDS

# Suggestions come from the words people named things with.
SPELLING_FIELDS = ("title", "tags")
MAX_EDITS = 2
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


def closest(word: str, candidates: Iterable[tuple[str, int]], more_than: int) -> str | None:
    """The closest of the candidates (word, documents holding it), preferring fewer edits, then more frequent
    words; only those found in more than `more_than` documents.

    Whoosh's own correctors rank only by frequency within the edit budget
    (so a common word two edits away beats a rare one a single edit away).
    """
    best: tuple[int, int, str] | None = None
    for candidate, frequency in candidates:
        if candidate == word or frequency <= more_than:
            continue
        key = (distance(word, candidate), -frequency, candidate)
        if key[0] <= MAX_EDITS and (best is None or key < best):
            best = key
    return best[2] if best else None


def _best_respelling(reader: IndexReader, word: str, fields: tuple[str, ...], more_than: int) -> str | None:
    candidates = []
    for name in fields:
        spell_field = reader.schema[name].spelling_fieldname(name)
        for candidate in reader.terms_within(spell_field, word, MAX_EDITS, prefix=1):
            candidates.append((candidate, reader.doc_frequency(spell_field, candidate)))
    return closest(word, candidates, more_than)


def checked(parsed: ParsedQuery) -> list[tuple[TypedWord, str]]:
    """The typed words a respelling may replace, each with its folded form, and the fields it is looked up in."""
    folded = [(typed, fold(typed.word)) for typed in parsed.words[:_MAX_WORDS_CHECKED]]
    return [(typed, word) for typed, word in folded if len(word) >= 3 and word.isalpha()]


def respelling_fields(typed: TypedWord) -> tuple[str, ...]:
    return ("tags",) if typed.field in KEYWORD_FIELDS else SPELLING_FIELDS


def respelled(text: str, replacements: list[tuple[int, int, str]]) -> str | None:
    """text with the (start, end, word) replacements made, or None without any."""
    if not replacements:
        return None
    out = text
    for start, end, word in sorted(replacements, reverse=True):
        out = out[:start] + word + out[end:]
    return out


def suggest(reader: IndexReader, parsed: ParsedQuery) -> str | None:
    """The query text with unknown (or rare) words respelled, or None if nothing changes."""
    replacements: list[tuple[int, int, str]] = []
    for typed, word in checked(parsed):
        known = _frequency(reader, typed)
        if known >= RARE:
            continue
        respelling = _best_respelling(reader, word, respelling_fields(typed), known * RARE_RATIO if known else 0)
        if respelling:
            replacements.append((typed.start, typed.end, respelling))
    return respelled(parsed.text, replacements)
