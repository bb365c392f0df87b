"""English text analysis for the index, computed without Whoosh's token stream when indexing.

Whoosh's analyzer chain (tokenizer | lowercase | accent folding | stop words | stemmer) passes one `Token`
object per word through five generators, and the format then groups the tokens per term: that was the bulk
of the CPU time spent indexing a guide. Every filter of the chain works on one word at a time, so a word's
term depends on the word alone and can be cached; `FastText.index` finds the words with one regex call,
looks each up in a bounded cache, and groups positions per term, producing exactly the postings the chain
would (the same terms, frequencies, weights, positions and field lengths; `tests/unit/test_search_analysis.py`
compares both). Queries still go through the chain itself (`FastText.analyzer`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pickle import dumps
from typing import Any

from whoosh import fields
from whoosh.analysis import CharsetFilter, CompositeAnalyzer, LowercaseFilter, RegexTokenizer, StemFilter, StopFilter
from whoosh.analysis.filters import STOP_WORDS
from whoosh.analysis.tokenizers import default_pattern
from whoosh.lang import stemmer_for_language
from whoosh.support.charset import accent_map
from whoosh.system import pack_uint

STEM_LANG = "en"
MIN_WORD = 2  # StopFilter's default minsize: shorter words are not indexed
# Distinct words remembered by each field type; past this the cache starts over (real text has far fewer
# distinct words than this, so it rarely does).
CACHE_WORDS = 100_000

# The tokenizer's pattern without its capturing group, so that `findall` returns whole matches.
_WORDS = re.compile(default_pattern.pattern.replace("(\\.?", "(?:\\.?"), default_pattern.flags)
if _WORDS.groups:  # pragma: no cover - a different Whoosh whose pattern this does not know how to rewrite
    raise ImportError("cannot derive a group-free word pattern from Whoosh's tokenizer pattern")

_MISSING = object()
_UNPICKLED = frozenset({"_terms", "_spellings", "_separate_spelling", "_weights"})
# Frequencies and positions below this share their weight and encoded value between postings, which keeps
# the postings of a large rebuild compact in memory.
_SHARED = 1024


def text_analyzer() -> CompositeAnalyzer:
    """English stemming with accent folding (the chain queries are analyzed with).

    Folding runs before stop words and stemming so that "café" and "cafe",
    or "résumés" and "resumes", reduce to the same stem.
    """
    return (
        RegexTokenizer(default_pattern)
        | LowercaseFilter()
        | CharsetFilter(accent_map)
        | StopFilter(STOP_WORDS, minsize=MIN_WORD)
        | StemFilter(lang=STEM_LANG)
    )


class _WordCache:
    """word -> what indexing makes of it (or None when it is not indexed), bounded."""

    def __init__(self, analyze: Callable[[str], Any], limit: int = CACHE_WORDS) -> None:
        self._analyze = analyze
        self._limit = limit
        self.terms: dict[str, Any] = {}

    def lookup(self, words: list[str]) -> list[Any]:
        terms = self.terms
        get = terms.get
        found = [get(word, _MISSING) for word in words]
        if _MISSING in found:
            if len(terms) + len(found) > self._limit:
                terms.clear()  # starting over is simpler than an LRU and costs one re-analysis per word
            analyze = self._analyze
            for i, term in enumerate(found):
                if term is _MISSING:
                    word = words[i]
                    term = terms.get(word, _MISSING)
                    if term is _MISSING:
                        term = terms[word] = analyze(word)
                    found[i] = term
        return found


def _folded(word: str) -> str | None:
    text = word.lower().translate(accent_map)
    if len(text) < MIN_WORD or text in STOP_WORDS:
        return None
    return text


class FastText(fields.TEXT):
    """A TEXT field (positions, the chain above) whose `index` skips the token stream.

    The analyzer is always `text_analyzer()`: `index` reproduces that chain and no other. Values other than
    a plain string, and calls with analyzer options, go through Whoosh's own path.
    """

    def __init__(self, *, stored: bool = False, field_boost: float = 1.0, spelling: bool = False) -> None:
        super().__init__(analyzer=text_analyzer(), stored=stored, field_boost=field_boost, spelling=spelling)
        self._setup()

    def _setup(self) -> None:
        stem = stemmer_for_language(STEM_LANG)

        def term(word: str) -> bytes | None:
            folded = _folded(word)
            return None if folded is None else stem(folded).encode("utf-8")

        self._terms = _WordCache(term)
        self._spellings = _WordCache(_folded)
        self._separate_spelling = super().separate_spelling()
        # Weight = frequency x field boost, the float objects shared by every posting with that frequency.
        self._weights = [n * self.format.field_boost for n in range(_SHARED)]

    # The caches are rebuilt, not pickled: Whoosh pickles the schema into every commit's TOC.
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in _UNPICKLED}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup()

    def separate_spelling(self) -> bool:
        return self._separate_spelling

    def index(self, value: Any, **kwargs: Any) -> Iterable[tuple[bytes, int, float, bytes]]:
        if kwargs or type(value) is not str:
            return super().index(value, **kwargs)
        return postings(self._terms.lookup(_WORDS.findall(value)), self._weights)

    def spellable_words(self, value: Any) -> Iterator[str]:
        if type(value) is not str:
            return super().spellable_words(value)
        words = self._spellings.lookup(_WORDS.findall(value))
        return iter(sorted({word for word in words if word is not None}))


def postings(terms: list[bytes | None], weights: list[float]) -> list[tuple[bytes, int, float, bytes]]:
    """(term, frequency, weight, encoded positions) per distinct term, as `formats.Positions.word_values`.

    `terms` has one entry per word of the text, None for a word that is not indexed; `weights[n]` is the
    weight of a term found n times. Like StopFilter with `renumber`, the first indexed word keeps its
    position among all words and the later ones follow it without gaps.
    """
    start = 0
    for term in terms:
        if term is not None:
            break
        start += 1
    positions: dict[bytes, list[int]] = {}
    pos = start
    for term in terms[start:]:
        if term is None:
            continue
        where = positions.get(term)
        if where is None:
            positions[term] = [pos]
        else:
            where.append(pos)
        pos += 1
    out = []
    boost = weights[1]
    for term, where in positions.items():
        freq = len(where)
        if freq == 1:
            encoded = _single(where[0])
        else:
            # Positions.encode: the count, then the pickled gaps between positions.
            deltas = [b - a for a, b in zip([0, *where], where, strict=False)]
            encoded = pack_uint(freq) + dumps(deltas, 2)
        out.append((term, freq, weights[freq] if freq < _SHARED else freq * boost, encoded))
    return out


_ONE = pack_uint(1)
_SINGLES = [_ONE + dumps([pos], 2) for pos in range(_SHARED)]


def _single(pos: int) -> bytes:
    return _SINGLES[pos] if pos < _SHARED else _ONE + dumps([pos], 2)
