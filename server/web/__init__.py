"""The htmx web UI: pages, forms, sessions and CSRF. `create_app` wires it in through `web_config`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from litestar import Router
from litestar.config.csrf import CSRFConfig
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler

from server.settings import Settings
from server.web.adapt import adapt_handlers
from server.web.auth import auth_handlers
from server.web.communities import community_handlers
from server.web.errors import WEB_EXCEPTION_HANDLERS
from server.web.feeds import feed_handlers
from server.web.filters import register_filters
from server.web.guides import guide_handlers
from server.web.invite_pages import invite_handlers
from server.web.mentorship import mentorship_handlers
from server.web.moving import moving_handlers
from server.web.notifications import notification_handlers
from server.web.oidc import oidc_handlers
from server.web.search import search_handlers
from server.web.settings_pages import settings_handlers
from server.web.signup import signup_handlers

WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
SESSION_COOKIE = "kith_session"
CSRF_COOKIE = "kith_csrf"
CSRF_HEADER = "x-csrftoken"

# Machine endpoints: they authenticate by bearer token or HTTP signature, never by cookie, so CSRF does not apply.
NOT_BROWSER_PATHS = [
    r"^/api/",
    r"^/inbox$",
    r"^/actor/inbox$",
    r"^/c/[^/]+/inbox$",
    r"^/u/[^/]+/inbox$",
    r"^/\.well-known/",
    r"^/nodeinfo",
    r"^/schema",
    r"^/healthz$",
    r"^/readyz$",
    # Feeds are public and the same for everyone: no session is read for them, nor a CSRF cookie set.
    r"^/feeds/",
]

web_router = Router(
    path="/",
    route_handlers=[
        *community_handlers,
        *moving_handlers,
        *guide_handlers,
        *adapt_handlers,
        *mentorship_handlers,
        *notification_handlers,
        *search_handlers,
        *auth_handlers,
        *oidc_handlers,
        *settings_handlers,
        *signup_handlers,
        *invite_handlers,
        *feed_handlers,
    ],
    exception_handlers=WEB_EXCEPTION_HANDLERS,
    include_in_schema=False,
)


def _key(secret: str, purpose: str) -> bytes:
    return hashlib.sha256(f"kith:{purpose}:{secret}".encode()).digest()


@dataclass(frozen=True)
class WebConfig:
    route_handlers: list[ControllerRouterHandler]
    template_config: TemplateConfig[Any]
    csrf_config: CSRFConfig
    middleware: list[Any]


def web_config(settings: Settings) -> WebConfig:
    session = CookieBackendConfig(
        secret=_key(settings.secret_key, "session"),
        key=SESSION_COOKIE,
        max_age=14 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.is_https,
        # The API reads only bearer tokens: the session is never even decoded there.
        exclude=NOT_BROWSER_PATHS,
    )
    csrf = CSRFConfig(
        secret=_key(settings.secret_key, "csrf").hex(),
        cookie_name=CSRF_COOKIE,
        header_name=CSRF_HEADER,
        cookie_secure=settings.is_https,
        cookie_samesite="lax",
        exclude=NOT_BROWSER_PATHS,
    )
    templates = TemplateConfig(
        directory=WEB_ROOT / "templates",
        engine=JinjaTemplateEngine,
        engine_callback=partial(register_filters, local_host=settings.host),
    )
    static = create_static_files_router(
        path="/static",
        directories=[WEB_ROOT / "static"],
        include_in_schema=False,
        name="static",
        cache_control=None,
    )
    return WebConfig(
        route_handlers=[web_router, static],
        template_config=templates,
        csrf_config=csrf,
        middleware=[session.middleware],
    )


__all__ = ["WebConfig", "web_config", "web_router"]
