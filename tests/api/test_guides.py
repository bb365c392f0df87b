from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.conftest import join
from tests.support.html import assert_safe, elements


def _create(client, person, community, **fields):
    body = {"title": "Onboarding maintainers", "body_markdown": "# Hello\n\nWelcome.", **fields}
    return client.post(f"/api/v1/communities/{community['slug']}/guides", json=body, headers=person.auth)


def test_member_publishes_guide_with_rendered_html(client, admin, people, community):
    member = people.make()
    join(client, admin, community, member)
    response = _create(client, member, community, tags=["Onboarding", "#people"], summary="How we do it")
    assert response.status_code == 201, response.text
    guide = response.json()
    assert guide["body_html"].startswith("<h1>Hello</h1>")
    assert guide["tags"] == ["onboarding", "people"]
    assert guide["license"] == "CC-BY-4.0"
    assert guide["status"] == "published"
    assert guide["revision"] == 1
    assert guide["author"]["username"] == member.username
    assert guide["community"]["slug"] == community["slug"]
    assert guide["local"] is True
    assert guide["origin"] == {
        "instance": "127.0.0.1:8000",
        "uri": guide["uri"],
        "url": guide["url"],
        "former_peer": False,
    }
    assert guide["uri"] == f"http://127.0.0.1:8000/guides/{guide['id']}"
    assert guide["url"] == f"http://127.0.0.1:8000/c/{community['slug']}/guides/onboarding-maintainers"
    assert response.headers["etag"]


def test_non_member_cannot_publish(client, people, community):
    assert _create(client, people.make(), community).status_code == 403


def test_read_token_cannot_write(client, admin, people, community):
    reader = people.make(scope="read")
    join(client, admin, community, reader)
    assert _create(client, reader, community).status_code == 403


def test_script_and_javascript_urls_never_survive(client, admin, community):
    body = (
        '<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror="alert(1)">'
        ' <iframe src="//e"></iframe>\n\n[ok](https://example.org) ![pic](javascript:alert(2))'
    )
    guide = _create(client, admin, community, body_markdown=body).json()
    assert_safe(guide["body_html"])
    links = [attrs.get("href") for tag, attrs in elements(guide["body_html"]) if tag == "a"]
    assert "https://example.org" in links


def test_edit_keeps_revisions_and_etag_guards_conflicts(client, admin, community):
    guide = _create(client, admin, community).json()
    url = f"/api/v1/guides/{guide['id']}"
    etag = client.get(url).headers["etag"]
    edited = client.patch(
        url, json={"body_markdown": "New text", "summary_of_change": "reworded"},
        headers={**admin.auth, "If-Match": etag},
    )  # fmt: skip
    assert edited.status_code == 200
    assert edited.json()["revision"] == 2
    assert edited.headers["etag"] != etag
    stale = client.patch(url, json={"title": "Lost update"}, headers={**admin.auth, "If-Match": etag})
    assert stale.status_code == 412
    assert client.get(url).json()["title"] == "Onboarding maintainers"
    revisions = client.get(f"{url}/revisions").json()
    assert [r["number"] for r in revisions] == [2, 1]
    assert revisions[0]["summary_of_change"] == "reworded"
    first = client.get(f"{url}/revisions/1").json()
    assert first["body_markdown"] == "# Hello\n\nWelcome."
    assert client.get(f"{url}/revisions/9").status_code == 404


def test_author_edits_own_guide_but_not_others(client, admin, people, community):
    author, other = people.make("author"), people.make("other")
    join(client, admin, community, author)
    join(client, admin, community, other)
    guide = _create(client, author, community).json()
    url = f"/api/v1/guides/{guide['id']}"
    assert client.patch(url, json={"title": "Mine"}, headers=other.auth).status_code == 403
    assert client.patch(url, json={"title": "Mine"}, headers=author.auth).status_code == 200
    assert client.delete(url, headers=other.auth).status_code == 403


def test_moderator_edits_any_guide_in_community(client, admin, people, community):
    author, moderator = people.make("author"), people.make("mod")
    join(client, admin, community, author)
    join(client, admin, community, moderator, "moderator")
    guide = _create(client, author, community).json()
    response = client.patch(f"/api/v1/guides/{guide['id']}", json={"tags": ["x"]}, headers=moderator.auth)
    assert response.status_code == 200


