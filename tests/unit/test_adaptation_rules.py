"""The rules of adapting, as pure functions: which licenses allow it, which they carry, and conflict blocks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from server.errors import ProblemError
from server.guides import adaptation, rules


@pytest.mark.parametrize(
    "license",
    ["CC-BY-ND-4.0", "CC-BY-NC-ND-4.0", "cc-by-nd-3.0", "All rights reserved", "LicenseRef-All-Rights-Reserved"],
)
def test_no_derivatives_and_all_rights_reserved_are_not_adapted(license: str) -> None:
    with pytest.raises(ProblemError) as refused:
        rules.adaptable(license)
    assert refused.value.status == 422 and refused.value.errors[0].field == "derived_from"


@pytest.mark.parametrize("license", ["CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0", "MIT", "unspecified", "CC-BY-NC-4.0"])
def test_other_licenses_allow_adapting(license: str) -> None:
    rules.adaptable(license)


def test_share_alike_is_carried_and_kept() -> None:
    assert rules.adaptation_license("CC-BY-SA-4.0", None) == "CC-BY-SA-4.0"
    assert rules.adaptation_license("CC-BY-NC-SA-4.0", "CC-BY-NC-SA-4.0") == "CC-BY-NC-SA-4.0"
    with pytest.raises(ProblemError):
        rules.adaptation_license("CC-BY-SA-4.0", "CC-BY-4.0")
    assert rules.adaptation_license("CC-BY-4.0", None) == "CC-BY-4.0"
    assert rules.adaptation_license("CC-BY-4.0", "CC0-1.0") == "CC0-1.0"


def test_only_kiths_own_conflict_blocks_are_refused() -> None:
    # A guide about git may well show git's markers; only the blocks a merge here leaves are refused.
    rules.no_conflict_blocks("```\n<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> main\n```\n\nTitle\n=======\n")
    for left in ("<<<<<<< your text\n", "x\r\n>>>>>>> upstream revision 12\r\n"):
        with pytest.raises(ProblemError) as refused:
            rules.no_conflict_blocks(f"intro\n{left}rest")
        assert refused.value.errors[0].field == "body_markdown"


def _merge(base: str, ours: str, theirs: str) -> adaptation.Merged:
    row = SimpleNamespace(base_body=base, base_title="T")
    return adaptation.merge(
        row,  # type: ignore[arg-type]
        SimpleNamespace(body_markdown=ours, title="T"),  # type: ignore[arg-type]
        SimpleNamespace(body_markdown=theirs, title="T2", revision=4),  # type: ignore[arg-type]
    )


def test_a_merge_takes_the_upstreams_change_into_our_edits_whatever_the_line_ends() -> None:
    merged = _merge("a\nb\nc\nd\n", "A\r\nb\r\nc\r\nd\r\n", "a\nb\nc\nD\n")
    assert merged.conflicts == 0 and merged.markdown == "A\nb\nc\nD\n"
    assert merged.title == "T2"  # our title was the base's: the upstream's new one is taken


def test_a_conflicting_merge_shows_both_sides_in_labelled_blocks() -> None:
    merged = _merge("a\nb\nc", "a\nB\nc", "a\nβ\nc")
    assert merged.conflicts == 1
    assert merged.markdown == "a\n<<<<<<< your text\nB\n=======\nβ\n>>>>>>> upstream revision 4\nc"
    with pytest.raises(ProblemError):
        rules.no_conflict_blocks(merged.markdown)
