"""Mentorship pages: offers with filters, an offer with its request form, my requests and a mentor's queue, and
a request's own page with its private thread."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.communities.service import CommunityService
from server.errors import ProblemError, not_found
from server.mentorship import schemas
from server.mentorship.requests import RequestService, message_schema
from server.mentorship.rules import THREAD_STATES
from server.mentorship.service import MentorshipService, to_schema
from server.ratelimit import limiter_of
from server.settings import Settings
from server.web.core import current_viewer, flash, fragment, is_fragment_request, page, safe_next, see_other
from server.web.errors import signed_in, wants_html
from server.web.forms import build, field_errors, form_data, labels

FORMATS = {"one_to_one": "One to one", "group": "Group"}
# The newest messages a request page shows at once; older ones are a link away.
THREAD_PAGE = 50
ACTIONS = {"accept": "accepted", "decline": "declined", "withdraw": "withdrawn", "retry": "sending"}


@get("/mentorship", name="offers")
async def offers(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    settings: Settings,
    topic: str | None = None,
    language: str | None = None,
    format: str | None = None,
    seats: bool = False,
    cursor: str | None = None,
) -> Template:
    # An unknown format is ignored, as an empty one is: the form only offers the known ones.
    items, next_cursor = await MentorshipService(db, settings).list(
        topic=topic or None,
        language=language or None,
        format=format if format in FORMATS else None,  # type: ignore[arg-type]
        open_seats=seats,
        limit=20,
        cursor=cursor,
    )
    filters = {"topic": topic or "", "language": language or "", "format": format or "", "seats": seats}
    context = {"offers": items, "filters": filters, "formats": FORMATS, "next_cursor": next_cursor, "cursor": cursor}
    return await page(request, db, "mentorship/offers", context, title="Mentorship")


async def offer_page(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, offer_id: UUID) -> Template:
    """The human page of a local offer; the ActivityPub route hands browsers here."""
    viewer = await current_viewer(request, db)
    offer = await MentorshipService(db, settings).get(offer_id)
    service = RequestService(db, settings)
    requests: list[schemas.MentorshipRequest] = []
    mine: list[schemas.MentorshipRequest] = []
    is_mentor = viewer is not None and (offer.mentor_id == viewer.user_id or viewer.is_admin)
    if viewer is not None and is_mentor:
        requests, _ = await service.for_offer(viewer.principal, offer.id, 100, None)
    elif viewer is not None:
        made, _ = await service.mine(viewer.principal, True, 100, None)
        mine = [r for r in made if r.offer.id == offer.id]
    context = {
        "offer": to_schema(offer),
        "requests": requests,
        "mine": mine,
        "is_mentor": is_mentor,
        "formats": FORMATS,
        "errors": {},
    }
    return await page(request, db, "mentorship/offer", context, title=offer.title, at_object_id=True)


@post("/mentorship/offers/{offer_id:uuid}/requests", name="offer_request")
async def offer_request(
    offer_id: UUID, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Redirect:
    viewer = await signed_in(request, db)
    data = await form_data(request)
    try:
        asked = await RequestService(db, settings).ask(viewer.principal, offer_id, data.get("message", "")[:5000])
    except ProblemError as exc:
        if exc.status != 409:
            raise
        flash(request, exc.detail, "error")
        return see_other(f"/mentorship/offers/{offer_id}")
    if asked.state == "sending":
        flash(request, f"Your request is on its way to {asked.offer.instance}.")
    else:
        flash(request, "Your request is on its way to the mentor.")
    return see_other(f"/mentorship/offers/{offer_id}")


@get("/mentorship/requests", name="my_requests")
async def my_requests(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template:
    viewer = await signed_in(request, db)
    service = RequestService(db, settings)
    mine, _ = await service.mine(viewer.principal, True, 100, None)
    queue, _ = await service.mine(viewer.principal, False, 100, None)
    context = {"mine": mine, "queue": queue}
    return await page(request, db, "mentorship/requests", context, title="My mentorship")


@post("/mentorship/requests/{request_id:uuid}/{action:str}", name="request_decide")
async def request_decide(
    request_id: UUID, action: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template | Redirect:
    viewer = await signed_in(request, db)
    service = RequestService(db, settings)
    if action not in ACTIONS:
        raise not_found("Action")
    data = await form_data(request)
    error = None
    try:
        if action == "withdraw":
            changed = await service.withdraw(viewer.principal, request_id)
        elif action == "retry":
            changed = await service.retry(viewer.principal, request_id)
        else:
            changed = await service.decide(viewer.principal, request_id, ACTIONS[action])
    except ProblemError as exc:
        if exc.status != 409:
            raise
        error = exc.detail
        await db.rollback()  # what the refused step changed in memory was never written: show what was
        changed = await service.get(viewer.principal, request_id)
    if is_fragment_request(request):
        context = {
            "item": service.schema(changed),
            "error": error,
            "role": "requester" if action in ("withdraw", "retry") else "mentor",
        }
        return await fragment(request, db, "partials/mentorship/_request_row.html", context)
    item = service.schema(changed)
    done = f"Request {item.state}."
    if action == "retry":
        done = f"Your request is on its way to {item.offer.instance} again."
    flash(request, error or done, "error" if error else "info")
    # The request page says where to come back to; the lists come back to where the form was.
    back = safe_next(data.get("next"), "") or safe_back(request, "/mentorship/requests")
    return see_other(back)


async def request_page(
    request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, request_id: UUID, *,
    draft: str = "", error: str | None = None, status_code: int = 200,
) -> Template:  # fmt: skip
    """A request's page: the offer, who asked, where it stands, what the viewer may do, and the thread."""
    if not wants_html(request) and await current_viewer(request, db) is None:
        # The page shares its URL with the request's id: a peer or script dereferencing it learns nothing,
        # not even that signing in would help.
        raise not_found("Mentorship request")
    viewer = await signed_in(request, db)
    service = RequestService(db, settings)
    found = await service.get(viewer.principal, request_id)
    item = service.schema(found)
    cursor = request.query_params.get("cursor") or None
    newest_first, older = await service.messages(viewer.principal, request_id, THREAD_PAGE, cursor)
    parties = (found.requester_id, found.offer.mentor_id)
    context = {
        "item": item,
        "messages": list(reversed(newest_first)),
        "older": older,
        "cursor": cursor,
        "is_requester": viewer.user_id == found.requester_id,
        # The mentor answers on the offer's instance only; an admin may answer for them there.
        "may_decide": found.offer.local and (viewer.user_id == found.offer.mentor_id or viewer.is_admin),
        "may_write": viewer.user_id in parties,
        "has_thread": found.state in THREAD_STATES,
        "draft": draft,
        "error": error,
    }
    return await page(
        request, db, "mentorship/request", context, title=f"Request: {item.offer.title}", status_code=status_code,
        at_object_id=True,
    )  # fmt: skip


