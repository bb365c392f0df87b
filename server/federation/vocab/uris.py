"""Ids and links: absolute http(s) URLs that cannot pass for another host."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, TypeGuard

from server.federation.vocab.types import MAX_ID_LENGTH, PUBLIC, VocabError
from server.federation.vocab.values import _as_list, _at, _json_type
from server.settings import is_http_url

_PUBLIC_ALIASES = {PUBLIC, "as:Public", "Public"}


def _id(doc: Mapping[str, Any], where: str) -> str:
    return _uri(doc.get("id"), _at(where, "id"))


def _uri(value: object, at: str) -> str:
    if value is None:
        raise VocabError(f"{at} is missing")
    if not isinstance(value, str):
        raise VocabError(f"{at} must be a URI string, not {_json_type(value)}")
    if len(value) > MAX_ID_LENGTH:
        raise VocabError(f"{at} is longer than {MAX_ID_LENGTH} characters")
    if not _is_http_url(value):
        raise VocabError(f"{at} must be an absolute http(s) URL")
    return value


def is_http_id(value: object) -> TypeGuard[str]:
    """An http(s) id of at most MAX_ID_LENGTH characters that reads whole: what an inbox takes as an activity's id,
    pushed or pulled. Whole, because callers take its host next (`host_of` raises on a port that is no number)."""
    return isinstance(value, str) and len(value) <= MAX_ID_LENGTH and _is_http_url(value)


# The same few ids (actors, communities, the public collection) recur in every activity.
_is_http_url = lru_cache(maxsize=4096)(is_http_url)


def _single(value: object, at: str) -> str | Mapping[str, Any] | None:
    if isinstance(value, list):
        if len(value) > 1:
            raise VocabError(f"{at} has {len(value)} values; only one is supported")
        value = value[0] if value else None
    if value is None or isinstance(value, str | Mapping):
        return value
    raise VocabError(f"{at} must be a URI or an object, not {_json_type(value)}")


def _addressees(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    at = _at(where, key)
    ids: list[str] = []
    for value in _as_list(doc.get(key)):
        ref = value.get("id") if isinstance(value, Mapping) else value
        if not isinstance(ref, str):
            raise VocabError(f"{at} must hold URIs, not {_json_type(ref)}")
        ids.append(PUBLIC if ref in _PUBLIC_ALIASES else _uri(ref, at))
    return tuple(dict.fromkeys(ids))


def _url(doc: Mapping[str, Any], where: str) -> str | None:
    at = _at(where, "url")
    value = doc.get("url")
    if value is None:
        return None
    if not isinstance(value, list):
        return _href(value, at)
    # A list mixes the page with media and magnet links; the page is the text/html one.
    pages = [v for v in value if isinstance(v, Mapping) and v.get("mediaType") == "text/html"]
    for candidate in pages + value:
        try:
            return _href(candidate, at)
        except VocabError:
            continue
    return None


def _href(value: object, at: str) -> str:
    if isinstance(value, Mapping):
        return _uri(value.get("href"), f"{at}.href")
    return _uri(value, at)
