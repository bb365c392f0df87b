"""The web-search query language (query.parse_query): what each piece of syntax becomes."""

from __future__ import annotations

import contextlib
import random

import pytest
from whoosh import query as wq

from server.search.query import QueryError, clauses_of, parse_query, positive_leaves, walk


def _query(text: str, **kwargs: bool) -> wq.Query:
    parsed = parse_query(text, **kwargs)
    assert parsed is not None
    return parsed.query


def _required_terms(q: wq.Query) -> set[str]:
    return {str(leaf.text) for leaf in positive_leaves(q) if isinstance(leaf, wq.Term) and leaf.fieldname == "title"}


def _excluded_terms(q: wq.Query) -> set[str]:
    return {
        str(leaf.text)
        for node in walk(q)
        if isinstance(node, wq.Not)
        for leaf in walk(node.query)
        if isinstance(leaf, wq.Term) and leaf.fieldname == "title"
    }


def test_common_words_are_not_required() -> None:
    assert _required_terms(_query("how to write the README ", prefix=False)) == {"write", "readm"}


def test_a_query_of_only_common_words_is_a_phrase() -> None:
    phrases = [n for n in walk(_query("to be or not to be")) if isinstance(n, wq.Phrase)]
    assert phrases and phrases[0].words == ["to", "be", "or", "not", "to", "be"]


def test_quoted_phrase_keeps_its_common_words_in_order() -> None:
    phrases = [n for n in walk(_query('"code of conduct"')) if isinstance(n, wq.Phrase)]
    assert {tuple(p.words) for p in phrases} == {("code", "of", "conduct")}


@pytest.mark.parametrize("text", ["jupyterhub -gpu", "jupyterhub NOT gpu", 'jupyterhub -"gpu"'])
def test_minus_and_not_exclude(text: str) -> None:
    q = _query(text)
    assert _excluded_terms(q) == {"gpu"}
    assert "jupyterhub" in _required_terms(q)


def test_or_joins_its_neighbours() -> None:
    q = _query("python OR julia notebooks ", prefix=False)
    assert isinstance(q, wq.And) and len(q.subqueries) == 2
    assert _required_terms(q.subqueries[0]) == {"python", "julia"}


def test_fields() -> None:
    q = _query('tag:"Open Source" community:Julia instance:kith.example.org title:testing')
    leaves = {(leaf.fieldname, leaf.text) for leaf in positive_leaves(q)}
    assert {("tags", "open source"), ("community", "julia"), ("instance", "kith.example.org")} <= leaves
    assert ("title", "test") in leaves and ("body", "test") not in leaves


def test_the_last_word_is_also_a_prefix_unless_a_space_follows() -> None:
    assert any(isinstance(n, wq.Prefix) and n.text == "jupy" for n in walk(_query("jupy")))
    assert not any(isinstance(n, wq.Prefix) for n in walk(_query("jupy ")))
    # Only what is typed last: an exclusion typed last is not a prefix, nor is the word before it.
    assert not any(isinstance(n, wq.Prefix) for n in walk(_query("jupyterhub -gp")))


def test_compounds_and_symbols_are_searched_as_typed() -> None:
    assert "c++" in _required_terms(_query("C++ extensions"))
    assert {"dataframes.jl", "datafram", "jl"} <= _required_terms(_query("DataFrames.jl "))
    assert {"3", "python"} <= _required_terms(_query("python 3"))


@pytest.mark.parametrize(
    "text", ['"unbalanced', "(rust", "rust)", "nosuchfield:x", "title:", "AND", "OR", "NOT", "a OR", "x^2 [a TO b]"]
)
def test_stray_syntax_is_searched_as_words(text: str) -> None:
    assert _query(text) is not None


@pytest.mark.parametrize("text", ["", "   ", "*", "(((", "a\x00b", "x" * 501])
def test_unsearchable_input_is_a_query_error(text: str) -> None:
    with pytest.raises(QueryError):
        parse_query(text)


def test_random_input_parses_or_is_a_query_error() -> None:
    pieces = [*"ab \"()*:?~^[]{}-+!\\/'#.", "AND ", "OR ", "NOT ", "tag:", "title:", "xyz:", " ", "é", "the "]
    rng = random.Random(17)
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 20)))
        with contextlib.suppress(QueryError):
            parse_query(text)


def test_clauses_of_reads_the_query_as_parse_query_does():
    clauses, last = clauses_of('python OR julia -"pull requests" tag:Data ??? note')
    read = [([(i.kind, i.text, i.field) for i in c.items], c.negated) for c in clauses]
    assert read == [
        ([("words", "python", None), ("words", "julia", None)], False),
        ([("phrase", "pull requests", None)], True),
        ([("words", "Data", "tags")], False),
        ([("words", "note", None)], False),
    ]
    assert last is not None and last.text == "note"
    assert clauses_of("python NOT julia")[1] is None
