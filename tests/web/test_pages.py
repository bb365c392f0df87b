"""Every page, in-process: full page or fragment, Vary, error pages, forms with CSRF, and the services' rules."""

from __future__ import annotations

import uuid

import pytest
from litestar.testing import TestClient

from tests.conftest import join
from tests.support.html import elements
from tests.web.conftest import csrf_token, sign_in, submit

HX = {"HX-Request": "true"}


def _guide(client: TestClient, person, community: dict, **fields) -> dict:  # type: ignore[no-untyped-def]
    body = {"title": f"Guide {uuid.uuid4().hex[:6]}", "body_markdown": "# Hello\n\nFirst *text*.", **fields}
    response = client.post(f"/api/v1/communities/{community['slug']}/guides", json=body, headers=person.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _offer(client: TestClient, person, community: dict, **fields) -> dict:  # type: ignore[no-untyped-def]
    body = {
        "title": "Pairing on Python",
        "description_markdown": "Let us *pair*.",
        "topics": ["python"],
        "format": "one_to_one",
        "capacity": 2,
        "languages": ["en"],
        **fields,
    }
    response = client.post(f"/api/v1/communities/{community['slug']}/mentorship/offers", json=body, headers=person.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _path(guide: dict) -> str:
    return f"/c/{guide['community']['slug']}/guides/{guide['slug']}"


def _has(html: str, tag: str, **attrs: str) -> bool:
    return any(t == tag and all(a.get(k) == v for k, v in attrs.items()) for t, a in elements(html))


def test_home_serves_full_page_or_fragment(visitor, client, admin, community):
    guide = _guide(client, admin, community)
    full = visitor.get("/")
    assert full.status_code == 200
    assert full.headers["content-type"].startswith("text/html")
    assert "HX-Request" in full.headers["vary"]
    assert full.text.lstrip().lower().startswith("<!doctype html>")
    assert guide["title"] in full.text and community["name"] in full.text
    assert _has(full.text, "script", src="/static/js/htmx-2.0.11.min.js")
    fragment = visitor.get("/", headers=HX)
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers["vary"]
    assert "<html" not in fragment.text and guide["title"] in fragment.text
    restore = visitor.get("/", headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text


def test_htmx_is_served_from_this_instance(visitor):
    response = visitor.get("/static/js/htmx-2.0.11.min.js")
    assert response.status_code == 200 and "htmx" in response.text[:2000]
    assert visitor.get("/static/css/kith.css").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/", "/mentorship", "/search", "/search?q=hello", "/login"],
)
def test_public_pages_render_both_ways(visitor, path):
    full = visitor.get(path)
    assert full.status_code == 200, full.text
    assert "<main" in full.text
    fragment = visitor.get(path, headers=HX)
    assert fragment.status_code == 200 and "<main" not in fragment.text
    assert full.headers["vary"] == fragment.headers["vary"] and "HX-Request" in full.headers["vary"]


def test_community_page_shows_identity_guides_offers_members(visitor, client, admin, people, community):
    member = people.make("member")
    join(client, admin, community, member)
    guide = _guide(client, member, community)
    offer = _offer(client, member, community)
    page = visitor.get(f"/c/{community['slug']}")
    assert page.status_code == 200
    assert community["name"] in page.text and guide["title"] in page.text and offer["title"] in page.text
    assert member.username in page.text
    # The same URL is the Group for peers: a cache must keep the page and the actor apart.
    assert "HX-Request" in page.headers["vary"] and "Accept" in page.headers["vary"]
    assert "<html" not in visitor.get(f"/c/{community['slug']}", headers=HX).text
    # ActivityPub clients still get the Group at the same URL.
    actor = visitor.get(f"/c/{community['slug']}", headers={"Accept": "application/activity+json"})
    assert actor.json()["type"] == "Group"


def test_guide_page_renders_sanitized_markdown_and_metadata(visitor, client, admin, community):
    guide = _guide(client, admin, community, tags=["soil"], body_markdown="Hi <script>alert(1)</script> **bold**")
    page = visitor.get(_path(guide))
    assert page.status_code == 200
    assert "<strong>bold</strong>" in page.text and "<script>alert" not in page.text
    assert "#soil" in page.text and "CC-BY-4.0" in page.text
    assert not _has(page.text, "a", href=_path(guide) + "/edit")  # anonymous: no edit link
    fragment = visitor.get(_path(guide), headers=HX)
    assert "<html" not in fragment.text and "<strong>bold</strong>" in fragment.text


def test_guide_and_community_pages_keep_the_visibility_rules(
    visitor, web_app, settings, client, admin, people, community
):
    author, moderator, member = people.make("author"), people.make("moder"), people.make("reader")
    join(client, admin, community, author)
    join(client, admin, community, moderator, role="moderator")
    join(client, admin, community, member)
    published = _guide(client, author, community, title="Out in the open")
    draft = _guide(client, author, community, title="Half written", status="draft")
    deleted = _guide(client, author, community, title="Gone for good")
    assert client.delete(f"/api/v1/guides/{deleted['id']}", headers=author.auth).status_code == 204
    listing = visitor.get(f"/c/{community['slug']}")
    assert (
        published["title"] in listing.text
        and "Half written" not in listing.text
        and "Gone for good" not in listing.text
    )
    assert visitor.get(_path(published)).status_code == 200
    assert visitor.get(_path(draft)).status_code == 404
    assert visitor.get(_path(deleted)).status_code == 404
    assert visitor.get(f"/c/{community['slug']}@{settings.host}/guides/{published['slug']}").status_code == 200
    assert visitor.get(f"/c/{community['slug']}@elsewhere.example/guides/{published['slug']}").status_code == 404
    for person, sees_draft, may_edit in ((member, False, False), (moderator, True, True), (author, True, True)):
        with TestClient(app=web_app, base_url=settings.base_url) as browser:
            sign_in(browser, person.username)
            page = browser.get(f"/c/{community['slug']}")
            assert ("Half written" in page.text) is sees_draft, person.username
            assert browser.get(_path(draft)).status_code == (200 if sees_draft else 404)
            shown = browser.get(_path(published))
            assert _has(shown.text, "a", href=_path(published) + "/edit") is may_edit, person.username


def test_community_page_pages_through_its_guides_with_a_cursor(visitor, client, admin):
    slug = f"paged-{uuid.uuid4().hex[:6]}"
    assert (
        client.post("/api/v1/communities", json={"slug": slug, "name": "Paged"}, headers=admin.auth).status_code == 201
    )
    titles = [_guide(client, admin, {"slug": slug}, title=f"Paged guide {n:02d}")["title"] for n in range(22)]
    first = visitor.get(f"/c/{slug}")
    assert first.status_code == 200 and titles[-1] in first.text and titles[1] not in first.text
    older = next(a["href"] for t, a in elements(first.text) if t == "a" and a.get("rel") == "next")
    second = visitor.get(older)
    assert second.status_code == 200 and titles[0] in second.text and titles[1] in second.text
    assert titles[-1] not in second.text
    assert visitor.get(f"/c/{slug}?cursor=not-a-cursor").status_code == 422
    assert visitor.get("/?cursor=not-a-cursor").status_code == 422


def test_unknown_pages_get_a_useful_404_in_the_layout(visitor, community):
    for path in (f"/c/{community['slug']}/guides/no-such-guide", "/c/nope-nope/guides/x"):
        response = visitor.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "We could not find that page" in response.text and 'href="/"' in response.text
    # The API keeps problem+json.
    api = visitor.get(f"/api/v1/guides/{uuid.uuid4()}")
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/problem+json")


def test_sign_in_sets_a_safe_session_cookie(visitor, people):
    person = people.make("reader")
    page = visitor.get("/login")
    response = visitor.post(
        "/login",
        data={"_csrf_token": csrf_token(page.text), "username": person.username, "password": "correct horse"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("kith_session="))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # the test instance is plain http
    home = visitor.get("/")
    assert person.username in home.text and "Sign out" in home.text


def test_wrong_password_is_refused_and_then_rate_limited(visitor, people):
    person = people.make("guess")
    statuses = []
    for _ in range(7):
        response = submit(visitor, "/login", "/login", {"username": person.username, "password": "wrong password"})
        statuses.append(response.status_code)
    assert statuses[0] == 400 and statuses[-1] == 429
    assert "Too many" in response.text and "Retry-After" in response.headers
    # Even the right password waits out the window: that is the point.
    right = submit(visitor, "/login", "/login", {"username": person.username, "password": "correct horse"})
    assert right.status_code == 429


def test_session_cookie_never_authenticates_the_api(visitor, admin, people):
    person = people.make("cookie")
    sign_in(visitor, person.username)
    assert visitor.get("/api/v1/me").status_code == 401
    response = visitor.post("/api/v1/communities", json={"slug": "by-cookie", "name": "By cookie"})
    assert response.status_code == 401


def test_form_post_without_csrf_token_is_refused_and_changes_nothing(visitor, client, admin, people, community):
    member = people.make("csrf")
    join(client, admin, community, member)
    sign_in(visitor, member.username)
    title = f"Forged {uuid.uuid4().hex[:6]}"
    response = visitor.post(
        f"/c/{community['slug']}/guides", data={"title": title, "body_markdown": "x", "action": "publish"}
    )
    assert response.status_code == 403
    listed = client.get("/api/v1/guides", params={"community": community["slug"], "limit": 100}).json()["items"]
    assert title not in [g["title"] for g in listed]
    # With a token from someone else's page (a mismatched cookie) it is refused too.
    stranger = visitor.post("/logout", data={"_csrf_token": "not-a-real-token"})
    assert stranger.status_code == 403


def test_admin_creates_a_community_through_the_form(visitor, client, admin):
    sign_in(visitor, admin.username)
    slug = f"web-{uuid.uuid4().hex[:6]}"
    response = submit(
        visitor,
        "/communities/new",
        "/communities",
        {"slug": slug, "name": "Gardeners", "color": "#2e7d32"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == f"/c/{slug}"
    assert client.get(f"/api/v1/communities/{slug}").json()["color"] == "#2e7d32"
    duplicate = submit(visitor, "/communities/new", "/communities", {"slug": slug, "name": "Again"})
    assert duplicate.status_code == 409 and "already exists" in duplicate.text


def test_members_cannot_create_communities(visitor, people):
    person = people.make("plain")
    sign_in(visitor, person.username)
    assert visitor.get("/communities/new").status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(visitor, community):
    response = visitor.get(f"/c/{community['slug']}/new-guide", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/c/{community['slug']}/new-guide"


def test_member_writes_previews_edits_and_diffs_a_guide(visitor, client, admin, people, community):
    member = people.make("writer")
    join(client, admin, community, member)
    sign_in(visitor, member.username)
    new_page = f"/c/{community['slug']}/new-guide"
    preview = visitor.post(
        "/preview",
        data={"_csrf_token": csrf_token(visitor.get(new_page).text), "body_markdown": "# Title\n\n*soft*"},
        headers=HX,
    )
    assert preview.status_code == 200 and "<em>soft</em>" in preview.text and "<html" not in preview.text
    no_js_preview = submit(
        visitor,
        new_page,
        f"/c/{community['slug']}/guides",
        {"title": "Compost", "body_markdown": "*soft*", "action": "preview"},
    )
    assert "<em>soft</em>" in no_js_preview.text and "Compost" in no_js_preview.text
    created = submit(
        visitor,
        new_page,
        f"/c/{community['slug']}/guides",
        {
            "title": "Compost basics",
            "body_markdown": "Line one\nLine two",
            "tags": "soil, compost",
            "action": "publish",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303
    path = created.headers["location"]
    assert path == f"/c/{community['slug']}/guides/compost-basics"
    edited = submit(
        visitor,
        path + "/edit",
        path + "/edit",
        {
            "title": "Compost basics",
            "body_markdown": "Line one\nLine 2 changed",
            "revision": "1",
            "summary_of_change": "clearer",
            "action": "publish",
        },
        follow_redirects=False,
    )
    assert edited.status_code == 303
    diff = visitor.get(path + "/revisions?from=1&to=2")
    assert diff.status_code == 200
    assert _has(diff.text, "del", role="listitem") and _has(diff.text, "ins", role="listitem")
    assert "Line 2 changed" in diff.text and "Line two" in diff.text
    assert "<html" not in visitor.get(path + "/revisions?from=1&to=2", headers=HX).text


def test_stale_edit_is_a_conflict_that_keeps_the_text(visitor, client, admin, people, community):
    member = people.make("stale")
    join(client, admin, community, member)
    guide = _guide(client, member, community)
    client.patch(f"/api/v1/guides/{guide['id']}", json={"body_markdown": "someone else"}, headers=member.auth)
    sign_in(visitor, member.username)
    path = _path(guide)
    response = submit(
        visitor,
        path + "/edit",
        path + "/edit",
        {"title": guide["title"], "body_markdown": "my careful words", "revision": "1", "action": "publish"},
    )
    assert response.status_code == 409
    assert "saved this guide while you were editing" in response.text and "my careful words" in response.text
    assert client.get(f"/api/v1/guides/{guide['id']}").json()["body_markdown"] == "someone else"


def test_drafts_are_visible_only_to_their_author(visitor, client, admin, people, community):
    member = people.make("drafter")
    join(client, admin, community, member)
    sign_in(visitor, member.username)
    created = submit(
        visitor,
        f"/c/{community['slug']}/new-guide",
        f"/c/{community['slug']}/guides",
        {"title": "Secret plan", "body_markdown": "shh", "action": "draft"},
        follow_redirects=False,
    )
    path = created.headers["location"]
    assert "Draft" in visitor.get(path).text
    with TestClient(app=visitor.app, base_url=str(visitor.base_url)) as stranger:
        assert stranger.get(path).status_code == 404


def test_remote_guides_offer_no_edit(visitor, client, admin, community):
    guide = _guide(client, admin, community)
    sign_in(visitor, admin.username)
    page = visitor.get(_path(guide))
    assert _has(page.text, "a", href=_path(guide) + "/edit")


def test_mentorship_request_and_accept_inline(visitor, web_app, settings, client, admin, people, community):
    mentor = people.make("mentor")
    join(client, admin, community, mentor)
    offer = _offer(client, mentor, community, topics=["gardening"])
    listing = visitor.get("/mentorship", params={"topic": "gardening", "seats": "true"})
    assert offer["title"] in listing.text
    assert offer["title"] not in visitor.get("/mentorship", params={"topic": "gardening", "format": "group"}).text
    learner = people.make("learner")
    sign_in(visitor, learner.username)
    page_url = f"/mentorship/offers/{offer['id']}"
    assert "Accept" in visitor.get(page_url).headers["vary"]  # the offer's id: peers get the object there
    asked = submit(visitor, page_url, page_url + "/requests", {"message": "I grow tomatoes"}, follow_redirects=False)
    assert asked.status_code == 303
    assert "pending" in visitor.get("/mentorship/requests").text
    again = submit(visitor, page_url, page_url + "/requests", {"message": "again"})
    assert "already asked" in again.text
    with TestClient(app=web_app, base_url=settings.base_url) as mentor_browser:
        sign_in(mentor_browser, mentor.username)
        queue = mentor_browser.get("/mentorship/requests")
        assert "I grow tomatoes" in queue.text
        request_id = next(
            a["id"].removeprefix("request-") for t, a in elements(queue.text) if a.get("id", "").startswith("request-")
        )
        row = mentor_browser.post(
            f"/mentorship/requests/{request_id}/accept", data={"_csrf_token": csrf_token(queue.text)}, headers=HX
        )
        assert row.status_code == 200 and "accepted" in row.text and "<html" not in row.text
        # Back to where the form was only when that is a page of this site: `//host` is another site.
        again = mentor_browser.post(
            f"/mentorship/requests/{request_id}/accept", data={"_csrf_token": csrf_token(queue.text)},
            headers={"Referer": f"{settings.base_url}//evil.example/phish"}, follow_redirects=False,
        )  # fmt: skip
        assert again.status_code == 303 and again.headers["location"] == "/mentorship/requests"
    assert client.get(f"/api/v1/mentorship/offers/{offer['id']}").json()["seats_taken"] == 1


def test_a_form_with_a_nul_character_is_refused_with_a_page_and_writes_nothing(visitor, client, admin):
    sign_in(visitor, admin.username)
    slug = f"nul-{uuid.uuid4().hex[:6]}"
    response = submit(visitor, "/communities/new", "/communities", {"slug": slug, "name": "Null\x00 island"})
    assert response.status_code == 400 and "NUL" in response.text and "<html" in response.text
    assert client.get(f"/api/v1/communities/{slug}").status_code == 404


def test_mentorship_filters_fill_the_first_page_even_behind_many_newer_offers(visitor, client, admin, community):
    # 20 newer offers that do not match would fill a page of 20 before the filter saw the older match.
    topic = f"filters-{uuid.uuid4().hex[:6]}"
    solo = _offer(client, admin, community, title="Solo sessions", topics=[topic], format="one_to_one")
    for n in range(20):
        _offer(client, admin, community, title=f"Group {n}", topics=[topic], format="group", status="closed")
    by_format = visitor.get("/mentorship", params={"topic": topic, "format": "one_to_one"})
    assert by_format.status_code == 200 and solo["title"] in by_format.text and "Group 1" not in by_format.text
    with_seats = visitor.get("/mentorship", params={"topic": topic, "seats": "true"})
    assert solo["title"] in with_seats.text and "Group 1" not in with_seats.text
    groups = visitor.get("/mentorship", params={"topic": topic, "format": "group"})
    assert "Group 19" in groups.text and solo["title"] not in groups.text
    ignored = visitor.get("/mentorship", params={"topic": topic, "format": "nonsense"})
    assert ignored.status_code == 200 and "Group 19" in ignored.text


def test_tokens_page_shows_the_secret_once_and_revokes(visitor, client, people):
    person = people.make("tokens")
    sign_in(visitor, person.username)
    created = submit(visitor, "/settings/tokens", "/settings/tokens", {"name": "script", "scope": "read"})
    assert created.status_code == 200
    secret = next(a["value"] for t, a in elements(created.text) if a.get("id") == "secret")
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    again = visitor.get("/settings/tokens")
    assert secret not in again.text and "script" in again.text
    token_id = client.get("/api/v1/me/tokens", headers={"Authorization": f"Bearer {secret}"}).json()["items"][0]["id"]
    revoked = submit(visitor, "/settings/tokens", f"/settings/tokens/{token_id}/revoke", {}, follow_redirects=False)
    assert revoked.status_code == 303
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_federation_page_is_for_admins(visitor, admin, people):
    person = people.make("nosy")
    sign_in(visitor, person.username)
    assert visitor.get("/admin/federation").status_code == 403
    with TestClient(app=visitor.app, base_url=str(visitor.base_url)) as admin_browser:
        sign_in(admin_browser, admin.username)
        page = admin_browser.get("/admin/federation")
        assert page.status_code == 200 and "Federation" in page.text


def test_search_finds_guides_by_title_and_keeps_the_query_in_the_url(visitor, client, admin, community):
    word = f"zucchini{uuid.uuid4().hex[:5]}"
    guide = _guide(client, admin, community, title=f"Growing {word}")
    page = visitor.get("/search", params={"q": word})
    assert page.status_code == 200
    assert _has(page.text, "input", id="q", value=word)
    assert guide["title"] in page.text or "index" in page.text
    fragment = visitor.get("/search", params={"q": word}, headers=HX)
    assert "<html" not in fragment.text and 'id="results"' in fragment.text


def test_logout_ends_the_session(visitor, people):
    person = people.make("leaver")
    sign_in(visitor, person.username)
    response = submit(visitor, "/", "/logout", {}, follow_redirects=False)
    assert response.status_code == 303
    assert "Sign in" in visitor.get("/").text


def test_browsers_get_html_errors_and_scripts_get_problems(client):
    html = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert html.status_code == 404 and html.headers["content-type"].startswith("text/html")
    assert "could not find" in html.text
    api = client.get("/api/v1/no/such", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/problem+json")
    offer = client.get("/mentorship/offers/00000000-0000-0000-0000-000000000000", headers={"Accept": "text/html"})
    assert offer.status_code == 404 and offer.headers["content-type"].startswith("text/html")
    peer = client.get("/c/nope", headers={"Accept": "application/activity+json"})
    assert peer.status_code == 404 and not peer.headers["content-type"].startswith("text/html")


def test_remote_community_has_a_page_naming_its_instance(client, settings):
    import asyncio
    import uuid as uuid_

    from server.db import create_engine, create_sessionmaker
    from server.models import Community

    slug = f"weavers-{uuid_.uuid4().hex[:6]}"

    async def add_remote() -> None:
        engine = create_engine(settings.database_url)
        async with create_sessionmaker(engine)() as session:
            uri = f"https://peer.example/c/{slug}"
            session.add(Community(uri=uri, url=uri, slug=slug, name="Weavers", local=False, instance="peer.example"))
            await session.commit()
        await engine.dispose()

    asyncio.run(add_remote())
    page = client.get(f"/c/{slug}@peer.example", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "Weavers" in page.text and "peer.example" in page.text


def _cards() -> list:  # type: ignore[type-arg]
    from datetime import UTC, datetime, timedelta

    from server.accounts.schemas import PersonRef
    from server.communities.schemas import CommunityRef
    from server.guides.schemas import Origin
    from server.web.cards import GuideCard, OfferCard

    here, peer = "127.0.0.1:8000", "peer.example"
    local = CommunityRef(slug="py", name="Py <folk>", instance=here, uri="u", url="u", color="#f5e050")
    remote = CommunityRef(slug="rs", name="Rust & co", instance=peer, uri="r", url="r", color="#202020")
    person = PersonRef(username="ada", display_name='Ada "A" <L>', uri="p", instance=here)
    now = datetime.now(UTC)
    cards = []
    for community, status, age in ((local, "published", 0), (local, "draft", 5), (remote, "published", 90_000)):
        origin = Origin(instance=community.instance, uri=f"https://{community.instance}/g", url="https://x/g?a=1&b=<2>")
        when = now - timedelta(minutes=age)
        cards.append(GuideCard(
            id=uuid.uuid4(), slug="a-guide", title="A <b>guide</b>", summary="S & s", tags=["c++", "a b"],
            status=status, local=community is local, author=person, community=community, origin=origin,
            created_at=when, updated_at=when,
        ))  # fmt: skip
        cards.append(OfferCard(
            id=uuid.uuid4(), title="Pair <i>", topics=["x&y"], format="group", capacity=3, seats_taken=1,
            status="open" if age else "closed", local=community is local, mentor=person, community=community,
            origin=origin, created_at=when, updated_at=when,
        ))  # fmt: skip
    return cards


def _tiles() -> list:  # type: ignore[type-arg]
    from datetime import UTC, datetime

    from server.communities.schemas import Community, CommunityStats

    now = datetime.now(UTC)
    return [
        Community(
            id=uuid.uuid4(),
            uri="u",
            url="u",
            slug=slug,
            name="Py <folk>",
            description=description,
            color="#f5e050",
            links=[],
            local=instance == "127.0.0.1:8000",
            instance=instance,
            created_at=now,
            updated_at=now,
            stats=CommunityStats(guides=guides, offers=offers),
        )  # fmt: skip
        for slug, instance, description, guides, offers in (
            ("py", "127.0.0.1:8000", "About <b>Python</b> " * 20, 1, 0),
            ("rs", "peer.example", "", 12, 1),
        )
    ]


def test_remembered_card_markup_is_the_macros_markup_and_follows_every_change(web_app, settings):
    import msgspec

    env = web_app.template_engine.engine
    by_macro = env.from_string(
        '{% import "partials/shared/_macros.html" as ui with context %}'
        "{% if card.stats is defined %}{{ ui.community_tile(card) }}"
        "{% elif card.format is defined %}{{ ui.offer_card(card) }}{% else %}{{ ui.guide_card(card) }}{% endif %}"
    )
    by_global = env.from_string(
        "{% if card.stats is defined %}{{ community_tile(card) }}"
        "{% elif card.format is defined %}{{ offer_card(card) }}{% else %}{{ guide_card(card) }}{% endif %}"
    )
    for card in _cards() + _tiles():
        expected = by_macro.render(card=card, settings=settings)
        assert "&lt;" in expected and "<b>" not in expected and "<i>" not in expected  # still escaped
        assert by_global.render(card=card) == expected
        assert by_global.render(card=card) == expected  # remembered: the same markup again
        # Any value the card shows, changed, shows: its name or title, its community's colour, who wrote it.
        if hasattr(card, "stats"):
            stats = msgspec.structs.replace(card.stats, guides=card.stats.guides + 1)
            changed = msgspec.structs.replace(card, name="Another title", color="#123456", stats=stats)
            assert f"{stats.guides} guides" in by_global.render(card=changed)
        else:
            changed = msgspec.structs.replace(
                card, title="Another title", community=msgspec.structs.replace(card.community, color="#123456")
            )
        if hasattr(card, "author"):
            changed = msgspec.structs.replace(changed, author=msgspec.structs.replace(card.author, display_name="Bea"))
        fresh = by_global.render(card=changed)
        assert fresh == by_macro.render(card=changed, settings=settings)
        assert "Another title" in fresh and "#123456" in fresh and "Another title" not in expected


def test_a_list_of_cards_is_each_card_in_turn(web_app, settings):
    env = web_app.template_engine.engine
    one_by_one = env.from_string(
        "{% for card in guides %}{{ guide_card(card) }}{% endfor %}|{% for card in tiles %}{{ community_tile(card) }}"
        "{% endfor %}"
    )
    as_lists = env.from_string("{{ guide_card.many(guides) }}|{{ community_tile.many(tiles) }}")
    guides, tiles = [c for c in _cards() if not hasattr(c, "format")], _tiles()
    assert guides and tiles
    expected = one_by_one.render(guides=guides, tiles=tiles)
    assert as_lists.render(guides=guides, tiles=tiles) == expected
    assert "&lt;" in expected and "<b>" not in expected  # escaped as every card is
    assert as_lists.render(guides=[], tiles=[]) == "|"


def test_anonymous_pages_open_no_database_session(visitor, web_app, client, admin, community):
    guide = _guide(client, admin, community)
    state = web_app.state
    opened = []
    sessionmaker = state.sessionmaker

    def counting():  # type: ignore[no-untyped-def]
        opened.append(1)
        return sessionmaker()

    visitor.get("/")  # the first request of a fresh client: the CSRF cookie is set
    state.sessionmaker = counting
    try:
        for path in ("/", "/?cursor=", _path(guide)):
            response = visitor.get(path)
            assert response.status_code == 200 and guide["title"] in response.text, path
        assert opened == []
        assert visitor.get(f"/c/{community['slug']}").status_code == 200
    finally:
        state.sessionmaker = sessionmaker
