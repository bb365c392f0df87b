"""Plain-word queries built from remembered words (query._plain_query) against the parser's own reading."""

from __future__ import annotations

import random

import pytest
from whoosh import query as wq

from server.search.query import (
    QueryError,
    _parse,
    _plain_query,
    _unpositional_phrases,
    clean_text,
    parse_query,
    walk,
)

WORDS = [
    "tulip", "tulips", "gardening", "garden", "Garden", "GARDEN", "the", "a", "of", "is", "running", "ran",
    "über", "naïve", "café", "2024", "x11", "c3po", "seed", "seeds", "compost", "and", "or", "not", "to",
]  # fmt: skip


def _parser_reading(text: str) -> wq.Query:
    return _unpositional_phrases(_parse(clean_text(text))).normalize()


def _shape(q: wq.Query) -> list[tuple[object, ...]]:
    """Every node with what the search and the spelling suggestion read of it."""
    return [
        (type(n).__name__, getattr(n, "fieldname", None), getattr(n, "text", None), n.boost)
        + (getattr(n, "startchar", None), getattr(n, "endchar", None))
        for n in walk(q)
    ]


def test_plain_words_are_read_as_the_parser_reads_them() -> None:
    rng = random.Random(3)
    checked = 0
    for _ in range(2000):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
        assert _plain_query(clean_text(text)) is not None, text
        expected = _parser_reading(text)
        if isinstance(expected, type(wq.NullQuery)):
            with pytest.raises(QueryError):
                parse_query(text)
            continue
        parsed = parse_query(text)
        assert parsed is not None
        assert parsed.query == expected, text
        assert _shape(parsed.query) == _shape(expected), text
        checked += 1
    assert checked > 1500


@pytest.mark.parametrize(
    "text",
    ["tulip AND seed", "tulip OR seed", "NOT seed", "seed ANDNOT tulip", "title:tulip", '"tulip seed"',
     "tulip^2", "(tulip seed)", "tulip-seed", "c++", "snake_case", "tulip  seed"],
)  # fmt: skip
def test_anything_else_goes_through_the_parser(text: str) -> None:
    if text != "tulip  seed":  # clean_text makes one space of two: plain words after all
        assert _plain_query(clean_text(text)) is None
    parsed = parse_query(text)
    assert parsed is not None
    assert _shape(parsed.query) == _shape(_parser_reading(text))
