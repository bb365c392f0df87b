"""Differences between two texts of a guide: for people to read on a page (the revisions page and an
adaptation's upstream notice show the same lines), and as a unified diff for the API."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def line_diff(old: str, new: str) -> list[dict[str, str]]:
    """Line diff for people: removed and added lines, with a little context, no patch syntax."""
    return from_unified(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2))


def from_unified(diff: Iterable[str]) -> list[dict[str, str]]:
    """The lines of a unified diff, as `line_diff` gives them."""
    lines: list[dict[str, str]] = []
    for line in diff:
        line = line.rstrip("\n")
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            lines.append({"kind": "hunk", "text": "…"})
        elif line.startswith("+"):
            lines.append({"kind": "added", "text": line[1:]})
        elif line.startswith("-"):
            lines.append({"kind": "removed", "text": line[1:]})
        else:
            lines.append({"kind": "context", "text": line[1:]})
    return lines


def unified_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    """The patch text tools read (`patch`, `git apply`), three lines of context, newline-terminated lines."""
    return "".join(difflib.unified_diff(_lines(old), _lines(new), fromfile=old_label, tofile=new_label, n=3))


def _lines(text: str) -> list[str]:
    # Every line ends with a newline, the last included, so a text without a final newline still diffs line by line.
    return [line + "\n" for line in text.splitlines()]