def test_drafts_are_visible_only_to_author_and_moderators(client, admin, people, community):
    author, stranger = people.make("author"), people.make("stranger")
    join(client, admin, community, author)
    draft = _create(client, author, community, status="draft", title="Secret plan").json()
    url = f"/api/v1/guides/{draft['id']}"
    assert client.get(url).status_code == 404
    assert client.get(url, headers=stranger.auth).status_code == 404
    assert client.get(url, headers=author.auth).status_code == 200
    assert client.get(url, headers=admin.auth).status_code == 200
    listed = client.get(f"/api/v1/guides?status=draft&community={community['slug']}", headers=author.auth)
    assert [g["id"] for g in listed.json()["items"]] == [draft["id"]]
    assert client.get(f"/api/v1/guides?status=draft&community={community['slug']}").json()["items"] == []
    public = client.get(f"/api/v1/guides?community={community['slug']}").json()["items"]
    assert draft["id"] not in {g["id"] for g in public}


def test_delete_is_204_then_404(client, admin, community):
    guide = _create(client, admin, community).json()
    assert client.delete(f"/api/v1/guides/{guide['id']}", headers=admin.auth).status_code == 204
    assert client.get(f"/api/v1/guides/{guide['id']}").status_code == 404


def test_filters_by_community_tag_and_author(client, admin, people, community):
    author = people.make("author")
    join(client, admin, community, author)
    tagged = _create(client, author, community, title="Tagged", tags=["julia"]).json()
    _create(client, admin, community, title="Other")
    by_tag = client.get(f"/api/v1/guides?community={community['slug']}&tag=julia").json()["items"]
    assert [g["id"] for g in by_tag] == [tagged["id"]]
    by_author = client.get(f"/api/v1/guides?author={author.username}").json()["items"]
    assert [g["id"] for g in by_author] == [tagged["id"]]
    assert client.get("/api/v1/guides?tag=100%25_").json()["items"] == []


def test_slugs_stay_unique_within_community(client, admin, community):
    first = _create(client, admin, community, title="Same title").json()
    second = _create(client, admin, community, title="Same title").json()
    assert first["slug"] == "same-title" and second["slug"] == "same-title-2"


def test_oversize_and_invalid_fields_are_rejected_and_change_nothing(client, admin, community):
    before = client.get(f"/api/v1/guides?community={community['slug']}&limit=100").json()["items"]
    cases = [
        {"title": "x" * 201, "body_markdown": "b"},
        {"title": "t", "body_markdown": "b" * 200_001},
        {"title": "t", "body_markdown": "b", "tags": [f"t{i}" for i in range(21)]},
        {"title": "t", "body_markdown": "b", "status": "secret"},
        {"title": 5, "body_markdown": "b"},
        {"title": "   ", "body_markdown": "b"},
        {"body_markdown": "b"},
        {"title": "t", "body_markdown": "b", "derived_from": "javascript:alert(1)"},
    ]
    for body in cases:
        response = client.post(f"/api/v1/communities/{community['slug']}/guides", json=body, headers=admin.auth)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"], body
    after = client.get(f"/api/v1/guides?community={community['slug']}&limit=100").json()["items"]
    assert after == before


