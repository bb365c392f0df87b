"""What happened to a mentorship request, told to whoever listens, in the writer's transaction.

The request service records each step of a request (asked, answered, withdrawn, a message) here, for local and
remote writes alike, and knows nothing of who listens: federation sends the activity the other party's instance
needs (server/federation/private.py), notifications tell the local people concerned (server/notifications/).
Each listener decides from the request's locality what is its business, as the outbox does for entries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import MentorshipMessage, MentorshipRequest, User
from server.settings import Settings

# asked: a request was made (here, or it arrived from the requester's instance); received: the offer's instance
# has it (the requester's side moves from sending to pending); accepted / declined: the mentor's answer;
# refused: the offer's rules turned it away (full, closed, a duplicate, gone); withdrawn: the requester took it
# back; failed: it could not be delivered; message: a new message in its thread.
Step = Literal["asked", "received", "accepted", "declined", "refused", "withdrawn", "failed", "message"]


@dataclass(frozen=True, slots=True)
class RequestEvent:
    step: Step
    request: MentorshipRequest
    # The person who did it: the requester, the mentor, a message's author; None when no one did (failed).
    by: User | None
    message: MentorshipMessage | None = None


Listener = Callable[[AsyncSession, Settings, RequestEvent], Awaitable[None]]
_listeners: list[Listener] = []


def listen(listener: Listener) -> None:
    """Hear every request event from now on; listening twice is the same as once."""
    if listener not in _listeners:
        _listeners.append(listener)


async def record(session: AsyncSession, settings: Settings, event: RequestEvent) -> None:
    if not _listeners:
        # A step nobody hears would never reach the other party's instance, nor tell anyone.
        raise RuntimeError("no listener for request events: wire federation in before writing requests")
    for listener in _listeners:
        await listener(session, settings, event)