@get("/mentorship/requests/{request_id:uuid}", name="request_page")
async def request_detail(
    request_id: UUID, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template:
    return await request_page(request, db, settings, request_id)


@post("/mentorship/requests/{request_id:uuid}/messages", name="request_message")
async def request_message(
    request_id: UUID, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template | Redirect:
    viewer = await signed_in(request, db)
    data = await form_data(request)
    body = data.get("body_markdown", "")
    service = RequestService(db, settings)
    message, error = None, None
    try:
        limiter_of(request).check("messages", str(viewer.user_id))
        message = await service.post_message(viewer.principal, request_id, body)
    except ProblemError as exc:
        # Strangers get the 404 page from get(); what a party can fix or wait out is shown at the form.
        if exc.status not in (409, 422, 429):
            raise
        await db.rollback()
        error = readable(exc)
        if not is_fragment_request(request):
            return await request_page(
                request, db, settings, request_id, draft=body, error=error, status_code=exc.status
            )
    if not is_fragment_request(request):
        assert message is not None
        return see_other(f"/mentorship/requests/{request_id}#message-{message.id}")
    # htmx swaps only 2xx answers, so an error comes back as a 200 too: the form with the error and the text kept.
    found = await service.get(viewer.principal, request_id)
    context = {
        "item": service.schema(found), "message": message_schema(message) if message else None,
        "draft": body if error else "", "error": error, "is_requester": viewer.user_id == found.requester_id,
    }  # fmt: skip
    return await fragment(request, db, "partials/mentorship/_message_posted.html", context)


def readable(exc: ProblemError) -> str:
    """The error as a sentence about the message, not about a field name."""
    if exc.status == 422 and exc.errors:
        return f"Your message {exc.errors[0].message}."
    return exc.detail


def safe_back(request: Request[Any, Any, Any], default: str) -> str:
    """Back where the form was, when the Referer is a page of this site: the same check as `next=`."""
    referer = request.headers.get("referer", "")
    base = request.app.state.settings.base_url
    return safe_next(referer[len(base) :], default) if referer.startswith(base + "/") else default


@get("/c/{ref:str}/new-offer", name="offer_new")
async def offer_new(ref: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template:
    await signed_in(request, db)
    community = await CommunityService(db, settings).get_local(ref)
    context = {
        "ref": ref,
        "community": community,
        "form": {"capacity": "1", "format": "one_to_one"},
        "errors": {},
        "formats": FORMATS,
    }
    return await page(request, db, "mentorship/new", context, title="New mentorship offer")


@post("/c/{ref:str}/offers", name="offer_create")
async def offer_create(
    ref: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Template | Redirect:
    viewer = await signed_in(request, db)
    community = await CommunityService(db, settings).get_local(ref)
    data = await form_data(request)
    fields = {
        "title": data.get("title", ""),
        "description_markdown": data.get("description_markdown", ""),
        "topics": labels(data.get("topics", "")),
        "languages": labels(data.get("languages", "")),
        "format": data.get("format", ""),
        "availability": data.get("availability", ""),
        "capacity": int(data["capacity"]) if data.get("capacity", "").isdigit() else 0,
    }
    try:
        offer = await MentorshipService(db, settings).create(viewer.principal, ref, build(schemas.OfferCreate, fields))
    except ProblemError as exc:
        if exc.status != 422:
            raise
        context = {"ref": ref, "community": community, "form": data, "errors": field_errors(exc), "formats": FORMATS}
        return await page(request, db, "mentorship/new", context, status_code=422, title="New mentorship offer")
    flash(request, "Your offer is open.")
    return see_other(f"/mentorship/offers/{offer.id}")


mentorship_handlers = [
    offers,
    offer_request,
    my_requests,
    request_detail,
    request_message,
    request_decide,
    offer_new,
    offer_create,
]
