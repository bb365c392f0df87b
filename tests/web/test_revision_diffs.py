"""The revisions page compares any two revisions of a guide, with or without htmx."""

from __future__ import annotations

import uuid

from litestar.testing import TestClient

from tests.conftest import join
from tests.support.html import elements
from tests.web.conftest import sign_in

HX = {"HX-Request": "true"}


def _guide(client, person, community, **fields) -> dict:  # type: ignore[no-untyped-def]
    body = {"title": f"Guide {uuid.uuid4().hex[:6]}", "body_markdown": "Tag\nBuild\nAnnounce", **fields}
    response = client.post(f"/api/v1/communities/{community['slug']}/guides", json=body, headers=person.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _edit(client, person, guide, **fields) -> None:  # type: ignore[no-untyped-def]
    url = f"/api/v1/guides/{guide['id']}"
    etag = client.get(url, headers=person.auth).headers["etag"]
    assert client.patch(url, json=fields, headers={**person.auth, "If-Match": etag}).status_code == 200


def _three_revisions(client, person, community, **fields) -> tuple[dict, str]:  # type: ignore[no-untyped-def]
    guide = _guide(client, person, community, **fields)
    _edit(client, person, guide, body_markdown="Tag\nBuild\nTest\nAnnounce", summary_of_change="test first")
    _edit(client, person, guide, body_markdown="Tag\nTest\nAnnounce widely", title="Release steps")
    return guide, f"/c/{community['slug']}/guides/{guide['slug']}/revisions"


def _lines(html: str, kind: str) -> list[str]:
    """The text of the diff's added (`ins`) or removed (`del`) lines, without their screen-reader labels."""
    found, inside = [], False
    for part in html.split("<"):
        if part.startswith(f"{kind} "):
            inside = True
        elif inside and part.startswith("/span>"):
            found.append(part.removeprefix("/span>").strip())
            inside = False
    return found


def _checked(html: str, name: str) -> str:
    return next(a["value"] for t, a in elements(html) if t == "input" and a.get("name") == name and "checked" in a)


def test_any_two_revisions_compare_on_the_page(visitor, client, admin, community):
    _, path = _three_revisions(client, admin, community)
    page = visitor.get(path, params={"from": "1", "to": "3"})
    assert page.status_code == 200
    assert "Changes from revision 1 to 3" in page.text
    assert _lines(page.text, "ins") == ["Test", "Announce widely"]
    assert _lines(page.text, "del") == ["Build", "Announce"]
    assert "Title: “" in page.text and "Release steps" in page.text
    # The form shows what is compared, so a reader changes one end and submits (no JavaScript needed).
    assert (_checked(page.text, "from"), _checked(page.text, "to")) == ("1", "3")


def test_the_default_is_the_newest_change_and_either_direction_works(visitor, client, admin, community):
    _, path = _three_revisions(client, admin, community)
    newest = visitor.get(path)
    assert "Changes from revision 2 to 3" in newest.text
    assert (_checked(newest.text, "from"), _checked(newest.text, "to")) == ("2", "3")
    backwards = visitor.get(path, params={"from": "3", "to": "1"})
    assert _lines(backwards.text, "ins") == ["Build", "Announce"]
    same = visitor.get(path, params={"from": "2", "to": "2"})
    assert same.status_code == 200 and "Pick two different revisions." in same.text


def test_htmx_swaps_only_the_diff(visitor, client, admin, community):
    _, path = _three_revisions(client, admin, community)
    fragment = visitor.get(path, params={"from": "1", "to": "2"}, headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="diff"' in fragment.text and _lines(fragment.text, "ins") == ["Test"]


def test_a_revision_the_guide_lacks_is_a_readable_404(visitor, client, admin, community):
    _, path = _three_revisions(client, admin, community)
    missing = visitor.get(path, params={"from": "1", "to": "9"})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "Revision 9 was not found." in missing.text
    for bad in ("0", "x"):
        refused = visitor.get(path, params={"from": bad, "to": "2"}, headers={"Accept": "text/html"})
        assert refused.status_code == 400 and refused.headers["content-type"].startswith("text/html")


def test_a_drafts_revisions_are_only_for_those_who_may_see_it(
    visitor, web_app, settings, client, admin, people, community
):
    author = people.make("drafter")
    join(client, admin, community, author)
    _, path = _three_revisions(client, author, community, status="draft")
    assert visitor.get(path, params={"from": "1", "to": "3"}).status_code == 404
    sign_in(visitor, author.username)
    assert "Changes from revision 1 to 3" in visitor.get(path, params={"from": "1", "to": "3"}).text
    with TestClient(app=web_app, base_url=settings.base_url) as stranger:
        member = people.make("member")
        join(client, admin, community, member)
        sign_in(stranger, member.username)
        assert stranger.get(path, params={"from": "1", "to": "3"}).status_code == 404
