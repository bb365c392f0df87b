"""The community archive format (docs/export-format.md): its files, their JSON documents, and its limits.

The JSON documents are msgspec Structs: the exporter encodes them, the importer decodes them strictly, and the
JSON Schemas in docs/export-schemas/ are generated from them (`python -m server.archive.format DIR`).
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

FORMAT = "kith-community-archive"
FORMAT_VERSION = 1

# Checked from each tar header before its data is read: no file of an honest archive comes near these.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 8 * 1024 * 1024 * 1024
MAX_MEMBERS = 2_000_000

COMMUNITY = "community.json"
MEMBERS = "members.json"
MANIFEST = "manifest.json"

_SEGMENT = r"[a-z0-9][a-z0-9-]{0,119}"
# Every path an archive may hold; anything else is refused.
GUIDE_FILE = re.compile(rf"^guides/(?P<key>{_SEGMENT})/(?P<name>guide\.json|origin\.json)$")
REVISION_FILE = re.compile(rf"^guides/(?P<key>{_SEGMENT})/revisions/(?P<number>[1-9][0-9]{{0,8}})\.(?P<ext>md|json)$")
OFFER_FILE = re.compile(r"^offers/(?P<key>[0-9]{1,9})/(?P<name>offer\.json|origin\.json)$")

Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Uri = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]+$", max_length=2048)]
Text = Annotated[str, msgspec.Meta(max_length=200_000)]


class Person(msgspec.Struct, forbid_unknown_fields=True):
    """Someone who wrote, mentors or belongs: `local` is whether their account was on the exporting instance."""

    uri: Uri
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    display_name: Annotated[str, msgspec.Meta(max_length=100)]
    instance: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    local: bool


class Link(msgspec.Struct, forbid_unknown_fields=True):
    title: str
    url: str


class CommunityDoc(msgspec.Struct, forbid_unknown_fields=True):
    """community.json: the community's identity on the exporting instance."""

    slug: str
    name: str
    description: str
    color: str
    links: list[Link]
    uri: Uri
    url: Uri
    instance: str
    created_at: datetime
    updated_at: datetime


class Member(msgspec.Struct, forbid_unknown_fields=True):
    person: Person
    role: Literal["member", "moderator"]
    joined_at: datetime


class MembersDoc(msgspec.Struct, forbid_unknown_fields=True):
    """members.json: everyone in the community, with their role."""

    members: list[Member]


class GuideDoc(msgspec.Struct, forbid_unknown_fields=True):
    """guides/KEY/guide.json: a guide's current state; its text is that of its latest revision."""

    slug: str
    title: str
    summary: str
    tags: list[str]
    license: str
    status: Literal["draft", "published"]
    revision: Annotated[int, msgspec.Meta(ge=1)]
    derived_from: Uri | None
    author: Person
    created_at: datetime
    updated_at: datetime


class RevisionDoc(msgspec.Struct, forbid_unknown_fields=True):
    """guides/KEY/revisions/N.json: one revision; its markdown is N.md beside it."""

    number: Annotated[int, msgspec.Meta(ge=1)]
    title: str
    summary: str
    tags: list[str]
    license: str
    status: Literal["draft", "published"]
    author: Person
    summary_of_change: str
    created_at: datetime


class OriginDoc(msgspec.Struct, forbid_unknown_fields=True):
    """guides/KEY/origin.json, offers/N/origin.json: where the entry lived on the exporting instance. It is
    the only file of an entry that names its instance, so the same content exported anywhere is the same file."""

    uri: Uri
    url: Uri


class OfferDoc(msgspec.Struct, forbid_unknown_fields=True):
    """offers/N/offer.json: a mentorship offer. Requests are private to their people and stay behind."""

    title: str
    description_markdown: Text
    topics: list[str]
    format: Literal["one_to_one", "group"]
    capacity: Annotated[int, msgspec.Meta(ge=1)]
    languages: list[str]
    availability: str
    status: Literal["open", "closed"]
    mentor: Person
    created_at: datetime
    updated_at: datetime


class Source(msgspec.Struct, forbid_unknown_fields=True):
    instance: str
    base_url: Uri
    software: str
    version: str


class FileEntry(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    sha256: Sha256
    size: Annotated[int, msgspec.Meta(ge=0)]


class Counts(msgspec.Struct, forbid_unknown_fields=True):
    guides: int
    revisions: int
    offers: int
    members: int


class Manifest(msgspec.Struct, forbid_unknown_fields=True):
    """manifest.json: written last; names every other file of the archive with its SHA-256."""

    format: Literal["kith-community-archive"]
    format_version: int
    archive_id: UUID
    created_at: datetime
    source: Source
    community_uri: Uri
    counts: Counts
    files: list[FileEntry]


class VersionOnly(msgspec.Struct):
    """What any version of the manifest says, read before the rest so an unknown version is named as such."""

    format: Any = None
    format_version: Any = None


# The schema file of each JSON document, in docs/export-schemas/.
SCHEMAS: dict[str, type[msgspec.Struct]] = {
    "community.schema.json": CommunityDoc,
    "members.schema.json": MembersDoc,
    "guide.schema.json": GuideDoc,
    "revision.schema.json": RevisionDoc,
    "origin.schema.json": OriginDoc,
    "offer.schema.json": OfferDoc,
    "manifest.schema.json": Manifest,
}


def schema_of(doc: type[msgspec.Struct]) -> dict[str, Any]:
    schema = msgspec.json.schema(doc)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_for_path(path: str) -> str:
    """The schema file that describes the JSON file at `path` of an archive."""
    if path in (COMMUNITY, MEMBERS, MANIFEST):
        return path.replace(".json", ".schema.json")
    if path.endswith("/origin.json"):
        return "origin.schema.json"
    if path.endswith("/guide.json"):
        return "guide.schema.json"
    if path.endswith("/offer.json"):
        return "offer.schema.json"
    return "revision.schema.json"


def encode(doc: msgspec.Struct) -> bytes:
    return msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n"


def write_schemas(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, doc in SCHEMAS.items():
        text = msgspec.json.format(msgspec.json.encode(schema_of(doc)), indent=2) + b"\n"
        (directory / name).write_bytes(text)


if __name__ == "__main__":
    write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/export-schemas"))
