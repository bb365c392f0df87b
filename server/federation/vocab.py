"""The ActivityStreams 2.0 vocabulary Kith accepts, parsed from untrusted JSON.

`parse_activity` and `parse_object` turn what a remote server sent into typed, normalized
structs, or raise `VocabError` with a reason a person can act on, and nothing else, whatever
the input. References (`actor`, `attributedTo`, `audience`, `object`, ...) may arrive as a
URI, an embedded object or a list of either; they are normalized to ids, and embedded
objects of a type we know are parsed and kept in `embedded` (or `Activity.object`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, TypeAlias, TypeGuard, cast, get_args
from urllib.parse import urlsplit

import msgspec

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
MAX_DEPTH = 10
MAX_ID_LENGTH = 2048

ActivityType = Literal["Create", "Update", "Delete", "Follow", "Accept", "Reject", "Undo", "Announce"]
PostType = Literal["Article", "Page", "Note", "MentorshipOffer"]
ActorType = Literal["Application", "Group", "Person", "Service"]

ACTIVITY_TYPES: frozenset[str] = frozenset(get_args(ActivityType))
POST_TYPES: frozenset[str] = frozenset(get_args(PostType))
ACTOR_TYPES: frozenset[str] = frozenset(get_args(ActorType))
OBJECT_TYPES: frozenset[str] = POST_TYPES | ACTOR_TYPES | {"Tombstone"}

# Terms Kith defines in its hosted @context; peers may send them bare or as `kith:term`.
KITH_TERMS = (
    "MentorshipOffer",
    "license",
    "slug",
    "revision",
    "derivedFrom",
    "color",
    "topics",
    "languages",
    "format",
    "capacity",
    "seatsTaken",
    "availability",
    "status",
)

_AS_PREFIXES = ("https://www.w3.org/ns/activitystreams#", "as:")
_PUBLIC_ALIASES = {PUBLIC, "as:Public", "Public"}
_UNSAFE_URL_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


class VocabError(ValueError):
    """The document is not ActivityStreams Kith accepts; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Tag(msgspec.Struct, frozen=True, kw_only=True):
    type: Literal["Hashtag", "Mention"]
    name: str | None = None
    href: str | None = None


class Link(msgspec.Struct, frozen=True, kw_only=True):
    href: str
    name: str | None = None


class Source(msgspec.Struct, frozen=True, kw_only=True):
    content: str
    media_type: str | None = None


class PublicKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    owner: str
    pem: str


class Mentorship(msgspec.Struct, frozen=True, kw_only=True):
    """The Kith terms of a MentorshipOffer; shapes are checked, values are not."""

    topics: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    format: str | None = None
    capacity: int | None = None
    seats_taken: int | None = None
    availability: str | None = None
    status: str | None = None


class Post(msgspec.Struct, frozen=True, kw_only=True):
    """An Article, Page, Note or MentorshipOffer."""

    id: str
    type: PostType
    name: str | None = None
    summary: str | None = None
    content: str | None = None
    content_map: dict[str, str] = {}
    media_type: str = "text/html"
    source: Source | None = None
    url: str | None = None
    attributed_to: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    in_reply_to: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    tags: tuple[Tag, ...] = ()
    sensitive: bool = False
    published: datetime | None = None
    updated: datetime | None = None
    license: str | None = None
    slug: str | None = None
    revision: int | None = None
    derived_from: str | None = None
    mentorship: Mentorship | None = None
    embedded: dict[str, APObject] = {}

    @property
    def is_public(self) -> bool:
        return PUBLIC in self.to or PUBLIC in self.cc


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """A Person, Group, Application or Service."""

    id: str
    type: ActorType
    preferred_username: str | None = None
    name: str | None = None
    summary: str | None = None
    url: str | None = None
    icon: str | None = None
    inbox: str | None = None
    outbox: str | None = None
    followers: str | None = None
    following: str | None = None
    shared_inbox: str | None = None
    public_keys: tuple[PublicKey, ...] = ()
    manually_approves_followers: bool = False
    attributed_to: tuple[str, ...] = ()
    color: str | None = None
    links: tuple[Link, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None
    embedded: dict[str, APObject] = {}

    def public_key(self, key_id: str) -> PublicKey | None:
        return next((key for key in self.public_keys if key.id == key_id), None)


class Tombstone(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: Literal["Tombstone"] = "Tombstone"
    former_type: str | None = None
    deleted: datetime | None = None
    published: datetime | None = None
    updated: datetime | None = None


APObject: TypeAlias = Post | Actor | Tombstone


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: ActivityType
    actor: str
    object_id: str
    object: Activity | APObject | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None
    embedded: dict[str, APObject] = {}

    @property
    def is_public(self) -> bool:
        return PUBLIC in self.to or PUBLIC in self.cc


def parse_activity(data: bytes | str | Mapping[str, Any]) -> Activity:
    """Parse one of the activities Kith handles, or raise VocabError."""
    return _activity(_load(data), "")


def parse_object(data: bytes | str | Mapping[str, Any]) -> APObject:
    """Parse a post, actor or tombstone, or raise VocabError."""
    return _object(_load(data), "")


# --- Documents --------------------------------------------------------------------------


def _load(data: object) -> Mapping[str, Any]:
    if isinstance(data, bytes | bytearray | memoryview | str):
        try:
            data = msgspec.json.decode(data)
        except RecursionError:
            raise VocabError(f"the document is nested deeper than {MAX_DEPTH} levels") from None
        except (msgspec.DecodeError, ValueError) as exc:  # ValueError: str with lone surrogates
            raise VocabError(f"the document is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(data, Mapping):
        raise VocabError(f"the document must be a JSON object, not {_json_type(data)}")
    _check_depth(data)
    return data


def _check_depth(document: Mapping[str, Any]) -> None:
    # Iterative, so that neither deep nor self-referencing input can exhaust the stack.
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise VocabError(f"the document is nested deeper than {MAX_DEPTH} levels")
        children = value.values() if isinstance(value, Mapping) else cast(list[object], value)
        stack.extend((c, depth + 1) for c in children if isinstance(c, Mapping | list))


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
        to=_addressees(doc, "to", where),
        cc=_addressees(doc, "cc", where),
        audience=_refs(doc, "audience", where, embedded),
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


def _is_known_object(doc: Mapping[str, Any]) -> bool:
    return bool(set(_type_names(doc)) & OBJECT_TYPES)


# --- References -------------------------------------------------------------------------


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
    """An http(s) id of at most MAX_ID_LENGTH characters: what an inbox takes as an activity's id, pushed or pulled."""
    return isinstance(value, str) and len(value) <= MAX_ID_LENGTH and value.startswith(("http://", "https://"))


@lru_cache(maxsize=4096)  # the same few ids (actors, communities, the public collection) recur in every activity
def _is_http_url(value: str) -> bool:
    if _UNSAFE_URL_CHARS.search(value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    # Credentials in a URL only serve to make one host look like another.
    has_userinfo = parts.username is not None or parts.password is not None
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not has_userinfo


def _single(value: object, at: str) -> str | Mapping[str, Any] | None:
    if isinstance(value, list):
        if len(value) > 1:
            raise VocabError(f"{at} has {len(value)} values; only one is supported")
        value = value[0] if value else None
    if value is None or isinstance(value, str | Mapping):
        return value
    raise VocabError(f"{at} must be a URI or an object, not {_json_type(value)}")


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
