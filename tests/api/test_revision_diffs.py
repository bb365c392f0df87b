from __future__ import annotations

from tests.conftest import join


def _guide(client, person, community, **fields):
    body = {"title": "Release checklist", "body_markdown": "Tag\nBuild\nAnnounce", **fields}
    response = client.post(f"/api/v1/communities/{community['slug']}/guides", json=body, headers=person.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _edit(client, person, guide, body):
    url = f"/api/v1/guides/{guide['id']}"
    etag = client.get(url, headers=person.auth).headers["etag"]
    edited = client.patch(url, json={"body_markdown": body}, headers={**person.auth, "If-Match": etag})
    assert edited.status_code == 200, edited.text


def test_diff_between_any_two_revisions_is_a_unified_diff(client, admin, community):
    guide = _guide(client, admin, community)
    _edit(client, admin, guide, "Tag\nBuild\nTest\nAnnounce")
    _edit(client, admin, guide, "Tag\nTest\nAnnounce widely")
    response = client.get(f"/api/v1/guides/{guide['id']}/revisions/1/diff/3")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["from"] == 1 and body["to"] == 3
    lines = body["diff"].splitlines()
    assert lines[:2] == ["--- revision 1", "+++ revision 3"]
    assert "-Build" in lines and "+Test" in lines
    assert "-Announce" in lines and "+Announce widely" in lines
    assert " Tag" in lines

    backwards = client.get(f"/api/v1/guides/{guide['id']}/revisions/3/diff/1").json()
    assert backwards["from"] == 3 and "+Build" in backwards["diff"].splitlines()
    same = client.get(f"/api/v1/guides/{guide['id']}/revisions/2/diff/2").json()
    assert same == {"from": 2, "to": 2, "diff": ""}


def test_unknown_revision_is_a_problem_404(client, admin, community):
    guide = _guide(client, admin, community)
    for path in ("1/diff/7", "7/diff/1", "0/diff/1"):
        response = client.get(f"/api/v1/guides/{guide['id']}/revisions/{path}")
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")
    assert "Revision 7" in client.get(f"/api/v1/guides/{guide['id']}/revisions/1/diff/7").json()["detail"]


def test_a_drafts_diffs_are_for_those_who_may_see_the_draft(client, admin, people, community):
    author = people.make()
    join(client, admin, community, author)
    draft = _guide(client, author, community, status="draft")
    _edit(client, author, draft, "Tag\nAnnounce")
    path = f"/api/v1/guides/{draft['id']}/revisions/1/diff/2"
    assert client.get(path, headers=author.auth).status_code == 200
    assert client.get(path, headers=admin.auth).status_code == 200
    assert client.get(path).status_code == 404
    stranger = people.make()
    join(client, admin, community, stranger)
    assert client.get(path, headers=stranger.auth).status_code == 404
