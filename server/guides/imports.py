"""A guide arriving with a community archive: written as a local guide of this instance, history and all.

It passes the same checks as a guide written through the API (the request schema's limits, then the rules);
its HTML is rendered here from its markdown. It gets this instance's id, URI and URL, keeps its slug, dates,
revision numbers, authors and change summaries, and is recorded as a local creation: peers hear of it and
search indexes it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from server import changes
from server.db import new_id
from server.errors import invalid
from server.guides import rules, schemas
from server.markdown import render
from server.models import Community, Guide, GuideRevision, User
from server.refs import key_of
from server.rules import clean_text, normalize_labels
from server.settings import Settings

MAX_SUMMARY_OF_CHANGE = 300
# Guides written per flush.
BATCH = 200
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,119}$")


class ImportedGuides:
    """The guides of one imported community, in the caller's transaction, written and announced a batch at a time
    (a revision names its guide by id alone, so its row goes in once its guide's is there): call `flush` last."""

    def __init__(self, session: AsyncSession, settings: Settings, community: Community) -> None:
        self.session = session
        self.settings = settings
        self.community = community
        self._revisions: list[GuideRevision] = []
        self._changes: list[changes.Change] = []

    async def add(self, imported: schemas.ImportedGuide) -> None:
        if not _SLUG.match(imported.slug):
            raise invalid("slug", "must be 1-120 lowercase letters, digits and '-'")
        author = await self.session.get(User, imported.author_id)
        if author is None:
            raise invalid("author", "is not a person known here")
        numbers = [revision.number for revision in imported.revisions]
        if not numbers or numbers != list(range(1, len(numbers) + 1)):
            raise invalid("revisions", "must be numbered 1, 2, 3 ... without a gap")
        fields = _fields(
            imported.title, imported.revisions[-1].body_markdown, imported.summary, imported.tags, imported.license,
            imported.status,
        )  # fmt: skip
        body_html = render(fields["body_markdown"])
        rules.body(fields["body_markdown"], body_html)
        guide_id = new_id()
        base_url = self.settings.base_url
        guide = Guide(
            id=guide_id, uri=f"{base_url}/guides/{guide_id}",
            url=f"{base_url}/c/{self.community.slug}/guides/{imported.slug}", community=self.community,
            author=author, slug=imported.slug, body_html=body_html, tags_key=key_of(fields["tags"]),
            revision=len(numbers), local=True, instance=self.settings.host,
            derived_from=_derived_from(imported.derived_from), former_uri=imported.former_uri,
            created_at=imported.created_at,
            updated_at=imported.updated_at, **fields,
        )  # fmt: skip
        for revision in imported.revisions:
            values = _fields(
                revision.title, revision.body_markdown, revision.summary, revision.tags, revision.license,
                revision.status,
            )  # fmt: skip
            rules.body(values["body_markdown"], "")
            summary_of_change = clean_text("summary_of_change", revision.summary_of_change, MAX_SUMMARY_OF_CHANGE)
            self._revisions.append(
                GuideRevision(
                    guide_id=guide_id,
                    number=revision.number,
                    author_id=revision.author_id,
                    summary_of_change=summary_of_change,
                    created_at=revision.created_at,
                    **values,
                )  # fmt: skip
            )
        self.session.add(guide)
        self._changes.append(changes.Change.of("Create", guide, public=rules.is_public(guide.status)))
        if len(self._changes) >= BATCH:
            await self.flush()

    async def flush(self) -> None:
        """Write what was added, and record each guide's creation."""
        await self.session.flush()
        self.session.add_all(self._revisions)
        await changes.record_all(self.session, self.settings, self._changes)
        self._revisions, self._changes = [], []


def _derived_from(value: str | None) -> str | None:
    try:
        return msgspec.convert({"derived_from": value}, schemas.GuideCreate).derived_from
    except msgspec.ValidationError as exc:
        raise invalid("derived_from", "must be an http(s) URI") from exc


def _fields(title: str, body: str, summary: str, tags: list[str], license: str, status: str) -> dict[str, Any]:
    """A guide's or revision's columns: the limits of the API's request body, then the rules of a local write."""
    try:
        data = msgspec.convert(
            {"title": title, "body_markdown": body, "summary": summary, "tags": tags, "license": license,
             "status": status},
            schemas.GuideCreate,
        )  # fmt: skip
    except msgspec.ValidationError as exc:
        raise invalid("guide", str(exc)) from exc
    assert data.title is not None and data.body_markdown is not None and data.status is not None
    return {
        "title": rules.title(data.title),
        "summary": rules.summary(data.summary or ""),
        "body_markdown": data.body_markdown,
        "tags": normalize_labels("tags", data.tags or []),
        "license": rules.license_(data.license or rules.DEFAULT_LICENSE),
        "status": data.status,
    }
