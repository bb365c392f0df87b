from __future__ import annotations

AP = {"Accept": "application/activity+json"}
LD = {"Accept": 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'}


def _guide(client, admin, community, **fields):
    body = {"title": "Federated guide", "body_markdown": "Hello *fediverse*", "tags": ["fedi"], **fields}
    response = client.post(f"/api/v1/communities/{community['slug']}/guides", json=body, headers=admin.auth)
    assert response.status_code == 201
    return response.json()


def test_webfinger_finds_instance_community_and_person(client, admin, community):
    for name, actor in [
        ("127.0.0.1:8000", "http://127.0.0.1:8000/actor"),
        (community["slug"], community["uri"]),
        (admin.username, f"http://127.0.0.1:8000/u/{admin.username}"),
    ]:
        response = client.get(f"/.well-known/webfinger?resource=acct:{name}@127.0.0.1:8000")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith("application/jrd+json")
        links = {link["rel"]: link for link in response.json()["links"]}
        assert links["self"] == {"rel": "self", "type": "application/activity+json", "href": actor}
    assert client.get("/.well-known/webfinger?resource=acct:nobody@127.0.0.1:8000").status_code == 404
    assert client.get("/.well-known/webfinger?resource=acct:x@elsewhere.example").status_code == 404
    assert client.get("/.well-known/webfinger?resource=garbage").status_code == 400
    assert client.get("/.well-known/webfinger").status_code == 400


def test_nodeinfo(client):
    links = client.get("/.well-known/nodeinfo").json()["links"]
    assert links[0]["href"] == "http://127.0.0.1:8000/nodeinfo/2.1"
    info = client.get("/nodeinfo/2.1").json()
    assert info["version"] == "2.1" and info["software"]["name"] == "kith"
    assert info["protocols"] == ["activitypub"]


def test_actors_have_keys_inboxes_and_shared_inbox(client, admin, community):
    for url, kind in [
        ("/actor", "Application"),
        (f"/c/{community['slug']}", "Group"),
        (f"/u/{admin.username}", "Person"),
    ]:
        for accept in (AP, LD):
            response = client.get(url, headers=accept)
            assert response.status_code == 200, url
            assert response.headers["content-type"].startswith("application/activity+json")
            actor = response.json()
            assert actor["type"] == kind
            assert actor["id"] == f"http://127.0.0.1:8000{url}"
            assert actor["publicKey"]["id"] == actor["id"] + "#main-key"
            assert actor["publicKey"]["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")
            assert actor["endpoints"]["sharedInbox"] == "http://127.0.0.1:8000/inbox"
            assert {"inbox", "outbox", "followers"} <= set(actor)
    again = client.get("/actor", headers=AP).json()["publicKey"]["publicKeyPem"]
    assert again == client.get("/actor", headers=AP).json()["publicKey"]["publicKeyPem"]


def test_guide_negotiates_and_tombstones(client, admin, community):
    guide = _guide(client, admin, community)
    article = client.get(f"/guides/{guide['id']}", headers=AP).json()
    assert article["type"] == "Article" and article["id"] == guide["uri"]
    assert article["source"] == {"content": "Hello *fediverse*", "mediaType": "text/markdown"}
    assert article["audience"] == community["uri"]
    assert article["attributedTo"] == [guide["author"]["uri"], community["uri"]]
    assert article["tag"] == [{"type": "Hashtag", "name": "#fedi"}]
    assert article["license"] == "CC-BY-4.0"
    html = client.get(f"/guides/{guide['id']}", follow_redirects=False)
    assert html.status_code in (302, 303, 307)
    client.delete(f"/api/v1/guides/{guide['id']}", headers=admin.auth)
    gone = client.get(f"/guides/{guide['id']}", headers=AP)
    assert gone.status_code == 410
    assert gone.json()["type"] == "Tombstone" and gone.json()["formerType"] == "Article"


def test_drafts_are_not_served(client, admin, community):
    draft = _guide(client, admin, community, status="draft")
    assert client.get(f"/guides/{draft['id']}", headers=AP).status_code == 404


def test_outbox_pages_through_public_activities(client, admin, community):
    guide = _guide(client, admin, community)
    client.patch(f"/api/v1/guides/{guide['id']}", json={"title": "Renamed"}, headers=admin.auth)
    collection = client.get(f"/c/{community['slug']}/outbox", headers=AP).json()
    assert collection["type"] == "OrderedCollection"
    assert collection["totalItems"] == 3  # Create community, Create guide, Update guide
    page = client.get(collection["first"].replace("http://127.0.0.1:8000", ""), headers=AP).json()
    assert [a["type"] for a in page["orderedItems"]] == ["Update", "Create", "Create"]
    assert page["orderedItems"][0]["object"]["name"] == "Renamed"
    instance = client.get("/outbox", headers=AP).json()
    assert instance["totalItems"] >= 3


def test_outbox_pages_of_long_guides_stay_well_under_what_a_peer_reads(client, admin, community):
    # 100 guides of ~100 KB would make a 20 MB page, which a peer refuses (1 MB): pages stop at about 512 KB.
    body = "\n\n".join(f"Paragraph {n} " + "about worm bins and bokashi " * 150 for n in range(24))
    created = [_guide(client, admin, community, title=f"Long guide {n}", body_markdown=body)["uri"] for n in range(5)]
    collection = client.get(f"/c/{community['slug']}/outbox", headers=AP).json()
    url, seen, sizes = collection["first"], [], []
    while url:
        response = client.get(url.replace("http://127.0.0.1:8000", ""), headers=AP)
        assert response.status_code == 200
        sizes.append(len(response.content))
        page = response.json()
        seen.extend(item["object"]["id"] for item in page["orderedItems"] if item["type"] == "Create")
        url = page.get("next")
    assert seen == [*reversed(created), community["uri"]]  # each once, newest first, none skipped
    assert len(sizes) >= 3 and max(sizes) <= 600_000


def test_kith_context_declares_extensions(client):
    context = client.get("/ns").json()["@context"]
    for term in ("MentorshipOffer", "license", "topics", "capacity", "seatsTaken", "color"):
        assert term in context
