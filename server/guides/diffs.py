"""Diffs between two texts of a guide: for people to read on a page, and as a unified diff for the API."""

from __future__ import annotations

import difflib


def line_diff(old: str, new: str) -> list[dict[str, str]]:
    """Line diff for people: removed and added lines, with a little context, no patch syntax."""
    lines: list[dict[str, str]] = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2):
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
