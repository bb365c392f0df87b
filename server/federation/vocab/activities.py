"""The activities Kith handles; `object` may be an id, an embedded object or an embedded activity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from server.federation.vocab.documents import load_document
from server.federation.vocab.objects import _object, _optional_ref, _refs, _required_ref
from server.federation.vocab.types import ACTIVITY_TYPES, OBJECT_TYPES, Activity, ActivityType, APObject, VocabError
from server.federation.vocab.uris import _addressees, _id, _single, _uri
from server.federation.vocab.values import _at, _datetime, _kith_terms, _pick_type, _str, _text, _type_names


def parse_activity(data: bytes | str | Mapping[str, Any]) -> Activity:
    """Parse one of the activities Kith handles, or raise VocabError."""
    return _activity(load_document(data), "")


def _activity(doc: Mapping[str, Any], where: str) -> Activity:
    kind = _pick_type(doc, where, ACTIVITY_TYPES, "activity")
    embedded: dict[str, APObject] = {}
    activity_id = _id(doc, where)
    object_id, obj = _activity_object(doc, where)
    return Activity(
        id=activity_id,
        type=cast(ActivityType, kind),
        actor=_required_ref(doc, "actor", where, embedded),
        object_id=object_id,
        object=obj,
        target=_optional_ref(doc, "target", where, {}),
        to=_addressees(doc, "to", where),
        cc=_addressees(doc, "cc", where),
        audience=_refs(doc, "audience", where, embedded),
        summary=_text(doc, "summary", where)[0],
        status=_str(_kith_terms(doc), "status", where),
        published=_datetime(doc, "published", where),
        updated=_datetime(doc, "updated", where),
        embedded=embedded,
    )


def _activity_object(doc: Mapping[str, Any], where: str) -> tuple[str, Activity | APObject | None]:
    at = _at(where, "object")
    value = _single(doc.get("object"), at)
    if value is None:
        raise VocabError(f"{at} is missing")
    if isinstance(value, str):
        return _uri(value, at), None
    parsed = _activity(value, at) if _looks_like_activity(value) else _object(value, at)
    return parsed.id, parsed


def _looks_like_activity(doc: Mapping[str, Any]) -> bool:
    names = set(_type_names(doc))
    if names & OBJECT_TYPES:
        return False
    # Unknown types with an actor are activities (Like, Block, ...): say so when rejecting.
    return bool(names & ACTIVITY_TYPES) or "actor" in doc
