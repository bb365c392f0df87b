"""Reading one property of a document: its JSON shape checked, its AS2 form normalized.

Every reader takes `where`, the path of the object being read, so that a rejection names the property.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from server.federation.vocab.types import KITH_TERMS, VocabError

_AS_PREFIXES = ("https://www.w3.org/ns/activitystreams#", "as:")


# --- Types ------------------------------------------------------------------------------


def _pick_type(doc: Mapping[str, Any], where: str, supported: frozenset[str], kind: str) -> str:
    names = _type_names(doc)
    if not names:
        raise VocabError(f"{_at(where, 'type')} is missing or not a string")
    # An offer may also be typed Note for servers that do not know Kith: it is an offer.
    for name in sorted(names, key=lambda name: name != "MentorshipOffer"):
        if name in supported:
            return name
    inside = f" (in {where})" if where else ""
    raise VocabError(f"unsupported {kind} type {names[0][:64]}{inside}")


def _type_names(doc: Mapping[str, Any]) -> list[str]:
    value = doc.get("type")
    values = value if isinstance(value, list) else [value]
    return [_short_type(name) for name in values if isinstance(name, str) and name]


def _short_type(name: str) -> str:
    if name == "kith:MentorshipOffer":
        return "MentorshipOffer"
    for prefix in _AS_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


# --- Values -----------------------------------------------------------------------------


def _str(doc: Mapping[str, Any], key: str, where: str) -> str | None:
    value = doc.get(key)
    if value is None or isinstance(value, str):
        return value
    raise VocabError(f"{_at(where, key)} must be a string, not {_json_type(value)}")


def _str_list(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    values = _as_list(doc.get(key))
    if not all(isinstance(value, str) for value in values):
        raise VocabError(f"{_at(where, key)} must be a list of strings")
    return tuple(values)


def _int(doc: Mapping[str, Any], key: str, where: str) -> int | None:
    value = doc.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise VocabError(f"{_at(where, key)} must be an integer, not {_json_type(value)}")


def _bool(doc: Mapping[str, Any], key: str, where: str) -> bool:
    value = doc.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise VocabError(f"{_at(where, key)} must be a boolean, not {_json_type(value)}")


def _datetime(doc: Mapping[str, Any], key: str, where: str) -> datetime | None:
    value = doc.get(key)
    if value is None:
        return None
    at = _at(where, key)
    if not isinstance(value, str):
        raise VocabError(f"{at} must be a date-time string, not {_json_type(value)}")
    try:
        parsed = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        raise VocabError(f"{at} is not an RFC 3339 date-time") from None
    # xsd:dateTime allows no offset; AS2 publishers mean UTC by it.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(doc: Mapping[str, Any], key: str, where: str) -> tuple[str | None, dict[str, str]]:
    """A natural-language property: `content`, or else the first of `contentMap`."""
    text = _str(doc, key, where)
    language_map = doc.get(f"{key}Map")
    if language_map is None:
        return text, {}
    if not isinstance(language_map, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in language_map.items()
    ):
        raise VocabError(f"{_at(where, key + 'Map')} must map language tags to strings")
    if text is None and language_map:
        text = next(iter(language_map.values()))
    return text, dict(language_map)


def _kith_terms(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {term: doc.get(term, doc.get(f"kith:{term}")) for term in KITH_TERMS}


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
