"""The API reference at /schema: Redoc, vendored under /static (`make vendor`), reading /schema/openapi.json."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request, Router
from litestar.datastructures import ResponseHeader
from litestar.openapi.plugins import OpenAPIRenderPlugin

REDOC_VERSION = "2.5.4"  # as in the Makefile's vendor target

# Redoc's styled components write <style> elements and its search index runs in a worker made from a blob:
# URL; nothing else on the site needs either, so only these pages get them.
REFERENCE_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "worker-src blob:",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)

# No inline script: the <redoc spec-url> element is enough for the bundle to start itself.
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="stylesheet" href="/static/css/api-reference.css">
  <script src="/static/js/redoc-{version}.standalone.js" defer></script>
</head>
<body>
  <redoc spec-url="{spec}"></redoc>
  <noscript><p>This reference needs JavaScript; the OpenAPI document is <a href="{spec}">{spec}</a>.</p></noscript>
</body>
</html>
"""


class RedocPage(OpenAPIRenderPlugin):
    def __init__(self) -> None:
        super().__init__(path=["/", "/redoc"], favicon="", style="")  # /schema/redoc as Litestar served it

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return _PAGE.format(
            title=escape(openapi_schema["info"]["title"]),
            version=REDOC_VERSION,
            spec=escape(self.get_openapi_json_route(request)),
        ).encode()


def reference_router(path: str) -> Router:
    """The router Litestar adds the reference's routes to, so the page and its document carry its policy."""
    return Router(
        path,
        route_handlers=[],
        include_in_schema=False,
        response_headers=[ResponseHeader(name="Content-Security-Policy", value=REFERENCE_CSP)],
    )
