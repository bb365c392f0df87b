"""Adapting a guide of another community: attribution, licenses, the upstream's news, merging it, the origin's list."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import join

ORIGINAL = "# Release checklist\n\n1. Tag the release\n2. Write the notes\n3. Announce it\n\nThanks for helping.\n"


@pytest.fixture
def setup(client, admin, people):
    """An origin community with a guide, and a second community whose member adapts it."""

    def community(name: str) -> dict:
        slug = f"{name}-{uuid.uuid4().hex[:6]}"
        response = client.post("/api/v1/communities", json={"slug": slug, "name": name.title()}, headers=admin.auth)
        assert response.status_code == 201, response.text
        return response.json()

    origin, adopter = community("origin"), community("adopter")
    writer, adapter = people.make("writer"), people.make("adapter")
    join(client, admin, origin, writer)
    join(client, admin, adopter, adapter)
    return origin, adopter, writer, adapter


def _publish(client, person, community, **fields):
    body = {"title": "Release checklist", "body_markdown": ORIGINAL, "tags": ["releases"], **fields}
    response = client.post(f"/api/v1/communities/{community['slug']}/guides", json=body, headers=person.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _adapt(client, person, community, uri, **fields):
    body = {"derived_from": uri, **fields}
    return client.post(f"/api/v1/communities/{community['slug']}/guides", json=body, headers=person.auth)


def _edit(client, person, guide_id, **fields):
    url = f"/api/v1/guides/{guide_id}"
    etag = client.get(url, headers=person.auth).headers["etag"]
    response = client.patch(url, json=fields, headers={**person.auth, "If-Match": etag})
    return response


def test_adapting_copies_the_upstream_as_a_draft_with_attribution(client, setup):
    origin, adopter, writer, adapter = setup
    original = _publish(client, writer, origin, license="CC-BY-4.0", summary="How we release")
    response = _adapt(client, adapter, adopter, original["uri"])
    assert response.status_code == 201, response.text
    adapted = response.json()
    assert adapted["status"] == "draft"
    assert adapted["title"] == "Release checklist" and adapted["body_markdown"] == ORIGINAL
    assert adapted["summary"] == "How we release" and adapted["tags"] == ["releases"]
    assert adapted["derived_from"] == original["uri"]
    assert adapted["community"]["slug"] == adopter["slug"]
    assert adapted["upstream"].pop("author_url").endswith(f"/u/{writer.username}")
    assert adapted["upstream"] == {
        "uri": original["uri"], "base_revision": 1, "current_revision": 1, "changed": False, "deleted": False,
        "title": "Release checklist", "url": original["url"], "community": origin["name"],
        "community_url": origin["url"], "instance": "127.0.0.1:8000", "author": writer.username,
        "license": "CC-BY-4.0",
    }  # fmt: skip
    # The attribution stays through the adaptation's own edits.
    edited = _edit(client, adapter, adapted["id"], title="Our release checklist", status="published")
    assert edited.status_code == 200, edited.text
    assert edited.json()["derived_from"] == original["uri"]
    assert edited.json()["upstream"]["title"] == "Release checklist"


def test_an_adaptation_may_start_from_its_own_title_and_text(client, setup):
    origin, adopter, writer, adapter = setup
    original = _publish(client, writer, origin)
    response = _adapt(
        client, adapter, adopter, original["uri"], title="Kurz", body_markdown="Eigener Text", status="published"
    )
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "Kurz" and response.json()["status"] == "published"


@pytest.mark.parametrize("license", ["CC-BY-ND-4.0", "CC-BY-NC-ND-4.0", "LicenseRef-All-Rights-Reserved"])
def test_a_license_forbidding_derivatives_refuses_the_adaptation(client, setup, license):
    origin, adopter, writer, adapter = setup
    original = _publish(client, writer, origin, license=license)
    before = client.get(
        "/api/v1/guides", params={"community": adopter["slug"], "status": "draft"}, headers=adapter.auth
    )
    response = _adapt(client, adapter, adopter, original["uri"])
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"] == [
        {"field": "derived_from", "message": f"the original's license ({license}) does not allow adaptations"}
    ]
    after = client.get("/api/v1/guides", params={"community": adopter["slug"], "status": "draft"}, headers=adapter.auth)
    assert after.json()["items"] == before.json()["items"]


def test_a_share_alike_upstream_keeps_its_license_on_the_adaptation(client, setup):
    origin, adopter, writer, adapter = setup
    original = _publish(client, writer, origin, license="CC-BY-SA-4.0")
    refused = _adapt(client, adapter, adopter, original["uri"], license="CC-BY-4.0")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "license"
    adapted = _adapt(client, adapter, adopter, original["uri"]).json()
    assert adapted["license"] == "CC-BY-SA-4.0"
    later = _edit(client, adapter, adapted["id"], license="MIT")
    assert later.status_code == 422 and "share-alike" in later.json()["detail"]
    assert client.get(f"/api/v1/guides/{adapted['id']}", headers=adapter.auth).json()["license"] == "CC-BY-SA-4.0"


def test_an_unknown_upstream_or_the_same_community_is_refused(client, setup):
    origin, adopter, writer, adapter = setup
    unknown = _adapt(client, adapter, adopter, "https://elsewhere.example/guides/nothing")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "derived_from"
    original = _publish(client, writer, origin)
    same = _adapt(client, writer, origin, original["uri"])
    assert same.status_code == 422 and "another community" in same.json()["detail"]
    outsider = _adapt(client, writer, adopter, original["uri"])
    assert outsider.status_code == 403
    blank = client.post(f"/api/v1/communities/{adopter['slug']}/guides", json={}, headers=adapter.auth)
    assert blank.status_code == 422


def test_upstream_change_is_seen_merged_cleanly_and_dismissed(client, setup):
    origin, adopter, writer, adapter = setup
    original = _publish(client, writer, origin)
    adapted = _adapt(client, adapter, adopter, original["uri"], status="published").json()
    ours = ORIGINAL.replace("Thanks for helping.", "Danke fürs Helfen.")
    assert _edit(client, adapter, adapted["id"], body_markdown=ours).status_code == 200
    url = f"/api/v1/guides/{adapted['id']}"
    assert client.get(f"{url}/upstream").json()["changed"] is False

    theirs = ORIGINAL.replace("1. Tag the release", "1. Run the tests\n2. Tag the release").replace(
        "2. Write", "3. Write"
    )
    theirs = theirs.replace("3. Announce", "4. Announce")
    assert _edit(client, writer, original["id"], body_markdown=theirs).status_code == 200
    guide = client.get(url).json()
    assert guide["upstream"]["changed"] is True
    assert guide["upstream"]["base_revision"] == 1 and guide["upstream"]["current_revision"] == 2
    change = client.get(f"{url}/upstream").json()
    assert change["changed"] is True and change["conflicts"] == 0
    assert "+1. Run the tests" in change["diff"] and "-1. Tag the release" in change["diff"]
    assert "Danke fürs Helfen." in change["merged_markdown"] and "Run the tests" in change["merged_markdown"]

    merged = client.post(f"{url}/upstream/merge", headers=adapter.auth)
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert "1. Run the tests" in body["body_markdown"] and "Danke fürs Helfen." in body["body_markdown"]
    assert body["upstream"]["base_revision"] == 2
    assert body["upstream"]["changed"] is False
    assert client.post(f"{url}/upstream/merge", headers=adapter.auth).status_code == 409  # nothing new

    assert _edit(client, writer, original["id"], summary="Now with tests").status_code == 200
    assert client.get(url).json()["upstream"]["changed"] is True
    assert client.post(f"{url}/upstream/dismiss", headers=writer.auth).status_code == 403
    dismissed = client.post(f"{url}/upstream/dismiss", headers=adapter.auth)
    assert dismissed.status_code == 200 and dismissed.json()["changed"] is False
    assert client.get(url).json()["upstream"]["changed"] is False
    assert _edit(client, writer, original["id"], summary="Again").status_code == 200
    assert client.get(url).json()["upstream"]["changed"] is True  # until the next change


def test_a_conflicting_merge_is_resolved_by_hand_before_it_saves(client, setup):
    origin, adopter, writer, adapter = setup
    original = _publish(client, writer, origin)
    adapted = _adapt(client, adapter, adopter, original["uri"], status="published").json()
    url = f"/api/v1/guides/{adapted['id']}"
    assert (
        _edit(client, adapter, adapted["id"], body_markdown=ORIGINAL.replace("Write the notes", "Notes")).status_code
        == 200
    )
    assert (
        _edit(
            client, writer, original["id"], body_markdown=ORIGINAL.replace("Write the notes", "Write the changelog")
        ).status_code
        == 200
    )

    refused = client.post(f"{url}/upstream/merge", headers=adapter.auth)
    assert refused.status_code == 409 and "upstream_revision: 2" in refused.json()["detail"]
    assert client.get(url).json()["revision"] == 2  # nothing saved
    change = client.get(f"{url}/upstream").json()
    assert change["conflicts"] == 1
    merged = change["merged_markdown"]
    assert "<<<<<<< your text\n2. Notes\n=======\n2. Write the changelog\n>>>>>>> upstream revision 2\n" in merged

    with_markers = _edit(client, adapter, adapted["id"], body_markdown=merged, upstream_revision=2)
    assert with_markers.status_code == 422
    assert with_markers.json()["errors"][0]["field"] == "body_markdown"
    assert "conflict blocks" in with_markers.json()["errors"][0]["message"]
    resolved = merged.replace("<<<<<<< your text\n2. Notes\n=======\n", "").replace(">>>>>>> upstream revision 2\n", "")
    saved = _edit(client, adapter, adapted["id"], body_markdown=resolved, upstream_revision=2)
    assert saved.status_code == 200, saved.text
    assert saved.json()["upstream"]["base_revision"] == 2 and saved.json()["upstream"]["changed"] is False
    stale = _edit(client, adapter, adapted["id"], body_markdown=resolved + "x", upstream_revision=1)
    assert stale.status_code == 409


def test_a_deleted_upstream_leaves_the_adaptation_its_text(client, setup):
    origin, adopter, writer, adapter = setup
    original = _publish(client, writer, origin)
    adapted = _adapt(client, adapter, adopter, original["uri"], status="published").json()
    assert client.delete(f"/api/v1/guides/{original['id']}", headers=writer.auth).status_code == 204
    guide = client.get(f"/api/v1/guides/{adapted['id']}").json()
    assert guide["body_markdown"] == ORIGINAL
    assert guide["upstream"]["deleted"] is True and guide["upstream"]["changed"] is False
    assert guide["upstream"]["title"] == "Release checklist"  # the attribution outlives the original
    assert client.get(f"/api/v1/guides/{adapted['id']}/upstream").json()["deleted"] is True
    assert client.post(f"/api/v1/guides/{adapted['id']}/upstream/merge", headers=adapter.auth).status_code == 409


def test_the_origin_lists_its_published_adaptations(client, setup):
    origin, adopter, writer, adapter = setup
    original = _publish(client, writer, origin)
    draft = _adapt(client, adapter, adopter, original["uri"]).json()
    assert client.get(f"/api/v1/guides/{original['id']}").json()["adaptations"] == []  # drafts are nobody's news
    assert _edit(client, adapter, draft["id"], status="published").status_code == 200
    listed = client.get(f"/api/v1/guides/{original['id']}").json()["adaptations"]
    assert listed == [
        {
            "uri": draft["uri"], "url": draft["url"], "title": "Release checklist", "instance": "127.0.0.1:8000",
            "community": draft["community"],
        }
    ]  # fmt: skip
    page = client.get("/api/v1/guides", params={"community": origin["slug"]}).json()["items"]
    assert next(g for g in page if g["id"] == original["id"])["adaptations"] == listed
    assert (
        client.get("/api/v1/guides", params={"community": adopter["slug"]}).json()["items"][0]["upstream"]["uri"]
        == original["uri"]
    )
    assert client.get(f"/api/v1/guides/{original['id']}/upstream").status_code == 404
