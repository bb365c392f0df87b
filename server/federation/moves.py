"""A peer's community moved to another instance: verify the move, then have each domain follow it (issue 13).

The move is learned from a `Move` (object: the old Group, target: the new one), pushed or pulled from the old
instance's outbox, or from the old Group itself when it says `movedTo`. Either way it is believed only when
the old instance says so for its own Group and the new home claims it: the activity's actor is the Group it
moves, on the host that signed; the target is a configured peer (or this instance); the old Group, fetched
from its host, says `movedTo` = target; the target Group, fetched from its host, names the old one in
`alsoKnownAs`. Anything else changes nothing and is logged with its reason. Otherwise, in the activity's one
transaction: the target Group is stored, the old copy marked moved, and the guides and offers re-pointed or
folded by their domains (server/guides/moves.py, server/mentorship/moves.py).

The documents were fetched before the transaction opened (processing.Documents): `ctx.fetch` serves them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from server.communities import remote_moves
from server.communities.service import CommunityService
from server.db import utcnow
from server.errors import ProblemError
from server.federation import mapping, vocab
from server.federation.fetch import FetchError
from server.guides import moves as guide_moves
from server.mentorship import moves as offer_moves
from server.models import Community, Job
from server.queues import PENDING
from server.settings import host_of

if TYPE_CHECKING:
    from server.federation.handlers import Context

log = logging.getLogger("kith.federation")


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def targets(activity: vocab.Activity) -> list[str]:
    """The documents verifying `activity` needs besides its own host's: the new Group a Move or a moved Group
    names. Fetched ahead, by the same fetcher, so only from configured peers."""
    if activity.type == "Move" and activity.target:
        return [activity.target]
    obj = activity.object
    if isinstance(obj, vocab.Actor) and obj.type == "Group" and obj.moved_to:
        return [obj.moved_to]
    return []


def moved_to(document: dict[str, Any]) -> str | None:
    """Where a fetched Group document says it moved, read without parsing it (Documents.gather)."""
    uri = document.get("movedTo", document.get("as:movedTo"))
    return uri if document.get("type") == "Group" and vocab.is_http_id(uri) else None


async def receive(ctx: Context, activity: vocab.Activity) -> str:
    """A Move from the old Group's instance; Refused says why it changes nothing."""
    if activity.actor != activity.object_id:
        raise _refused(activity.object_id, "the Move's actor is not the Group it moves")
    if host_of(activity.object_id) != ctx.signer_host:
        raise _refused(activity.object_id, f"the moved Group is not on the signer's host {ctx.signer_host}")
    if activity.target is None:
        raise _refused(activity.object_id, "the Move names no target")
    return await follow(ctx, activity.object_id, activity.target)


async def noticed(ctx: Context, group: vocab.Actor) -> str:
    """A Group of the signer that says it moved (`movedTo`), seen on a pull or a fetch: the same as its Move.
    A move that does not verify leaves the Group as stored, and is only logged."""
    assert group.moved_to is not None
    try:
        return await follow(ctx, group.id, group.moved_to, group)
    except Refused as exc:
        return f"community stored; its move was not followed: {exc.reason}"


async def follow(ctx: Context, old_uri: str, target: str, old_group: vocab.Actor | None = None) -> str:
    """Follow the move of `old_uri` to `target` once verified; `old_group` is the old Group's document when the
    signer sent it itself (its own Group, as good as fetching it)."""
    if target == old_uri:
        raise _refused(old_uri, "the Move's target is the Group it moves")
    old = await remote_moves.held(ctx.session, old_uri)
    if old is None:
        log.info("ignored the move of %s: not a community held here", old_uri)
        return "ignored move of a community not held here"
    if old.moved_to is not None and old.moved_to != target:
        raise _refused(old_uri, f"it moved to {old.moved_to} already")
    old_group = old_group or await _group(ctx, old_uri)
    if old_group.moved_to != target:
        raise _refused(old_uri, f"the Group does not say it moved to {target}")
    new = await _new_home(ctx, old_uri, target)
    first_time = old.moved_to is None
    remote_moves.follow(old, new, utcnow())
    waiting = await guide_moves.follow_move(ctx.session, ctx.settings, old, new)
    waiting += await offer_moves.follow_move(ctx.session, ctx.settings, old, new)
    if waiting and first_time and not new.local:
        await _ask_for_the_rest(ctx, host_of(target))
    log.info("followed the move of %s to %s (%d entries still to come)", old_uri, target, waiting)
    return f"followed move to {target}"


async def _new_home(ctx: Context, old_uri: str, target: str) -> Community:
    """The target's community, stored or refreshed from its document, when it claims the old Group."""
    if host_of(target) == ctx.settings.host:
        local = await remote_moves.local_claimant(ctx.session, target, old_uri)
        if local is None:
            raise _refused(old_uri, f"{target} is not a community of this instance that claims it")
        if local.moved_to is not None:
            raise _refused(old_uri, f"{target} has moved on itself")
        return local
    if host_of(target) not in ctx.settings.peer_hosts:
        raise _refused(old_uri, f"the target {target} is not on a configured peer")
    group = await _group(ctx, target)
    if old_uri not in group.also_known_as:
        raise _refused(old_uri, f"the target {target} does not list it in alsoKnownAs")
    if group.moved_to is not None:
        # A move onto a Group that moved on (or back: a loop) would leave both copies moved, taking nothing.
        raise _refused(old_uri, f"the target {target} has moved on itself, to {group.moved_to}")
    try:
        await CommunityService(ctx.session, ctx.settings).apply_remote(mapping.remote_community(group, host_of(target)))
    except ProblemError as exc:
        raise _refused(old_uri, f"the target cannot be kept here: {exc.detail}") from exc
    new = await remote_moves.by_uri(ctx.session, target)
    if new is None:
        raise _refused(old_uri, f"the target {target} was deleted here")
    return new


async def _group(ctx: Context, uri: str) -> vocab.Actor:
    """The Group at `uri` as its own host serves it now: what the sender embeds is not evidence. A fetch that
    failed (FetchError) fails the activity for a later try: a peer down for a moment must not cost a move; one
    that answered the Group is gone refuses it."""
    if ctx.fetch is None:
        raise _refused(uri, f"{uri} was not fetched")
    try:
        document = vocab.parse_object(await ctx.fetch(uri))
    except vocab.VocabError as exc:
        raise _refused(uri, f"{uri} could not be read: {exc.reason}") from exc
    except FetchError as exc:
        if exc.status in (404, 410):
            raise _refused(uri, f"{uri} is gone ({exc.status})") from exc
        raise
    if not isinstance(document, vocab.Actor) or document.type != "Group" or document.id != uri:
        raise _refused(uri, f"{uri} is not a Group")
    return document


async def _ask_for_the_rest(ctx: Context, host: str) -> None:
    """The new home's copies not received yet are in its outbox: a full backfill brings them, and each folds
    into our row of its former uri as it is applied."""
    queued = await ctx.session.scalars(select(Job).where(Job.kind == "backfill", Job.state == PENDING))
    if not any(job.payload.get("host") == host and job.payload.get("full", True) for job in queued):
        ctx.session.add(Job(kind="backfill", payload={"host": host, "full": True}))


def _refused(uri: str, reason: str) -> Refused:
    log.warning("refused the move of %s: %s", uri, reason)
    return Refused(reason)
