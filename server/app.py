"""create_app(settings) -> Litestar: the one place that wires things together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server import __version__, changes
from server.accounts.api import AccountController
from server.accounts.deps import provide_db, provide_principal, provide_settings
from server.api_reference import RedocPage, reference_router
from server.archive.api import ArchiveController
from server.communities.api import CommunityController
from server.db import create_engine, create_sessionmaker
from server.errors import API_EXCEPTION_HANDLERS, reject_nul_characters
from server.federation import private
from server.federation.api import FederationController
from server.federation.delivery import Deliverer
from server.federation.discovery import federation_router
from server.federation.fetch import make_client
from server.federation.inbox import inbox_router
from server.federation.key_fetches import KeyFetches
from server.federation.move_out import MoveController, MoveLearner
from server.federation.outbox import publish
from server.federation.peers import PeerJobs
from server.federation.processing import InboxProcessor
from server.guides import service as guides
from server.guides.api import GuideController
from server.headers import security_headers
from server.instance import healthz, instance, readyz
from server.jobs import Worker
from server.mentorship import events
from server.mentorship import requests as mentorship_requests
from server.mentorship import service as mentorship
from server.mentorship.api import MentorshipController
from server.metrics import RequestMetrics, metrics
from server.notifications import service as notifications
from server.notifications.api import NotificationController
from server.notifications.mail import MailJobs
from server.ratelimit import Limiter
from server.registration.api import InviteController, RegistrationController
from server.search.api import SearchController
from server.search.indexing import Indexer
from server.search.writer_lock import WriterLock, lock_path
from server.settings import Settings, load_settings
from server.web import web_config
from server.web.communities import community_page
from server.web.errors import negotiated
from server.web.mentorship import offer_page
from server.web.moved import redirect_moved

MAX_BODY_BYTES = 1_000_000


# Every local change a domain service records becomes its outbox activity and deliveries (server/changes.py);
# a deleted community takes its guides and offers with it.
changes.subscribe(publish)
changes.subscribe(guides.delete_with_community)
changes.subscribe(mentorship.delete_with_community)
changes.subscribe(mentorship_requests.refuse_with_deleted_offer)
# Each step of a mentorship request goes to the other party's instance when that is a peer (private.py), and
# tells the local people it concerns (server/notifications/).
events.listen(private.on_request_event)
events.listen(notifications.on_request_event)


async def before_request(request: Request[Any, Any, Any]) -> Response[Any] | None:
    await reject_nul_characters(request)
    # A moved community's pages are a redirect map to its new home (server/web/moved.py).
    return await redirect_moved(request)


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Kith API",
        version=__version__,
        description="Communities, guides and mentorship offers, local and federated.",
        path="/schema",
        render_plugins=[RedocPage()],
        openapi_router=reference_router("/schema"),
        components=Components(
            security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", description="kith token")}
        ),
        security=[{}, {"bearer": []}],
        use_handler_docstrings=False,
        create_examples=False,
    )


def build_worker(settings: Settings, sessions: async_sessionmaker[AsyncSession], client) -> Worker:  # type: ignore[no-untyped-def]
    """The same steps run inside `kith serve` and alone as `kith worker`."""
    return Worker(
        [
            Deliverer(settings, sessions, client),
            InboxProcessor(settings, sessions, client),
            PeerJobs(settings, sessions, client),
            MoveLearner(settings, sessions, client),
            # The postgres search backend needs no index writer: each write updates its entry's vector.
            *(
                [Indexer(settings, sessions, writer_lock=WriterLock(lock_path(settings)))]
                if settings.search.backend == "whoosh"
                else []
            ),
            MailJobs(settings, sessions),
        ]
    )


def create_app(settings: Settings, *, run_worker: bool = False) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        engine = create_engine(settings.database_url)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.http_client = make_client(settings)
        worker_task = None
        if run_worker:
            worker = build_worker(settings, app.state.sessionmaker, app.state.http_client)
            worker_task = asyncio.create_task(worker.run())
        try:
            yield
        finally:
            if worker_task is not None:
                worker.stop()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(worker_task, timeout=10)
            await app.state.http_client.aclose()
            await engine.dispose()

    web = web_config(settings)
    app = Litestar(
        route_handlers=[
            instance,
            healthz,
            readyz,
            metrics,
            CommunityController,
            MoveController,
            ArchiveController,
            GuideController,
            MentorshipController,
            NotificationController,
            AccountController,
            RegistrationController,
            InviteController,
            FederationController,
            SearchController,
            federation_router,
            inbox_router,
            *web.route_handlers,
        ],
        dependencies={
            "db": Provide(provide_db),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "principal": Provide(provide_principal),
        },
        exception_handlers=negotiated(API_EXCEPTION_HANDLERS),
        lifespan=[lifespan],
        openapi_config=openapi_config(),
        request_max_body_size=MAX_BODY_BYTES,
        before_request=before_request,
        before_send=[security_headers(settings)],
        template_config=web.template_config,
        csrf_config=web.csrf_config,
        # Outermost, so that a request's time includes the session and CSRF checks.
        middleware=[RequestMetrics, *web.middleware],
    )
    app.state.settings = settings
    app.state.key_fetches = KeyFetches()  # one memory of key fetches per process (see key_fetches.py)
    app.state.limiter = Limiter(settings.rate_limits)  # one count of the rate limits per process (ratelimit.py)
    # Object ids that people open in a browser answer with these pages (federation sits beside the web, not above).
    app.state.people_pages = {"community": community_page, "offer": offer_page}
    return app


def web_app() -> Litestar:
    """One of the web processes of `kith serve --workers N`, which runs the background worker apart from them."""
    return create_app(load_settings())
