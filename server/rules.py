"""Field rules every domain shares: text and labels, the same for a person's form and a peer's entry.

Where the two must differ, one argument says so: a person is told what to fix (`strict`), while a peer's
entry is trimmed to fit wherever trimming keeps its meaning, because nobody can fix it for them.
"""

from __future__ import annotations

from datetime import datetime

from server.errors import invalid


def clean_text(field: str, value: str, limit: int, *, one_line: bool = False, required: bool = False) -> str:
    """The value with its outer whitespace removed (all runs of whitespace made one space if `one_line`)."""
    value = " ".join(value.split()) if one_line else value.strip()
    if required and not value:
        raise invalid(field, "must not be blank")
    if len(value) > limit:
        raise invalid(field, f"must be at most {limit} characters")
    return value


def normalize_labels(
    field: str, values: list[str], *, limit: int = 20, max_length: int = 50, strict: bool = True
) -> list[str]:
    """Tags, topics, languages: lower case, one space, no leading '#', each once. `strict` refuses an empty or
    over-long label or one with '|' (the separator of the stored key); otherwise those are trimmed or dropped."""
    cleaned: list[str] = []
    for value in values:
        label = " ".join(value.strip().lower().lstrip("#").split())
        if strict and not label:
            raise invalid(field, "must not contain empty values")
        if strict and (len(label) > max_length or "|" in label):
            raise invalid(field, f"each value must be at most {max_length} characters, without '|'")
        label = label[:max_length].replace("|", "")
        if label and label not in cleaned:
            cleaned.append(label)
    if len(cleaned) > limit:
        raise invalid(field, f"at most {limit} values")
    return cleaned


def is_newer(incoming: datetime | None, stored: datetime) -> bool:
    """Last writer wins on `updated` for a peer's entries; an equal timestamp is a repeat, not news."""
    return incoming is not None and incoming > stored


def is_news(incoming: datetime | None, copy: tuple[datetime | None, datetime] | None) -> bool:
    """Whether a peer's version (as of `incoming`) changes our copy, given as (deleted_at, updated_at), or None
    when there is none: a deleted copy stays deleted, and only a newer version wins."""
    return copy is None or (copy[0] is None and is_newer(incoming, copy[1]))
