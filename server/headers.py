"""Security headers, set once for every response on its way out (Litestar's before_send), errors included."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import BeforeMessageSendHookHandler, Message, Scope

from server.settings import Settings

# Pages run only Kith's own scripts from /static: no inline script, no eval, nothing from another origin.
# Style attributes are allowed, <style> elements are not: a community's colour is any #rrggbb (checked by the
# community rules) and reaches the page as `style="--c: ..."`, which no fixed stylesheet can hold. An injected
# attribute could only restyle its own element; the selectors that let injected CSS read a page need a <style>.
PAGE_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        # Guides may show images from anywhere; they load without a referrer (server/markdown.py).
        "img-src 'self' https: http:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)

HSTS = "max-age=31536000"


def security_headers(settings: Settings) -> BeforeMessageSendHookHandler:
    every_response = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
    if settings.is_https:
        # Only an instance whose public address is https promises browsers https forever after.
        every_response["Strict-Transport-Security"] = HSTS

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        for name, value in every_response.items():
            headers[name] = value
        if headers.get("content-type", "").startswith("text/html"):
            # A page that needs another policy (the API reference) sets its own; every other page gets this one.
            if "content-security-policy" not in headers:
                headers["Content-Security-Policy"] = PAGE_CSP
            headers["X-Frame-Options"] = "DENY"  # frame-ancestors for browsers that predate it

    return add_headers
