from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from server.accounts.schemas import PersonRef, RemotePerson
from server.communities.schemas import CommunityRef, HttpUrl

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Markdown = Annotated[str, msgspec.Meta(max_length=200_000)]
Summary = Annotated[str, msgspec.Meta(max_length=500)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=20)]
License = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,63}$")]
Status = Literal["draft", "published"]


class GuideCreate(msgspec.Struct):
    """With `derived_from` (the uri of a guide known here), an adaptation: what is left out is copied from it,
    and it starts as a draft. Without, `title` and `body_markdown` are required."""

    title: Title | None = None
    body_markdown: Markdown | None = None
    summary: Summary | None = None
    tags: Tags | None = None
    license: License | None = None  # "CC-BY-4.0", or the original's when it is share-alike
    status: Status | None = None  # "published", or "draft" for an adaptation
    derived_from: HttpUrl | None = None


class GuideUpdate(msgspec.Struct):
    title: Title | msgspec.UnsetType = msgspec.UNSET
    body_markdown: Markdown | msgspec.UnsetType = msgspec.UNSET
    summary: Summary | msgspec.UnsetType = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    license: License | msgspec.UnsetType = msgspec.UNSET
    status: Status | msgspec.UnsetType = msgspec.UNSET
    summary_of_change: Annotated[str, msgspec.Meta(max_length=300)] = ""
    # An adaptation's save that takes the upstream up to this revision (after resolving a merge's conflicts).
    upstream_revision: Annotated[int, msgspec.Meta(ge=1)] | msgspec.UnsetType = msgspec.UNSET


class Origin(msgspec.Struct):
    instance: str
    uri: str
    url: str
    former_peer: bool = False


class Upstream(msgspec.Struct):
    """The guide an adaptation adapts, with the attribution its license asks for. `base_revision` is the upstream
    revision it was last based on (null for a peer's adaptation, whose base its own instance keeps); `changed`
    says the upstream has a newer revision that was neither taken nor dismissed."""

    uri: str
    base_revision: int | None
    current_revision: int | None
    changed: bool
    deleted: bool
    title: str
    url: str
    community: str
    community_url: str
    instance: str
    author: str
    author_url: str
    license: str


class Adaptation(msgspec.Struct):
    uri: str
    url: str
    title: str
    community: CommunityRef
    instance: str


class UpstreamChange(msgspec.Struct):
    """What changed upstream since the adaptation's base: a unified diff of the text, and the three-way merge of
    that change into the adaptation's own text (`conflicts` blocks in `merged_markdown` to resolve by hand)."""

    uri: str
    base_revision: int
    current_revision: int | None
    changed: bool
    deleted: bool
    diff: str
    merged_title: str
    merged_markdown: str
    conflicts: int


class Guide(msgspec.Struct):
    id: UUID
    uri: str
    url: str
    slug: str
    title: str
    summary: str
    body_markdown: str
    body_html: str
    tags: list[str]
    license: str
    status: Status
    revision: int
    author: PersonRef
    community: CommunityRef
    local: bool
    origin: Origin
    derived_from: str | None
    created_at: datetime
    updated_at: datetime
    # The uri it had before its community moved here.
    moved_from: str | None = None
    upstream: Upstream | None = None
    adaptations: list[Adaptation] = msgspec.field(default_factory=list)


class GuidePage(msgspec.Struct):
    items: list[Guide]
    next_cursor: str | None


class Revision(msgspec.Struct):
    number: int
    title: str
    created_at: datetime
    author: PersonRef
    summary_of_change: str


class RevisionDetail(msgspec.Struct):
    number: int
    title: str
    summary: str
    body_markdown: str
    body_html: str
    tags: list[str]
    license: str
    status: Status
    created_at: datetime
    author: PersonRef
    summary_of_change: str


class RevisionDiff(msgspec.Struct):
    """Revision `from` against revision `to` of a guide's body, as a unified diff (empty when it did not change)."""

    from_: int = msgspec.field(name="from")
    to: int
    diff: str


class RemoteGuide(msgspec.Struct, frozen=True):
    """A guide of another instance, as its origin describes it; `GuideService.apply_remote` keeps our copy."""

    uri: str
    instance: str
    url: str
    # Where it is published, most specific first: the first that names a known community of `instance` wins.
    community_uris: list[str]
    # Those of community_uris that are its audience (FEP-1b12): an unknown one is fetched, not passed over.
    audience: list[str]
    author: RemotePerson
    title: str
    summary: str
    body_markdown: str
    body_html: str
    tags: list[str]
    license: str
    slug_hint: str | None = None
    revision: int | None = None
    derived_from: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    # The uri it had before its community moved to `instance` (`formerUri`): our copy under that uri is this guide.
    former_uri: str | None = None


class ImportedRevision(msgspec.Struct, frozen=True):
    """A revision of a guide from a community archive, its author already an account here."""

    number: int
    title: str
    summary: str
    body_markdown: str
    tags: list[str]
    license: str
    status: str
    author_id: UUID
    summary_of_change: str
    created_at: datetime


class ImportedGuide(msgspec.Struct, frozen=True):
    """A guide from a community archive with its whole history; its text is that of its latest revision."""

    slug: str
    title: str
    summary: str
    tags: list[str]
    license: str
    status: str
    derived_from: str | None
    author_id: UUID
    created_at: datetime
    updated_at: datetime
    revisions: list[ImportedRevision]
    # Its uri on the instance it was exported from (origin.json).
    former_uri: str | None = None
