"""The ActivityStreams 2.0 vocabulary Kith accepts, parsed from untrusted JSON.

`parse_activity` and `parse_object` turn what a remote server sent into typed, normalized
structs, or raise `VocabError` with a reason a person can act on, and nothing else, whatever
the input. References (`actor`, `attributedTo`, `audience`, `object`, ...) may arrive as a
URI, an embedded object or a list of either; they are normalized to ids, and embedded
objects of a type we know are parsed and kept in `embedded` (or `Activity.object`).

The names below are the vocabulary's whole surface; what the modules keep behind a leading
underscore is shared between them only.
"""

from server.federation.vocab.activities import parse_activity
from server.federation.vocab.documents import load_document
from server.federation.vocab.objects import parse_object
from server.federation.vocab.types import (
    ACTIVITY_TYPES,
    ACTOR_TYPES,
    KITH_TERMS,
    MAX_DEPTH,
    MAX_ID_LENGTH,
    OBJECT_TYPES,
    POST_TYPES,
    PUBLIC,
    Activity,
    ActivityType,
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
from server.federation.vocab.uris import is_http_id

__all__ = [
    "ACTIVITY_TYPES",
    "ACTOR_TYPES",
    "KITH_TERMS",
    "MAX_DEPTH",
    "MAX_ID_LENGTH",
    "OBJECT_TYPES",
    "POST_TYPES",
    "PUBLIC",
    "APObject",
    "Activity",
    "ActivityType",
    "Actor",
    "ActorType",
    "Link",
    "Mentorship",
    "Post",
    "PostType",
    "PublicKey",
    "Source",
    "Tag",
    "Tombstone",
    "VocabError",
    "is_http_id",
    "load_document",
    "parse_activity",
    "parse_object",
]
