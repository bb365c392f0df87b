"""Posts, actors and tombstones, and the references between them.

A reference (`attributedTo`, `audience`, `inReplyTo`, ...) may arrive as a URI, an embedded object or a list of
either; it is normalized to an id, and an embedded object of a type we know is parsed and kept in `embedded`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

from server.federation.vocab.documents import load_document
from server.federation.vocab.types import (
    ACTOR_TYPES,
    OBJECT_TYPES,
    Actor,
    ActorType,
    APObject,
    Link,
    Mentorship,
    Post,
    PostType,
    PublicKey,
    Source,
    Tag,
    Tombstone,
    VocabError,
)
from server.federation.vocab.uris import _addressees, _id, _single, _uri, _url
from server.federation.vocab.values import (
    _as_list,
    _at,
    _bool,
    _datetime,
    _int,
    _json_type,
    _kith_terms,
    _pick_type,
    _short_type,
    _str,
    _str_list,
    _text,
    _type_names,
)


def parse_object(data: bytes | str | Mapping[str, Any]) -> APObject:
    """Parse a post, actor or tombstone, or raise VocabError."""
    return _object(load_document(data), "")


def _object(doc: Mapping[str, Any], where: str) -> APObject:
    kind = _pick_type(doc, where, OBJECT_TYPES, "object")
    if kind == "Tombstone":
        return _tombstone(doc, where)
    if kind in ACTOR_TYPES:
        return _actor(doc, where, cast(ActorType, kind))
    return _post(doc, where, cast(PostType, kind))


def _post(doc: Mapping[str, Any], where: str, kind: PostType) -> Post:
    embedded: dict[str, APObject] = {}
    post_id = _id(doc, where)
    content, content_map = _text(doc, "content", where)
    terms = _kith_terms(doc)
    return Post(
        id=post_id,
        type=kind,
        name=_text(doc, "name", where)[0],
        summary=_text(doc, "summary", where)[0],
        content=content,
        content_map=content_map,
        media_type=_str(doc, "mediaType", where) or "text/html",
        source=_source(doc, where),
        url=_url(doc, where),
        attributed_to=_refs(doc, "attributedTo", where, embedded),
        audience=_refs(doc, "audience", where, embedded),
        in_reply_to=_optional_ref(doc, "inReplyTo", where, embedded),
        to=_addressees(doc, "to", where),
        cc=_addressees(doc, "cc", where),
        tags=_tags(doc, where),
        sensitive=_bool(doc, "sensitive", where),
        published=_datetime(doc, "published", where),
        updated=_datetime(doc, "updated", where),
        license=_str(terms, "license", where),
        slug=_str(terms, "slug", where),
        revision=_int(terms, "revision", where),
        derived_from=_optional_ref(terms, "derivedFrom", where, embedded),
        mentorship=_mentorship(terms, where) if kind == "MentorshipOffer" else None,
        former_uri=_optional_ref(terms, "formerUri", where, {}),
        also_known_as=_as_refs(doc, "alsoKnownAs", where),
        moved_to=_as_ref(doc, "movedTo", where),
        embedded=embedded,
    )


def _mentorship(terms: Mapping[str, Any], where: str) -> Mentorship:
    return Mentorship(
        topics=_str_list(terms, "topics", where),
        languages=_str_list(terms, "languages", where),
        format=_str(terms, "format", where),
        capacity=_int(terms, "capacity", where),
        seats_taken=_int(terms, "seatsTaken", where),
        availability=_str(terms, "availability", where),
        status=_str(terms, "status", where),
    )


def _actor(doc: Mapping[str, Any], where: str, kind: ActorType) -> Actor:
    embedded: dict[str, APObject] = {}
    actor_id = _id(doc, where)
    return Actor(
        id=actor_id,
        type=kind,
        preferred_username=_str(doc, "preferredUsername", where),
        name=_text(doc, "name", where)[0],
        summary=_text(doc, "summary", where)[0],
        url=_url(doc, where),
        icon=_icon(doc, where),
        inbox=_optional_ref(doc, "inbox", where, embedded),
        outbox=_optional_ref(doc, "outbox", where, embedded),
        followers=_optional_ref(doc, "followers", where, embedded),
        following=_optional_ref(doc, "following", where, embedded),
        shared_inbox=_shared_inbox(doc, where),
        public_keys=_public_keys(doc, where, actor_id),
        manually_approves_followers=_bool(doc, "manuallyApprovesFollowers", where),
        attributed_to=_refs(doc, "attributedTo", where, embedded),
        color=_str(_kith_terms(doc), "color", where),
        links=_links(doc, where),
        also_known_as=_as_refs(doc, "alsoKnownAs", where),
        moved_to=_as_ref(doc, "movedTo", where),
        published=_datetime(doc, "published", where),
        updated=_datetime(doc, "updated", where),
        embedded=embedded,
    )


def _tombstone(doc: Mapping[str, Any], where: str) -> Tombstone:
    former_type = _str(doc, "formerType", where)
    return Tombstone(
        id=_id(doc, where),
        former_type=_short_type(former_type) if former_type else None,
        deleted=_datetime(doc, "deleted", where),
        published=_datetime(doc, "published", where),
        updated=_datetime(doc, "updated", where),
    )


# --- References -------------------------------------------------------------------------


def _is_known_object(doc: Mapping[str, Any]) -> bool:
    return bool(set(_type_names(doc)) & OBJECT_TYPES)


def _ref(value: object, at: str, embedded: dict[str, APObject]) -> str:
    if isinstance(value, str):
        return _uri(value, at)
    if not isinstance(value, Mapping):
        raise VocabError(f"{at} must hold URIs or objects, not {_json_type(value)}")
    if not _is_known_object(value):
        return _uri(value.get("id"), f"{at}.id")
    parsed = _object(value, at)
    embedded[parsed.id] = parsed
    return parsed.id


def _refs(doc: Mapping[str, Any], key: str, where: str, embedded: dict[str, APObject]) -> tuple[str, ...]:
    at = _at(where, key)
    ids = (_ref(value, at, embedded) for value in _as_list(doc.get(key)))
    return tuple(dict.fromkeys(ids))


def _optional_ref(doc: Mapping[str, Any], key: str, where: str, embedded: dict[str, APObject]) -> str | None:
    at = _at(where, key)
    value = _single(doc.get(key), at)
    return None if value is None else _ref(value, at, embedded)


def _required_ref(doc: Mapping[str, Any], key: str, where: str, embedded: dict[str, APObject]) -> str:
    ref = _optional_ref(doc, key, where, embedded)
    if ref is None:
        raise VocabError(f"{_at(where, key)} is missing")
    return ref


def _as_refs(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    """An ActivityStreams-namespace term Mastodon sends bare (`alsoKnownAs`), or prefixed: the ids it names. What
    it embeds is not kept: only the documents fetched from their own hosts are believed."""
    return _refs({key: doc.get(key, doc.get(f"as:{key}"))}, key, where, {})


def _as_ref(doc: Mapping[str, Any], key: str, where: str) -> str | None:
    return _optional_ref({key: doc.get(key, doc.get(f"as:{key}"))}, key, where, {})


# --- Parts ------------------------------------------------------------------------------


def _icon(doc: Mapping[str, Any], where: str) -> str | None:
    at = _at(where, "icon")
    value = _as_list(doc.get("icon"))
    icon = value[0] if value else None
    if icon is None or isinstance(icon, str):
        return None if icon is None else _uri(icon, at)
    if not isinstance(icon, Mapping):
        raise VocabError(f"{at} must be an image object, not {_json_type(icon)}")
    return _url(icon, at)


def _shared_inbox(doc: Mapping[str, Any], where: str) -> str | None:
    endpoints = doc.get("endpoints")
    if endpoints is None or isinstance(endpoints, str):
        return None
    if not isinstance(endpoints, Mapping):
        raise VocabError(f"{_at(where, 'endpoints')} must be an object")
    shared = endpoints.get("sharedInbox")
    return None if shared is None else _uri(shared, _at(where, "endpoints.sharedInbox"))


def _public_keys(doc: Mapping[str, Any], where: str, actor_id: str) -> tuple[PublicKey, ...]:
    at = _at(where, "publicKey")
    keys: list[PublicKey] = []
    for value in _as_list(doc.get("publicKey")):
        if isinstance(value, str):
            continue  # a bare key reference: fetched when it is needed
        if not isinstance(value, Mapping):
            raise VocabError(f"{at} must be an object, not {_json_type(value)}")
        pem = _str(value, "publicKeyPem", at)
        if pem is None:
            raise VocabError(f"{at}.publicKeyPem is missing")
        owner = value.get("owner")
        keys.append(
            PublicKey(
                id=_uri(value.get("id"), f"{at}.id"),
                owner=actor_id if owner is None else _uri(owner, f"{at}.owner"),
                pem=pem,
            )
        )
    return tuple(keys)


def _links(doc: Mapping[str, Any], where: str) -> tuple[Link, ...]:
    at = _at(where, "attachment")
    links: list[Link] = []
    for value in _as_list(doc.get("attachment")):
        # Attachments vary widely (images, profile fields, ...); only Links are kept.
        if isinstance(value, Mapping) and value.get("type") == "Link":
            href = _uri(value.get("href"), f"{at}.href")
            links.append(Link(href=href, name=_str(value, "name", at)))
    return tuple(links)


def _source(doc: Mapping[str, Any], where: str) -> Source | None:
    at = _at(where, "source")
    value = doc.get("source")
    if value is None or isinstance(value, str):
        return None if value is None else Source(content=value)
    if not isinstance(value, Mapping):
        raise VocabError(f"{at} must be an object, not {_json_type(value)}")
    content = _str(value, "content", at)
    if content is None:
        raise VocabError(f"{at}.content is missing")
    return Source(content=content, media_type=_str(value, "mediaType", at))


def _tags(doc: Mapping[str, Any], where: str) -> tuple[Tag, ...]:
    at = _at(where, "tag")
    tags: list[Tag] = []
    for value in _as_list(doc.get("tag")):
        if isinstance(value, str):
            continue  # a bare link tags nothing we show
        if not isinstance(value, Mapping):
            raise VocabError(f"{at} must hold objects, not {_json_type(value)}")
        kind = value.get("type")
        kind = _short_type(kind) if isinstance(kind, str) else kind
        if kind not in ("Hashtag", "Mention"):
            continue  # Emoji, community post tags and the like
        href = value.get("href")
        tags.append(
            Tag(
                type=cast(Literal["Hashtag", "Mention"], kind),
                name=_str(value, "name", at),
                href=None if href is None else _uri(href, f"{at}.href"),
            )
        )
    return tuple(tags)