def test_body_over_one_megabyte_is_413(client, admin, community):
    response = client.post(
        f"/api/v1/communities/{community['slug']}/guides",
        content=b'{"title": "big", "body_markdown": "' + b"a" * 1_100_000 + b'"}',
        headers={**admin.auth, "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 413
    assert response.json()["detail"] == "The request body is larger than 1 MB."


def test_malformed_json_is_400(client, admin, community):
    response = client.post(
        f"/api/v1/communities/{community['slug']}/guides", content=b"{not json",
        headers={**admin.auth, "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


def test_unknown_guide_is_404_problem(client):
    response = client.get("/api/v1/guides/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["title"] == "Not found"


def _post_json_bytes(client, person, community, content: bytes):
    """A guide created from a JSON body exactly as written, escapes included."""
    return client.post(
        f"/api/v1/communities/{community['slug']}/guides", content=content,
        headers={**person.auth, "Content-Type": "application/json"},
    )  # fmt: skip


def test_nul_characters_are_refused_before_reaching_the_database(client, admin, community):
    response = _post_json_bytes(client, admin, community, b'{"title": "a\\u0000b", "body_markdown": "x"}')
    assert response.status_code == 422
    assert client.get("/api/v1/guides?community=a%00b").status_code == 422
    assert client.get("/api/v1/guides?tag=%00").status_code == 422


def test_text_about_the_nul_escape_is_not_a_nul(client, admin, community):
    """`\\u0000` in JSON is a backslash and five characters, which a guide about escapes may well contain."""
    body = b'{"title": "Escapes", "body_markdown": "Write `\\\\u0000` for NUL, never `\\\\\\\\u0000`."}'
    response = _post_json_bytes(client, admin, community, body)
    assert response.status_code == 201, response.text
    assert response.json()["body_markdown"] == "Write `\\u0000` for NUL, never `\\\\u0000`."
    refused = _post_json_bytes(
        client, admin, community, b'{"title": "Escapes", "body_markdown": "one \\\\\\u0000 too many"}'
    )
    assert refused.status_code == 422


def test_nul_in_a_path_is_not_found_not_a_server_error(client):
    assert client.get("/api/v1/communities/se%00ed").status_code == 404
    assert client.get("/api/v1/communities/seed/members/ad%00min").status_code in (404, 405)
    assert client.get("/c/se%00ed", headers={"Accept": "application/activity+json"}).status_code == 404
    assert client.get("/u/ad%00min", headers={"Accept": "application/activity+json"}).status_code == 404


def test_reads_give_what_the_writes_gave(client, admin, people, community):
    """Reads select columns and build the schema from them; writes return the loaded Guide. Same JSON, same ETag."""
    author = people.make("author")
    join(client, admin, community, author)
    elsewhere = {"slug": f"e-{community['slug']}", "name": "Elsewhere"}
    assert client.post("/api/v1/communities", json=elsewhere, headers=admin.auth).status_code == 201
    upstream = _create(client, admin, elsewhere).json()  # what the guide adapts, known here as adaptations must be
    body = {"summary": "Why and how", "tags": ["Onboarding", "people"], "derived_from": upstream["uri"]}
    created = _create(client, author, community, status="published", **body)
    edited = client.patch(
        f"/api/v1/guides/{created.json()['id']}", json={"title": "Onboarding, again", "summary_of_change": "t"},
        headers={**author.auth, "If-Match": created.headers["etag"]},
    )  # fmt: skip
    assert edited.status_code == 200, edited.text
    fetched = client.get(f"/api/v1/guides/{edited.json()['id']}")
    assert fetched.json() == edited.json()
    assert fetched.headers["etag"] == edited.headers["etag"]
    listed = client.get(f"/api/v1/guides?community={community['slug']}&author={author.username}").json()["items"]
    assert listed == [edited.json()]
    draft = _create(client, author, community, status="draft", title="Not yet")
    assert client.get(f"/api/v1/guides/{draft.json()['id']}", headers=author.auth).json() == draft.json()
    drafts = client.get(f"/api/v1/guides?status=draft&community={community['slug']}", headers=author.auth).json()
    assert drafts["items"] == [draft.json()]


def test_moderator_reads_drafts_of_others(client, admin, people, community):
    author, moderator, member = people.make("author"), people.make("mod"), people.make("member")
    join(client, admin, community, author)
    join(client, admin, community, moderator, role="moderator")
    join(client, admin, community, member)
    draft = _create(client, author, community, status="draft").json()
    assert client.get(f"/api/v1/guides/{draft['id']}", headers=moderator.auth).status_code == 200
    assert client.get(f"/api/v1/guides/{draft['id']}", headers=member.auth).status_code == 404
    listed = client.get(f"/api/v1/guides?status=draft&community={community['slug']}", headers=moderator.auth)
    assert [g["id"] for g in listed.json()["items"]] == [draft["id"]]
    listed = client.get(f"/api/v1/guides?status=draft&community={community['slug']}", headers=member.auth)
    assert listed.json()["items"] == []


def test_list_pages_by_cursor_with_a_link_header(client, admin, community):
    ids = [_create(client, admin, community, title=f"Page {n}").json()["id"] for n in range(3)]
    first = client.get(f"/api/v1/guides?community={community['slug']}&limit=2")
    page = first.json()
    assert [g["id"] for g in page["items"]] == ids[:0:-1]
    link, rel = first.headers["link"].split("; ")
    assert rel == 'rel="next"' and link.startswith("<http://127.0.0.1:8000/api/v1/guides?") and link.endswith(">")
    query = parse_qs(urlsplit(link[1:-1]).query)
    assert query == {"community": [community["slug"]], "limit": ["2"], "cursor": [page["next_cursor"]]}
    # The other parameters keep the order they were sent in; the cursor comes last.
    assert link.endswith(f"?community={community['slug']}&limit=2&cursor={page['next_cursor']}>")
    second = client.get(f"/api/v1/guides?community={community['slug']}&limit=2&cursor={page['next_cursor']}")
    assert [g["id"] for g in second.json()["items"]] == ids[:1]
    assert second.json()["next_cursor"] is None
    assert "link" not in second.headers
    assert client.get("/api/v1/guides?cursor=not-a-cursor").status_code == 422
    assert client.get("/api/v1/guides?limit=0").status_code == 422


def test_reads_refuse_a_bad_token_even_for_public_guides(client, admin, community):
    guide = _create(client, admin, community).json()
    for url in (f"/api/v1/guides/{guide['id']}", "/api/v1/guides"):
        for header in ("Bearer kith_not-a-token", "Basic YTpi", "Bearer "):
            response = client.get(url, headers={"Authorization": header})
            assert response.status_code == 401, (url, header)
            assert response.headers["www-authenticate"] == 'Bearer realm="kith"'
        assert client.get(url, headers=admin.auth).status_code == 200


def test_fetch_all_gives_what_execute_gives_and_never_writes(settings, client, admin, community):
    """The reads' fetch_all (on SQLite: a pysqlite reader thread, raw cursor, SQLAlchemy's own type processors)."""
    import asyncio
    import uuid

    import pytest
    from sqlalchemy import column, insert, select, table
    from sqlalchemy.exc import DBAPIError

    from server.db import create_engine, fetch_all
    from server.guides.queries import _ONE, _list_statement
    from server.models import Community
    from server.pagination import keyset_params

    # A row with every kind of column filled, an adaptation's derived_from too; created here, so the test reads
    # what it made whatever ran before it.
    other = client.post("/api/v1/communities", json={"slug": f"up-{uuid.uuid4().hex[:8]}", "name": "Upstream"},
                        headers=admin.auth)  # fmt: skip
    assert other.status_code == 201, other.text
    base = _create(client, admin, other.json(), title="Upstream")
    assert base.status_code == 201, base.text
    adapted = _create(client, admin, community, tags=["a", "b"], derived_from=base.json()["uri"])
    assert adapted.status_code == 201, adapted.text
    statement = _list_statement("", "published", "all", None, None, None, None, None, False)
    params = keyset_params(5, None)

    async def compare() -> None:
        engine = create_engine(settings.database_url)
        try:
            rows = await fetch_all(engine, statement, params)
            async with engine.connect() as connection:
                expected = (await connection.execute(statement, params)).all()
            assert [tuple(row) for row in rows] == [tuple(row) for row in expected] and rows
            assert [list(map(type, row)) for row in rows] == [list(map(type, row)) for row in expected]
            one = await fetch_all(engine, _ONE, {"id": rows[0][0]})
            assert [tuple(row) for row in one] == [(*expected[0], *one[0][-2:])]
            for quick in (False, True):
                with pytest.raises(DBAPIError):  # what execute raises, SQLAlchemy's wrapper of the driver's error
                    await fetch_all(engine, select(table("missing", column("x"))), quick=quick)
            if settings.database_url.startswith("sqlite"):
                write = insert(Community).values(slug="x", name="x", instance="x", uri="x", url="x")
                with pytest.raises(Exception, match="readonly"):
                    await fetch_all(engine, write)  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    asyncio.run(compare())


def test_fetch_all_into_builds_each_row_and_reuses_only_an_unchanged_one(settings, client, admin, community):
    """`into` gives what it makes of each row; on SQLite an unchanged row's object is reused, and a row that
    changed is built again, so nothing read is stale."""
    import asyncio

    from server.communities.queries import ONE_BY_REF, community_from_row
    from server.communities.service import CommunityService
    from server.db import create_engine, fetch_all

    built: list[str] = []

    def into(row):
        built.append(row[3])
        return community_from_row(row)

    params = CommunityService.ref_params_for(settings, community["slug"])

    async def read():
        engine = create_engine(settings.database_url)
        try:
            first = await fetch_all(engine, ONE_BY_REF, params, quick=True, into=into)
            again = await fetch_all(engine, ONE_BY_REF, params, quick=True, into=into)
            async with engine.connect() as connection:
                expected = [community_from_row(row) for row in await connection.execute(ONE_BY_REF, params)]
            return first, again, expected
        finally:
            await engine.dispose()

    first, again, expected = asyncio.run(read())
    assert first == again == expected and len(first) == 1
    if settings.database_url.startswith("sqlite"):
        assert again[0] is first[0] and built == [community["slug"]]
    response = client.patch(
        f"/api/v1/communities/{community['slug']}", json={"description": "Changed."}, headers=admin.auth
    )
    assert response.status_code == 200, response.text
    changed, _, expected = asyncio.run(read())
    assert changed == expected and changed[0].description == "Changed." and changed[0] != first[0]


def test_quick_reads_on_a_kept_connection_see_every_commit(tmp_path):
    """Each thread keeps its quick-read connection: a read after another connection's commit still sees it."""
    import asyncio
    import sqlite3

    from sqlalchemy import column, select, table

    from server.db import create_engine, fetch_all

    path = tmp_path / "kept.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x INTEGER)")
    statement = select(table("t", column("x"))).order_by(column("x"))

    async def reads() -> list[list[int]]:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        seen = []
        try:
            for value in (1, 2, 3):
                writer.execute("INSERT INTO t VALUES (?)", (value,))
                seen.append([row[0] for row in await fetch_all(engine, statement, quick=True)])
        finally:
            await engine.dispose()
        return seen

    try:
        assert asyncio.run(reads()) == [[1], [1, 2], [1, 2, 3]]
        assert asyncio.run(reads())[-1] == [1, 1, 2, 2, 3, 3]  # a new engine after dispose reads afresh
    finally:
        writer.close()


def test_a_quick_read_that_finds_sqlite_locked_waits_off_the_event_loop(tmp_path):
    """fetch_all(quick=True) reads on the event loop, but never waits there: locked out, it goes to the reader
    thread, which waits for the lock while the loop goes on."""
    import asyncio
    import sqlite3

    from sqlalchemy import column, select, table

    from server.db import create_engine, fetch_all

    path = tmp_path / "locked.db"
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("PRAGMA journal_mode=WAL")
    locker.execute("CREATE TABLE t (x INTEGER)")
    locker.execute("INSERT INTO t VALUES (1)")
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")  # until it lets go, nobody else may even read
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute("INSERT INTO t VALUES (2)")

    def release() -> None:
        locker.execute("COMMIT")
        locker.execute("PRAGMA locking_mode=NORMAL")
        locker.execute("SELECT count(*) FROM t").fetchall()  # the exclusive lock goes at the next access

    async def read() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        asyncio.get_running_loop().call_later(0.5, release)
        try:
            rows = await fetch_all(engine, select(table("t", column("x"))).order_by(column("x")), quick=True)
        finally:
            ticker.cancel()
            await engine.dispose()
        assert [tuple(row) for row in rows] == [(1,), (2,)]  # read after the lock went, so with the second row
        assert ticks >= 10  # the loop ran all the while

    try:
        asyncio.run(read())
    finally:
        locker.close()
