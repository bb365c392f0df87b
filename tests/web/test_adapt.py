"""Adapting a guide on the pages: the form, the attribution, the upstream notice, taking and dismissing its change,
conflict blocks in the editor, and the origin's list of adaptations."""

from __future__ import annotations

import html
import uuid

import pytest

from tests.conftest import join
from tests.support.html import elements
from tests.web.conftest import csrf_token, sign_in, submit

TEXT = "# Release checklist\n\n1. Tag the release\n2. Write the notes\n3. Announce it\n\nThanks for helping.\n"


def _community(client, admin, name: str) -> dict:  # type: ignore[no-untyped-def]
    slug = f"{name.lower()}-{uuid.uuid4().hex[:6]}"
    response = client.post("/api/v1/communities", json={"slug": slug, "name": name}, headers=admin.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _path(guide: dict) -> str:
    return f"/c/{guide['community']['slug']}/guides/{guide['slug']}"


def _edit_api(client, person, guide: dict, **fields) -> dict:  # type: ignore[no-untyped-def]
    url = f"/api/v1/guides/{guide['id']}"
    etag = client.get(url, headers=person.auth).headers["etag"]
    response = client.patch(url, json=fields, headers={**person.auth, "If-Match": etag})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def world(client, admin, people, visitor):  # type: ignore[no-untyped-def]
    """Origin's guide, and a member of Adopters signed in to the visitor's browser."""
    origin, adopters = _community(client, admin, "Origin"), _community(client, admin, "Adopters")
    writer, adapter = people.make("writer"), people.make("adapter")
    join(client, admin, origin, writer)
    join(client, admin, adopters, adapter)
    response = client.post(
        f"/api/v1/communities/{origin['slug']}/guides",
        json={"title": "Release checklist", "body_markdown": TEXT, "license": "CC-BY-SA-4.0"},
        headers=writer.auth,
    )
    assert response.status_code == 201, response.text
    sign_in(visitor, adapter.username)
    return origin, adopters, writer, adapter, response.json()


def _adapt(visitor, original: dict, adopters: dict):  # type: ignore[no-untyped-def]
    page = _path(original)
    return submit(visitor, page, page + "/adapt", {"community": adopters["slug"]}, follow_redirects=False)


def test_a_member_adapts_a_guide_of_another_community_with_attribution(visitor, client, world):
    origin, adopters, writer, adapter, original = world
    page = visitor.get(_path(original))
    assert f"Adapt for {adopters['name']}" in page.text
    assert not any(a.get("value") == origin["slug"] for t, a in elements(page.text) if t == "input")
    adapted = _adapt(visitor, original, adopters)
    assert adapted.status_code == 303
    path = adapted.headers["location"]
    assert path == f"/c/{adopters['slug']}/guides/release-checklist"
    shown = visitor.get(path)
    assert "Adapted for Adopters as a draft" in shown.text and "Draft" in shown.text
    attribution = shown.text[shown.text.index('aria-label="Attribution"') :]
    for part in ("Release checklist", writer.username, "Origin", "127.0.0.1:8000", "CC-BY-SA-4.0", original["url"]):
        assert part in attribution.split("</aside>")[0]
    # Share-alike: the editor's license stays the original's.
    edit = submit(
        visitor, path + "/edit", path + "/edit",
        {"title": "Release checklist", "body_markdown": TEXT, "license": "CC-BY-4.0", "revision": "1",
         "action": "publish"},
    )  # fmt: skip
    assert edit.status_code == 422 and "share-alike" in edit.text
    anonymous = client.get(_path(original))
    assert "Adapt this guide" not in anonymous.text


def test_a_no_derivatives_guide_says_why_it_cannot_be_adapted(visitor, client, world):
    origin, adopters, writer, adapter, _ = world
    nd = client.post(
        f"/api/v1/communities/{origin['slug']}/guides",
        json={"title": "Our logo rules", "body_markdown": "Do not change it.", "license": "CC-BY-ND-4.0"},
        headers=writer.auth,
    ).json()
    refused = _adapt(visitor, nd, adopters)
    assert refused.status_code == 422
    reason = "This guide cannot be adapted: the original's license (CC-BY-ND-4.0) does not allow adaptations."
    assert reason in html.unescape(refused.text)
    assert reason in html.unescape(visitor.get(_path(nd)).text)  # said before anyone tries, too
    drafts = client.get(
        "/api/v1/guides", params={"community": adopters["slug"], "status": "draft"}, headers=adapter.auth
    )
    assert drafts.json()["items"] == []


def test_upstream_change_shows_a_notice_with_its_diff_and_merges_cleanly(visitor, client, world):
    origin, adopters, writer, adapter, original = world
    path = _adapt(visitor, original, adopters).headers["location"]
    ours = TEXT.replace("Thanks for helping.", "Danke fürs Helfen.")
    saved = submit(
        visitor, path + "/edit", path + "/edit",
        {"title": "Release checklist", "body_markdown": ours.replace("\n", "\r\n"), "license": "CC-BY-SA-4.0",
         "revision": "1", "action": "publish"},
        follow_redirects=False,
    )  # fmt: skip
    assert saved.status_code == 303
    assert "upstream has changed" not in visitor.get(path).text
    _edit_api(client, writer, original, body_markdown=TEXT.replace("3. Announce it", "3. Announce it\n4. Celebrate"))
    shown = visitor.get(path)
    assert "The upstream has changed since you adapted it" in shown.text
    notice = shown.text[shown.text.index("upstream-notice") :]
    assert "<ins" in notice and "4. Celebrate" in notice
    assert "upstream has changed" not in client.get(path).text  # only those who may take it are told
    taken = submit(visitor, path, path + "/upstream/merge", {}, follow_redirects=False)
    assert taken.status_code == 303
    after = visitor.get(path)
    assert "Took the upstream" in after.text and "upstream has changed" not in after.text
    guide = client.get("/api/v1/guides", params={"community": adopters["slug"]}).json()["items"][0]
    assert "4. Celebrate" in guide["body_markdown"] and "Danke fürs Helfen." in guide["body_markdown"]


def test_a_conflicting_change_is_resolved_in_the_editor_before_it_saves(visitor, client, world):
    origin, adopters, writer, adapter, original = world
    path = _adapt(visitor, original, adopters).headers["location"]
    submit(
        visitor, path + "/edit", path + "/edit",
        {"title": "Release checklist", "body_markdown": TEXT.replace("Write the notes", "Notes"),
         "license": "CC-BY-SA-4.0", "revision": "1", "action": "publish"},
    )  # fmt: skip
    _edit_api(client, writer, original, body_markdown=TEXT.replace("Write the notes", "Write the changelog"))
    editor = submit(visitor, path, path + "/upstream/merge", {})
    assert editor.status_code == 200
    assert "conflicts with your edits in 1 place" in editor.text
    textarea = editor.text[editor.text.index('id="body_markdown"') :].split("</textarea>")[0]
    assert "&lt;&lt;&lt;&lt;&lt;&lt;&lt; your text" in textarea and "upstream revision 2" in textarea
    inputs = [attrs for tag, attrs in elements(editor.text) if tag == "input" and "name" in attrs]
    fields = {attrs["name"]: attrs.get("value", "") for attrs in inputs}
    assert fields["upstream_revision"] == "2"
    adapted = client.get("/api/v1/guides", params={"community": adopters["slug"]}).json()["items"][0]
    merged = client.get(f"/api/v1/guides/{adapted['id']}/upstream").json()["merged_markdown"]
    form = {
        "_csrf_token": csrf_token(editor.text), "title": "Release checklist", "license": "CC-BY-SA-4.0",
        "revision": fields["revision"], "upstream_revision": "2", "action": "publish",
    }  # fmt: skip
    refused = visitor.post(path + "/edit", data={**form, "body_markdown": merged})
    assert refused.status_code == 422 and "still has conflict blocks" in refused.text
    assert 'name="upstream_revision" value="2"' in refused.text
    resolved = TEXT.replace("Write the notes", "Write the changelog")
    saved = visitor.post(path + "/edit", data={**form, "body_markdown": resolved}, follow_redirects=False)
    assert saved.status_code == 303
    assert "upstream has changed" not in visitor.get(path).text


def test_dismissing_hides_the_notice_until_the_next_change_and_deletion_is_shown(visitor, client, world):
    origin, adopters, writer, adapter, original = world
    path = _adapt(visitor, original, adopters).headers["location"]
    _edit_api(client, writer, original, summary="A summary")
    assert "The upstream has changed" in visitor.get(path).text
    dismissed = submit(visitor, path, path + "/upstream/dismiss", {}, follow_redirects=False)
    assert dismissed.status_code == 303
    assert "The upstream has changed" not in visitor.get(path).text
    _edit_api(client, writer, original, summary="Another summary")
    assert "The upstream has changed" in visitor.get(path).text
    assert client.delete(f"/api/v1/guides/{original['id']}", headers=writer.auth).status_code == 204
    shown = visitor.get(path)
    assert "The original has been deleted; this adaptation keeps its text." in shown.text
    assert "The upstream has changed" not in shown.text and "Thanks for helping." in shown.text


def test_the_origin_lists_its_adaptations(visitor, client, admin, world):
    origin, adopters, writer, adapter, original = world
    path = _adapt(visitor, original, adopters).headers["location"]
    assert "Adapted by" not in client.get(_path(original)).text  # a draft is nobody's news
    submit(
        visitor, path + "/edit", path + "/edit",
        {"title": "Unsere Checkliste", "body_markdown": TEXT, "license": "CC-BY-SA-4.0", "revision": "1",
         "action": "publish"},
    )  # fmt: skip
    page = client.get(_path(original)).text
    assert "Adapted by 1 community on 1 instance" in page
    assert "Unsere Checkliste" in page and "Adopters" in page
