"""Notifications: the only code that writes them. They are written when a request event concerns a local person,
and read and marked read by that person alone."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import raiseload

from server.accounts.security import Principal
from server.accounts.service import person_ref
from server.db import fetch_all, new_id, utcnow
from server.errors import forbidden, invalid, not_found
from server.mentorship.events import RequestEvent
from server.models import Job, MentorshipRequest, Notification, User
from server.notifications import schemas
from server.pagination import keyset, split_page
from server.settings import Settings

MAIL_JOB = "mail"

# Who a step concerns (the mentor or the requester) and the kind it is told as. `received` concerns nobody: the
# requester already knows they asked, and their copy moving from sending to pending is not news.
_STEPS: dict[str, tuple[str, ...]] = {
    "asked": ("mentor",),
    "withdrawn": ("mentor",),
    "accepted": ("requester",),
    "declined": ("requester",),
    "refused": ("requester",),
    "failed": ("requester",),
    "message": ("mentor", "requester"),
}
_KINDS = {"asked": "request"}

# The header shows at most this many less one, then "99+": the count stays a short walk of the index however
# many notifications someone leaves unread.
HEADER_CAP = 100
_HEADER_COUNT = select(func.count()).select_from(
    select(Notification.id)
    .where(Notification.user_id == bindparam("user_id"), Notification.read_at.is_(None))
    .limit(HEADER_CAP)
    .subquery()
)


def subject_path(request_id: UUID) -> str:
    return f"/mentorship/requests/{request_id}"


def describe(kind: str, actor: str | None, offer_title: str, reason: str = "") -> str:
    """What happened, in a sentence: for the notifications page and the mail."""
    offer = f"“{offer_title}”"
    if kind == "request":
        return f"{actor or 'Someone'} asked for a seat on {offer}."
    if kind == "withdrawn":
        return f"{actor or 'Someone'} withdrew their request for {offer}."
    if kind == "message":
        return f"{actor or 'Someone'} sent a message about {offer}."
    if kind in ("accepted", "declined"):
        return f"{actor} {kind} your request for {offer}." if actor else f"Your request for {offer} was {kind}."
    if kind == "refused":
        return f"Your request for {offer} was refused" + (f": {reason}" if reason else ".")
    return f"Your request for {offer} could not be delivered to its instance."


async def on_request_event(session: AsyncSession, settings: Settings, event: RequestEvent) -> None:
    """Tell the local people a request event concerns, in the writer's transaction (it commits, not this).

    The person who did it is never told; remote people are told by their own instance. Each notification of a
    person with a confirmed address also queues its mail, which the worker sends: a mail server that is slow or
    down never holds up or undoes the write.
    """
    request = event.request
    parties = {"mentor": request.offer.mentor, "requester": request.requester}
    excluded = {event.by.id} if event.by is not None else set()
    if event.message is not None:
        excluded.add(event.message.author_id)
    told: set[UUID] = set()
    for role in _STEPS.get(event.step, ()):
        person = parties[role]
        if not person.local or person.id in excluded or person.id in told:
            continue
        told.add(person.id)
        notification = Notification(
            id=new_id(), user_id=person.id, kind=_KINDS.get(event.step, event.step), request=request,
            message=event.message, actor_id=event.by.id if event.by is not None else None, created_at=utcnow(),
        )  # fmt: skip
        session.add(notification)
        if settings.smtp_host and person.email and person.email_confirmed_at is not None:
            session.add(Job(kind=MAIL_JOB, payload={"notification_id": str(notification.id)}))


async def header_count(engine: AsyncEngine, user_id: UUID) -> int:
    """Unread notifications for the page header, up to HEADER_CAP: one read through the inbox index, no session."""
    rows = await fetch_all(engine, _HEADER_COUNT, {"user_id": user_id}, quick=True)
    return int(rows[0][0])


def to_schema(notification: Notification, settings: Settings) -> schemas.Notification:
    # request_id is set on every notification, and the row goes when its request does (ON DELETE CASCADE).
    request_id: UUID = notification.request_id  # type: ignore[assignment]
    return schemas.Notification(
        id=notification.id, kind=notification.kind,  # type: ignore[arg-type]
        subject=schemas.Subject(
            type="mentorship_request", id=request_id, url=f"{settings.base_url}{subject_path(request_id)}"
        ),
        actor=person_ref(notification.actor) if notification.actor is not None else None,
        created_at=notification.created_at, read=notification.read_at is not None,
    )  # fmt: skip


class NotificationService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    async def list(
        self, principal: Principal, *, unread: bool = False, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[schemas.Notification], str | None]:
        """Mine, newest first; `unread` keeps only those not read yet."""
        rows, next_cursor = await self._page(principal, unread, limit, cursor, with_request=False)
        return [to_schema(row, self.settings) for row in rows], next_cursor

    async def entries(
        self, principal: Principal, *, unread: bool = False, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[schemas.Entry], str | None]:
        """The same page with each notification said in words, for the web."""
        rows, next_cursor = await self._page(principal, unread, limit, cursor, with_request=True)
        return [self._entry(row) for row in rows], next_cursor

    def _entry(self, row: Notification) -> schemas.Entry:
        request: MentorshipRequest = row.request  # type: ignore[assignment]
        item = to_schema(row, self.settings)
        actor = item.actor.display_name if item.actor is not None else None
        text = describe(row.kind, actor, request.offer.title, request.reason)
        return schemas.Entry(item=item, text=text, offer_title=request.offer.title)

    async def _page(
        self, principal: Principal, unread: bool, limit: int, cursor: str | None, *, with_request: bool
    ) -> tuple[list[Notification], str | None]:
        query = select(Notification).where(Notification.user_id == principal.user_id)
        if unread:
            query = query.where(Notification.read_at.is_(None))
        # The API names the request by its id alone; the page needs its offer's title.
        query = query.options(raiseload(Notification.message))
        if not with_request:
            query = query.options(raiseload(Notification.request))
        rows = list((await self.session.scalars(keyset(query, Notification, limit, cursor))).unique())
        return split_page(rows, limit)

    async def unread_count(self, principal: Principal) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == principal.user_id, Notification.read_at.is_(None))
        )
        return int(count or 0)

    async def mark_read(self, principal: Principal, data: schemas.MarkRead) -> int:
        """Mark the given notifications of mine read (anyone else's ids are left alone), or all of them; returns
        how many stay unread."""
        if not principal.can_write:
            raise forbidden("This token has the read scope; marking read needs a write or admin token.")
        if data.all == (data.ids is not None):
            raise invalid("ids", "give either ids or all: true")
        mine = (Notification.user_id == principal.user_id, Notification.read_at.is_(None))
        statement = update(Notification).where(*mine)
        if data.ids is not None:
            statement = statement.where(Notification.id.in_(data.ids))
        await self.session.execute(statement.values(read_at=utcnow()).execution_options(synchronize_session=False))
        await self.session.commit()
        return await self.unread_count(principal)

    async def open(self, principal: Principal, notification_id: UUID) -> str:
        """Mark one of mine read as it is opened; returns the path of the page it is about."""
        notification = await self.session.scalar(
            select(Notification)
            .where(Notification.id == notification_id, Notification.user_id == principal.user_id)
            .options(raiseload(Notification.request), raiseload(Notification.message), raiseload(Notification.actor))
        )
        if notification is None or notification.request_id is None:
            raise not_found("Notification")
        path = subject_path(notification.request_id)
        if notification.read_at is None and principal.can_write:
            notification.read_at = utcnow()
            await self.session.commit()
        return path

    async def recipient(self, notification_id: UUID) -> tuple[Notification, User] | None:
        """A notification and the person it is for, for its mail; None once it is gone with its request."""
        notification = await self.session.get(Notification, notification_id)
        if notification is None or notification.request is None:
            return None
        user = await self.session.get(User, notification.user_id)
        return (notification, user) if user is not None else None
