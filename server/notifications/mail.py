"""The mail of a notification: queued as a job with the notification, sent by the worker, never in a request."""

from __future__ import annotations

import logging
import uuid
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.service import person_ref
from server.jobs import claim
from server.models import Job, MentorshipRequest
from server.notifications.service import MAIL_JOB, NotificationService, describe, subject_path
from server.queues import JOBS, fail, move
from server.settings import Settings

log = logging.getLogger("kith.mail")
SEND_TIMEOUT_SECONDS = 20
# A message quoted in its mail: enough to answer from, not a copy of a long thread.
QUOTE_CHARS = 2000


def _one_line(text: str) -> str:
    # A header cannot carry a line break, and a title or a name must not be able to add headers.
    return " ".join(text.split())


async def compose(session: AsyncSession, settings: Settings, payload: dict[str, Any]) -> EmailMessage | None:
    """The mail for a queued notification, or None when there is nothing to send any more: the notification went
    with its request, or its person has no confirmed address now."""
    try:
        notification_id = uuid.UUID(str(payload.get("notification_id")))
    except ValueError:
        return None
    found = await NotificationService(session, settings).recipient(notification_id)
    if found is None:
        return None
    notification, user = found
    if not user.local or not user.email or user.email_confirmed_at is None:
        return None
    request: MentorshipRequest = notification.request  # type: ignore[assignment]
    actor = person_ref(notification.actor).display_name if notification.actor is not None else None
    text = describe(notification.kind, actor, request.offer.title, request.reason)
    parts = [f"Hello {user.display_name or user.username},", text]
    if notification.message is not None:
        quoted = notification.message.body_markdown[:QUOTE_CHARS]
        parts.append("\n".join(f"> {line}" for line in quoted.splitlines()))
    parts += [
        f"Open the request: {settings.base_url}{subject_path(request.id)}",
        f"All your notifications: {settings.base_url}/notifications",
        f"-- \n{settings.instance_name} ({settings.base_url})",
    ]
    message = EmailMessage()
    message["From"] = settings.mail_from or f"noreply@{settings.host.split(':')[0]}"
    message["To"] = user.email
    message["Subject"] = _one_line(text)
    message.set_content("\n\n".join(parts) + "\n")
    return message


class MailJobs:
    """Worker step: sends the mail jobs that are due. A mail server that refuses or is down leaves the job to be
    tried again later (server/queues.py's backoff, given up after three days), logged for the operator."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions

    async def __call__(self) -> int:
        # No mail server, no mail jobs are queued: an instance without one pays nothing for this step.
        if not self.settings.smtp_host:
            return 0
        done = 0
        async with self.sessions() as session:
            for job_id in await claim(session, Job, kind=MAIL_JOB, limit=20):
                await self._run(session, job_id)
                done += 1
        return done

    async def _run(self, session: AsyncSession, job_id: uuid.UUID) -> None:
        job = await session.get(Job, job_id)
        assert job is not None  # leased to this worker by claim
        message = await compose(session, self.settings, job.payload)
        # No transaction stays open while the mail server takes its time.
        await session.commit()
        error = None
        if message is not None:
            try:
                await aiosmtplib.send(
                    message, hostname=self.settings.smtp_host, port=self.settings.smtp_port,
                    timeout=SEND_TIMEOUT_SECONDS,
                )  # fmt: skip
            except (aiosmtplib.SMTPException, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("could not send the mail of job %s: %s", job_id, error)
        if error is None:
            move(job, JOBS["finished"], note=None if message is not None else "nothing to send any more")
        else:
            fail(JOBS, job, error)
        await session.commit()
