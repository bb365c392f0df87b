"""The queues' state machines: each queue's states and the transitions between them, declared in one place.

A queue row (a delivery, an inbox item, a job) is `pending` until it reaches a final state; while pending it
carries its attempts, when it is next due, and the lease of the worker holding it. Code moves a row through a
named transition (`move`), which checks the row is in a state the transition leaves from, sets the new state,
stamps the time, and lets go of the lease; nothing assigns a state string by hand. Takahē's stator has the
same shape: a graph per model, one handler per state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from server.db import utcnow

PENDING = "pending"

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=6)
GIVE_UP_AFTER = timedelta(days=3)


@dataclass(frozen=True)
class Transition:
    name: str
    source: frozenset[str]
    target: str
    # The column that records when the row got there, if any.
    stamp: str | None = None


@dataclass(frozen=True)
class Queue:
    """A queue's graph: every row starts pending; `retry` keeps it pending and due later, `give_up` ends it."""

    name: str
    transitions: dict[str, Transition]

    @property
    def states(self) -> frozenset[str]:
        return frozenset({PENDING}).union(*(t.source | {t.target} for t in self.transitions.values()))

    def __getitem__(self, name: str) -> Transition:
        return self.transitions[name]


def _queue(name: str, *done: Transition) -> Queue:
    common = (
        Transition("retry", frozenset({PENDING}), PENDING),
        Transition("give_up", frozenset({PENDING}), "failed"),
    )
    return Queue(name, {t.name: t for t in (*done, *common)})


# A delivery is sent once, or given up (a permanent refusal, or three days of failures).
DELIVERIES = _queue("deliveries", Transition("sent", frozenset({PENDING}), "sent", stamp="sent_at"))
# An incoming activity is applied (its outcome recorded), or rejected for good with the reason.
INBOX = _queue(
    "inbox_items",
    Transition("applied", frozenset({PENDING}), "done", stamp="processed_at"),
    Transition("rejected", frozenset({PENDING}), "rejected", stamp="processed_at"),
)
# Peer syncs and backfills finish, or are retried until they are given up. Index jobs end by being deleted with
# the index commit that took them in; only their retries pass through here.
JOBS = _queue("jobs", Transition("finished", frozenset({PENDING}), "done", stamp="finished_at"))


def move(row: Any, transition: Transition, *, note: str | None = None) -> None:
    """Move `row` through `transition`; `note` (an outcome, an error) goes in its last_error column."""
    if row.state not in transition.source:
        raise ValueError(f"{transition.name}: a row in state {row.state!r} cannot take it")
    row.state = transition.target
    row.locked_until = None
    if transition.stamp is not None:
        setattr(row, transition.stamp, utcnow())
    if note is not None:
        row.last_error = note[:2000]


def retry_delay(attempts: int) -> timedelta:
    """30 s doubling per attempt up to 6 h, with ±20 % jitter so retries from many rows spread out."""
    base = min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), MAX_RETRY)
    return base * random.uniform(0.8, 1.2)


def fail(queue: Queue, row: Any, error: str, *, permanent: bool = False) -> None:
    """A failed attempt: due again later, or given up when it is permanent or the row is too old."""
    now = utcnow()
    row.attempts += 1
    created = getattr(row, "created_at", None) or getattr(row, "received_at", None) or now
    if permanent or now - created > GIVE_UP_AFTER:
        move(row, queue["give_up"], note=error)
    else:
        move(row, queue["retry"], note=error)
        row.next_attempt_at = now + retry_delay(row.attempts)
