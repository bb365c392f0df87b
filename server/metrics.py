"""What operators scrape at GET /metrics: Prometheus text, for admin tokens only.

Two kinds of numbers. Request and search latencies are recorded by this process as they happen (histograms);
queue depths and ages and each peer's failing deliveries are read from the database at scrape time, so they are
right whichever process (a web process, `kith worker` on another machine) did the work.

Several web processes (`kith serve --workers N`) share their recorded numbers through prometheus-client's
multiprocess mode: each process writes its values to files in one directory and a scrape, answered by any of
them, adds them up. prometheus-client picks the mode when it is first imported, from PROMETHEUS_MULTIPROC_DIR,
so the parent sets it (`share_across_processes`) before it starts the processes that import this module.

Labels stay bounded: a route is its template (`/api/v1/communities/{slug}`), never the path asked for; a
status is its class (`2xx`); a peer is one the operator configured or one that still has deliveries queued.
Requests that match no route never reach the middleware, so made-up paths add nothing.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from litestar import Request, Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Select, bindparam, case, func, select

from server.accounts.deps import require
from server.accounts.security import Principal
from server.db import fetch_all, utcnow
from server.errors import ProblemError
from server.models import Delivery, InboxItem, Job
from server.queues import DELIVERIES, PENDING

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The text format generate_latest writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Decided once, as prometheus-client decides it (on import): a directory set later would hold nothing.
_SHARED_DIR = os.environ.get(MULTIPROCESS_ENV)
_REGISTRY = CollectorRegistry()

REQUEST_SECONDS = Histogram(
    "kith_http_request_duration_seconds",
    "HTTP requests by route template, method and status class; _count is the number of requests.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=_REGISTRY,
)
SEARCH_SECONDS = Histogram(
    "kith_search_duration_seconds",
    "Time the search index took to answer a search.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=_REGISTRY,
)

_T = TypeVar("_T")


def share_across_processes(data_dir: Path) -> Path:
    """Make `<data_dir>/metrics` the directory where every web process started after this call records its
    numbers, emptied first: files left by an earlier run would be added to this one's. Call it in the parent
    before the web processes start; they inherit the environment."""
    path = data_dir / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROCESS_ENV] = str(path)
    return path


def timed_search(search: Callable[..., _T]) -> Callable[..., _T]:
    """`search`, observed by the search latency histogram (a failed search is timed as well)."""

    def run(*args: Any, **kwargs: Any) -> _T:
        with SEARCH_SECONDS.time():
            return search(*args, **kwargs)

    return run


class RequestMetrics:
    """ASGI middleware recording each request's duration under its route template, method and status class."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            # Raised past the route's own exception handler (by the CSRF check, say): the app's handler answers.
            status = status or getattr(exc, "status_code", None) or getattr(exc, "status", None) or 500
            raise
        finally:
            REQUEST_SECONDS.labels(
                route=scope.get("path_template") or "unknown",
                method=scope["method"],
                status=f"{status // 100}xx" if status else "none",
            ).observe(time.perf_counter() - started)


def _queue(model: Any, created: Any) -> Select[Any]:
    """Pending rows: how many, how many are due now (waiting for a worker), and when the oldest was made."""
    return select(
        func.count(),
        func.coalesce(func.sum(case((model.next_attempt_at <= bindparam("now"), 1), else_=0)), 0),
        func.min(created),
    ).where(model.state == PENDING)


_INBOX = _queue(InboxItem, InboxItem.received_at)
_JOBS = _queue(Job, Job.created_at)
# Pending and given-up deliveries by peer; the due index (state first) finds them without reading sent ones.
_DELIVERIES = (
    select(
        Delivery.peer_host,
        Delivery.state,
        func.count(),
        func.coalesce(func.sum(case((Delivery.attempts > 0, 1), else_=0)), 0),
        func.coalesce(func.sum(case((Delivery.next_attempt_at <= bindparam("now"), 1), else_=0)), 0),
        func.min(Delivery.created_at),
    )
    .where(Delivery.state.in_([PENDING, DELIVERIES["give_up"].target]))
    .group_by(Delivery.peer_host, Delivery.state)
)


async def _database_families(request: Request[Any, Any, Any]) -> list[Metric]:
    engine = request.app.state.engine
    now = utcnow()
    params = {"now": now}
    # Every configured peer is shown, at 0 when nothing is queued for it, so that its series never go missing.
    peers = {host: {"pending": 0, "retrying": 0, "given_up": 0} for host in request.app.state.settings.peer_hosts}
    deliveries = [0, 0, None]  # pending, due now, oldest
    for host, state, count, failed_before, due_now, oldest in await fetch_all(engine, _DELIVERIES, params):
        peer = peers.setdefault(host, {"pending": 0, "retrying": 0, "given_up": 0})
        if state != PENDING:
            peer["given_up"] = count
            continue
        peer["pending"], peer["retrying"] = count, failed_before
        deliveries[0] += count
        deliveries[1] += due_now
        deliveries[2] = oldest if deliveries[2] is None else min(deliveries[2], oldest)
    queues = {
        "deliveries": deliveries,
        "inbox_items": (await fetch_all(engine, _INBOX, params))[0],
        "jobs": (await fetch_all(engine, _JOBS, params))[0],
    }

    depth = GaugeMetricFamily("kith_queue_depth", "Pending items in a queue.", labels=["queue"])
    due = GaugeMetricFamily("kith_queue_due", "Pending items due now, waiting for a worker.", labels=["queue"])
    age = GaugeMetricFamily(
        "kith_queue_oldest_age_seconds", "Age of the oldest pending item in a queue (0 when empty).", labels=["queue"]
    )
    for name, (count, due_now, oldest) in queues.items():
        depth.add_metric([name], count)
        due.add_metric([name], due_now)
        age.add_metric([name], max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0)
    families = [depth, due, age]
    for key, help_text in (
        ("pending", "Deliveries queued for a peer."),
        ("retrying", "Deliveries queued for a peer whose last attempt failed."),
        ("given_up", "Deliveries to a peer given up after failing."),
    ):
        family = GaugeMetricFamily(f"kith_peer_deliveries_{key}", help_text, labels=["peer"])
        for host in sorted(peers):
            family.add_metric([host], peers[host][key])
        families.append(family)
    return families


class _Families(Collector):
    """A collector of families already read."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _recorded() -> bytes:
    if _SHARED_DIR is None:
        return generate_latest(_REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=_SHARED_DIR)
    return generate_latest(registry)


@get(
    "/metrics",
    include_in_schema=False,
    # A scraper sends a bearer token, never a cookie: no session to read, no CSRF cookie to set.
    opt={"skip_session": True, "exclude_from_csrf": True},
)
async def metrics(request: Request[Any, Any, Any], principal: Principal | None) -> Response[bytes]:
    if not require(principal).is_admin:
        raise ProblemError(403, "Metrics are for an admin token (an admin's token with the admin scope).")
    body = _recorded() + generate_latest(_Families(await _database_families(request)))
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
