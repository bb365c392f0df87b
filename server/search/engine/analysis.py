"""English text analysis, shared by the index and the query side, computed a word at a time.

A word is what people type as one: `DataFrames.jl`, `C++`, `C#`, `.NET`, `3.12`, `R`. Each word is
lowercased and accent-folded and gives its whole form plus the parts it is made of (`dataframes.jl`,
`dataframes`, `jl`, `data`, `frames`; `jupyterhub`, `jupyter`, `hub`; `3.12`, `3`, `12`), all at the
word's position, so a search for any of them finds it and a phrase still reads the words in order.
Alphabetic terms are stemmed (English). Nothing is dropped: stop words and one-letter words are indexed,
so a quoted phrase or a query of only stop words can be searched; the query side (`query.py`) decides
which words a match must contain, with `word_terms` and `is_stop_word` from here.

Whoosh's analyzer chain passes one `Token` object per word through a stream of generators; `FastText.index`
instead finds the words with one regex call, looks each up in a bounded cache and groups positions per
term, producing exactly the postings `KithAnalyzer` gives Whoosh (`tests/unit/test_search_analysis.py`
compares both).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pickle import dumps
from typing import Any

from whoosh import fields
from whoosh.analysis import Analyzer, Token
from whoosh.analysis.filters import STOP_WORDS as WHOOSH_STOP_WORDS
from whoosh.lang import stemmer_for_language
from whoosh.support.charset import accent_map
from whoosh.system import pack_uint

STEM_LANG = "en"
# Distinct words remembered by each field type; past this the cache starts over (real text has far fewer
# distinct words than this, so it rarely does).
CACHE_WORDS = 100_000

# A word: `.net` (a leading dot only where no word or dot comes before it), or word characters joined by
# single dots (`3.12`, `dataframes.jl`), optionally ending in `++` or `#` (`c++`, `c#`, `f#`).
WORD_PATTERN = r"(?:(?<![\w.+#])\.)?\w+(?:\.\w+)*(?:\+\+|#)?"
_WORDS = re.compile(WORD_PATTERN)
# Pieces of a word between its punctuation, and the camel-case, letter and digit runs within a piece.
_PIECES = re.compile(r"[^\W_]+")
_RUNS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\W\d_A-Za-z]+")

# Words a query does not require (a question's filler: "how do I write a code of conduct"); they are
# still indexed, and count inside a quoted phrase or in a query made of nothing else.
STOP_WORDS = frozenset(WHOOSH_STOP_WORDS) | frozenset(
    [
        "about",
        "after",
        "all",
        "also",
        "am",
        "any",
        "but",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "each",
        "get",
        "getting",
        "had",
        "has",
        "how",
        "i",
        "into",
        "its",
        "me",
        "my",
        "our",
        "should",
        "so",
        "some",
        "than",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "those",
        "through",
        "too",
        "use",
        "using",
        "very",
        "was",
        "way",
        "ways",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "would",
    ]
)

_MISSING = object()
_UNPICKLED = frozenset({"_terms", "_spellings", "_separate_spelling", "_weights"})
# Frequencies and positions below this share their weight and encoded value between postings, which keeps
# the postings of a large rebuild compact in memory.
_SHARED = 1024


def fold(text: str) -> str:
    """Lowercase and accent-folded, as every indexed term is."""
    return text.lower().translate(accent_map)


def word_forms(word: str) -> tuple[str, ...]:
    """The folded, unstemmed forms a word is indexed under: the whole word first, then its parts.

    Empty for a "word" with no letter or digit (a lone `_`).
    """
    whole = fold(word)
    if (whole.isalpha() or whole.isdigit()) and (word.islower() or word[1:].islower() or word.isupper()):
        return (whole,)  # most words: one plain run of letters or digits
    if word.endswith(("++", "#")):
        return (whole,)  # a language's name: C++ is not C
    # Accents are taken off first with the case kept (accent_map also lowercases some letters), so that
    # camel case can still be seen.
    plain = "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))
    pieces = _PIECES.findall(plain)
    if not pieces:
        return ()
    forms = [whole]
    for piece in pieces:
        forms.append(fold(piece))
        forms.extend(fold(run) for run in _RUNS.findall(piece))
    return tuple(dict.fromkeys(forms))


_stem = stemmer_for_language(STEM_LANG)


def _stemmed(form: str) -> str:
    return _stem(form) if form.isalpha() else form


@lru_cache(maxsize=16_384)
def word_terms(word: str) -> tuple[str, ...]:
    """The terms a word is indexed under (stemmed `word_forms`): the whole word's term first."""
    return tuple(dict.fromkeys(_stemmed(form) for form in word_forms(word)))


def words(text: str) -> list[str]:
    """The words of a text, in order."""
    return _WORDS.findall(text)


def is_stop_word(word: str) -> bool:
    return fold(word) in STOP_WORDS


class KithAnalyzer(Analyzer):
    """The analysis above as a Whoosh analyzer: what queries, highlighting and Whoosh's own paths use.

    Every term of a word has the word's position; `no_morph=True` (spelling word lists) skips stemming.
    """

    is_morph = True

    def has_morph(self) -> bool:
        return True

    def __call__(
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        no_morph: bool = False,
        **kwargs: Any,
    ) -> Iterator[Token]:
        analyze = word_forms if no_morph else word_terms
        pos = start_pos
        for match in _WORDS.finditer(value) if tokenize else [re.match(r".*", value, re.S)]:
            assert match is not None
            terms = analyze(match.group())
            if not terms:
                continue
            for term in terms:
                values: dict[str, Any] = {"text": term, "boost": 1.0, "stopped": False}
                if keeporiginal:
                    values["original"] = match.group()
                if positions:
                    values["pos"] = pos
                if chars:
                    values["startchar"] = start_char + match.start()
                    values["endchar"] = start_char + match.end()
                yield Token(positions, chars, removestops=removestops, mode=mode, **{**kwargs, **values})
            pos += 1


def text_analyzer() -> KithAnalyzer:
    """The analyzer of the text fields (title, summary, body), on both sides."""
    return KithAnalyzer()


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


class FastText(fields.TEXT):
    """A TEXT field (positions, `KithAnalyzer`) whose `index` skips the token stream.

    The analyzer is always `text_analyzer()`: `index` reproduces it and no other. Values other than
    a plain string, and calls with analyzer options, go through Whoosh's own path.
    """

    def __init__(self, *, stored: bool = False, field_boost: float = 1.0, spelling: bool = False) -> None:
        super().__init__(analyzer=text_analyzer(), stored=stored, field_boost=field_boost, spelling=spelling)
        self._setup()

    def _setup(self) -> None:
        self._terms = _WordCache(lambda word: tuple(term.encode("utf-8") for term in word_terms(word)))
        self._spellings = _WordCache(word_forms)
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
        forms = self._spellings.lookup(_WORDS.findall(value))
        return iter(sorted({form for word in forms for form in word}))


def postings(terms: list[tuple[bytes, ...]], weights: list[float]) -> list[tuple[bytes, int, float, bytes]]:
    """(term, frequency, weight, encoded positions) per distinct term, as `formats.Positions.word_values`.

    `terms` has the terms of each word of the text (none for a word that is not indexed, which takes no
    position); `weights[n]` is the weight of a term found n times.
    """
    positions: dict[bytes, list[int]] = {}
    pos = 0
    for word in terms:
        if not word:
            continue
        for term in word:
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
