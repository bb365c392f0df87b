"""Signed GETs to configured peers only, with size, time and redirect limits.

Nothing else in Kith reaches out to another server for reading: this module is the allowlist.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from server import outbound
from server.federation.keys import key_id_for, local_key
from server.federation.signatures import sign_request
from server.settings import Settings, host_of

AS_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
AS_MEDIA_TYPES = ("application/activity+json", "application/ld+json")
MAX_BYTES = 1_000_000
MAX_REDIRECTS = 3
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
TOTAL_SECONDS = 30.0


class FetchError(Exception):
    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # The peer's HTTP status when it answered: 404 and 410 say the document is gone, not that it is late.
        self.status = status


def make_client(settings: Settings) -> httpx.AsyncClient:
    """The client for fetches and deliveries; redirects are followed by hand, each hop checked."""
    return outbound.client(settings, timeout=TIMEOUT)


def check_allowed(settings: Settings, url: str) -> None:
    """Only configured peers, and plain http only while this instance itself runs on http."""
    parts = urlsplit(url)
    allowed_schemes = ("https",) if settings.is_https else ("http", "https")
    if parts.scheme not in allowed_schemes:
        raise FetchError(f"refusing to fetch {parts.scheme or 'scheme-less'} URL {url!r}")
    if host_of(url) not in settings.peer_hosts:
        raise FetchError(f"refusing to fetch from {host_of(url)!r}: not a configured peer")


async def instance_fetcher(session: AsyncSession, settings: Settings, client: httpx.AsyncClient) -> Fetcher:
    """A Fetcher that signs its requests as this instance's actor."""
    actor_uri = f"{settings.base_url}/actor"
    key = await local_key(session, actor_uri)
    return Fetcher(settings, client, key_id_for(actor_uri), key.private_key_pem or "")


class Fetcher:
    def __init__(self, settings: Settings, client: httpx.AsyncClient, key_id: str, private_key_pem: str) -> None:
        self.settings = settings
        self.client = client
        self.key_id = key_id
        self.private_key_pem = private_key_pem

    async def get_object(self, url: str) -> dict[str, Any]:
        """An ActivityPub document whose id must be the URL it was fetched from."""
        document, final_url, _ = await self._get_json(url, AS_ACCEPT)
        if document.get("id") not in (url, final_url):
            raise FetchError(f"document at {url} claims the id {str(document.get('id'))[:200]!r}")
        return document

    async def get_key_owner(self, url: str) -> dict[str, Any]:
        """The actor document a public key is taken from, held to more than any object: it must come as
        ActivityPub, from the host that was asked (wherever redirects led), with the id that was asked for."""
        document, final_url, content_type = await self._get_json(url, AS_ACCEPT)
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type not in AS_MEDIA_TYPES:
            raise FetchError(f"{url} answered {media_type or 'no content type'}, not an ActivityPub document")
        if host_of(final_url) != host_of(url):
            raise FetchError(f"{url} was answered from another host, {host_of(final_url)}")
        if document.get("id") != url:
            raise FetchError(f"document at {url} claims the id {str(document.get('id'))[:200]!r}")
        return document

    async def get_json(self, url: str, accept: str = "application/json") -> dict[str, Any]:
        return (await self._get_json(url, accept))[0]

    async def _get_json(self, url: str, accept: str) -> tuple[dict[str, Any], str, str]:
        try:
            async with asyncio.timeout(TOTAL_SECONDS):
                body, final_url, content_type = await self._get(url, accept)
        except TimeoutError as exc:
            raise FetchError(f"{url} took longer than {TOTAL_SECONDS:.0f} s") from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"{url}: {exc.__class__.__name__}: {exc}") from exc
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise FetchError(f"{url} did not answer JSON") from exc
        if not isinstance(document, dict):
            raise FetchError(f"{url} did not answer a JSON object")
        return document, final_url, content_type

    async def _get(self, url: str, accept: str) -> tuple[bytes, str, str]:
        for _ in range(MAX_REDIRECTS + 1):
            check_allowed(self.settings, url)
            headers = sign_request("GET", url, None, self.key_id, self.private_key_pem, {"Accept": accept})
            async with self.client.stream("GET", url, headers=headers) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code != 200:
                    raise FetchError(f"{url} answered {response.status_code}", response.status_code)
                return await _read_capped(response, url), url, response.headers.get("content-type", "")
        raise FetchError(f"more than {MAX_REDIRECTS} redirects from {url}")


async def _read_capped(response: httpx.Response, url: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BYTES:
        raise FetchError(f"{url} is larger than 1 MB")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BYTES:
            raise FetchError(f"{url} is larger than 1 MB")
        chunks.append(chunk)
    return b"".join(chunks)
