"""A community exported to an archive and imported into another database: the same guides, history, offers and
members; hostile archives refused with nothing created; the API's permissions; the command line."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from litestar.testing import TestClient
from sqlalchemy import func, insert, select

from server.app import create_app
from server.archive import format as fmt
from server.models import Activity, Community, Guide, GuideRevision, Job, Membership, User
from server.refs import key_of
from server.settings import Settings
from tests.conftest import ROOT, People, Person, join, migrated_database
from tests.support.accounts import password_works, with_session

SCHEMAS = ROOT / "docs" / "export-schemas"


@pytest.fixture(scope="module")
def target(settings: Settings, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A second instance on an empty database of the same backend, at the same address: what it exports again
    is comparable file for file with what it imported."""
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    with migrated_database(backend, tmp_path_factory.mktemp("target")) as url:
        second = replace(settings, database_url=url, data_dir=tmp_path_factory.mktemp("target-data"))
        with TestClient(app=create_app(second), base_url=second.base_url) as client:
            yield client


@pytest.fixture(scope="module")
def target_admin(target: TestClient) -> Person:
    return People(target.app.state.settings).make("admin", admin=True)


def _export(client: TestClient, slug: str, person: Person) -> bytes:
    response = client.get(f"/api/v1/communities/{slug}/export", headers=person.auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/gzip")
    return response.content


def _import(client: TestClient, archive: bytes, person: Person, **params: str):
    return client.post(
        "/api/v1/communities/import", content=archive, params=params,
        headers={**person.auth, "Content-Type": "application/gzip"},
    )  # fmt: skip


def _files(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _content(files: dict[str, bytes]) -> dict[str, str]:
    """The checksum of every file that holds content: all but the manifest (its id and date are the export's)
    and the origin files (they name the instance's own URIs)."""
    return {
        path: hashlib.sha256(data).hexdigest()
        for path, data in files.items()
        if path != fmt.MANIFEST and not path.endswith("/origin.json")
    }


def _pack(files: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in files:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return out.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _repack(archive: bytes, change: Callable[[dict[str, bytes]], None], *, rehash: bool = True) -> bytes:
    """The archive with its files changed; with `rehash`, a manifest that matches them (a forged archive)."""
    files = _files(archive)
    change(files)
    if rehash:
        manifest = json.loads(files[fmt.MANIFEST])
        manifest["files"] = [
            {"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
            for p, d in files.items()
            if p != fmt.MANIFEST
        ]
        manifest["archive_id"] = str(uuid.uuid4())
        files[fmt.MANIFEST] = json.dumps(manifest).encode()
    return _pack([_file(p, d) for p, d in files.items()])


def _count(client: TestClient, model) -> int:  # type: ignore[no-untyped-def]
    async def work(session) -> int:  # type: ignore[no-untyped-def]
        return await session.scalar(select(func.count()).select_from(model)) or 0

    return with_session(client.app.state.settings, work)


def _counts(client: TestClient) -> tuple[int, ...]:
    return tuple(_count(client, model) for model in (Community, Guide, GuideRevision, User, Membership, Activity))


@pytest.fixture(scope="module")
def populated(client: TestClient, admin: Person, people: People) -> dict:
    """A community with a moderator, a member, guides with several revisions (one a draft), and an offer."""
    slug = f"arc-{uuid.uuid4().hex[:8]}"
    created = client.post(
        "/api/v1/communities",
        json={"slug": slug, "name": "Archive Club", "description": "We keep things.", "color": "#aa3355",
              "links": [{"title": "Home", "url": "https://example.org/home"}]},
        headers=admin.auth,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    community = created.json()
    moderator, member = people.make("mod"), people.make("mem")
    join(client, admin, community, moderator, "moderator")
    join(client, admin, community, member)
    guides = []
    for n, author in enumerate((member, moderator, member)):
        body = {"title": f"Guide {n}", "body_markdown": f"# Step {n}\n\nDo <script>alert(1)</script> this.",
                "tags": ["tools", f"t{n}"], "license": "CC-BY-SA-4.0"}  # fmt: skip
        if n == 2:
            body["status"] = "draft"
        response = client.post(f"/api/v1/communities/{slug}/guides", json=body, headers=author.auth)
        assert response.status_code == 201, response.text
        guides.append(response.json())
    for revision in range(2, 4):
        response = client.patch(
            f"/api/v1/guides/{guides[0]['id']}",
            json={"body_markdown": f"Revised {revision}", "summary_of_change": f"change {revision}"},
            headers=moderator.auth if revision == 2 else member.auth,
        )
        assert response.status_code == 200, response.text
    offer = client.post(
        f"/api/v1/communities/{slug}/mentorship/offers",
        json={"title": "Pairing", "description_markdown": "Ask me *anything*", "topics": ["Python"],
              "format": "group", "capacity": 3, "languages": ["en"], "availability": "Fridays"},
        headers=member.auth,
    )  # fmt: skip
    assert offer.status_code == 201, offer.text
    return {"slug": slug, "moderator": moderator, "member": member, "guides": guides}


@pytest.fixture(scope="module")
def exported(client: TestClient, populated: dict) -> bytes:
    return _export(client, populated["slug"], populated["moderator"])


def test_an_export_holds_the_community_its_guides_history_offers_and_members(exported: bytes, populated: dict):
    files = _files(exported)
    slug = populated["slug"]
    community = json.loads(files["community.json"])
    assert (community["slug"], community["name"], community["color"]) == (slug, "Archive Club", "#aa3355")
    assert community["uri"].endswith(f"/c/{slug}") and community["links"][0]["url"] == "https://example.org/home"
    members = {m["person"]["username"]: m["role"] for m in json.loads(files["members.json"])["members"]}
    assert members[populated["moderator"].username] == "moderator"
    assert members[populated["member"].username] == "member"
    guide = json.loads(files["guides/guide-0/guide.json"])
    assert guide["revision"] == 3 and guide["license"] == "CC-BY-SA-4.0" and guide["tags"] == ["tools", "t0"]
    assert guide["author"]["username"] == populated["member"].username and guide["author"]["local"] is True
    assert files["guides/guide-0/revisions/1.md"].startswith(b"# Step 0")
    assert files["guides/guide-0/revisions/3.md"] == b"Revised 3"
    second = json.loads(files["guides/guide-0/revisions/2.json"])
    assert second["summary_of_change"] == "change 2" and second["author"]["username"] == populated["moderator"].username
    assert json.loads(files["guides/guide-2/guide.json"])["status"] == "draft"
    assert json.loads(files["offers/1/offer.json"])["topics"] == ["python"]
    manifest = json.loads(files["manifest.json"])
    assert manifest["format_version"] == fmt.FORMAT_VERSION
    assert manifest["counts"] == {"guides": 3, "revisions": 5, "offers": 1, "members": 3}
    listed = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    assert listed == {p: hashlib.sha256(d).hexdigest() for p, d in files.items() if p != "manifest.json"}


def test_every_json_file_of_an_export_follows_its_published_schema(exported: bytes):
    for path, data in _files(exported).items():
        if path.endswith(".json"):
            schema = json.loads((SCHEMAS / fmt.schema_for_path(path)).read_text())
            jsonschema.validate(json.loads(data), schema, cls=jsonschema.Draft202012Validator)


def test_the_published_schemas_are_those_of_the_format():
    for name, doc in fmt.SCHEMAS.items():
        assert json.loads((SCHEMAS / name).read_text()) == fmt.schema_of(doc), f"regenerate {name}"


def test_only_moderators_and_admins_export(client: TestClient, populated: dict, people: People):
    slug = populated["slug"]
    assert client.get(f"/api/v1/communities/{slug}/export").status_code == 401
    for person in (populated["member"], people.make("stranger")):
        refused = client.get(f"/api/v1/communities/{slug}/export", headers=person.auth)
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    assert client.get("/api/v1/communities/nope-nope/export", headers=populated["moderator"].auth).status_code == 404


def test_only_admins_import(target: TestClient, exported: bytes):
    someone = People(target.app.state.settings).make("someone")
    before = _counts(target)
    assert _import(target, exported, someone).status_code == 403
    assert target.post("/api/v1/communities/import", content=exported).status_code == 401
    assert _counts(target) == before


@pytest.fixture(scope="module")
def imported(target: TestClient, target_admin: Person, exported: bytes) -> dict:
    response = _import(target, exported, target_admin)
    assert response.status_code == 201, response.text
    return response.json()


def test_import_recreates_the_community_and_exporting_it_again_gives_the_same_content(
    target: TestClient, target_admin: Person, exported: bytes, populated: dict, imported: dict
):
    community = imported
    assert community["slug"] == populated["slug"] and community["local"] is True
    assert community["uri"].startswith(target.app.state.settings.base_url)

    again = _export(target, populated["slug"], target_admin)
    assert _content(_files(again)) == _content(_files(exported))

    guides = target.get("/api/v1/guides", params={"community": populated["slug"]}).json()["items"]
    assert {g["slug"] for g in guides} == {"guide-0", "guide-1"}  # the draft is its author's alone
    first = next(g for g in guides if g["slug"] == "guide-0")
    assert first["id"] != populated["guides"][0]["id"] and first["local"] is True
    revisions = target.get(f"/api/v1/guides/{first['id']}/revisions").json()
    assert [r["number"] for r in revisions] == [3, 2, 1]
    assert [r["summary_of_change"] for r in revisions] == ["change 3", "change 2", "Created"]
    assert revisions[1]["author"]["username"] == populated["moderator"].username
    original = _files(exported)
    created = json.loads(original["guides/guide-0/revisions/1.json"])["created_at"]
    assert revisions[2]["created_at"] == created
    html = target.get(f"/api/v1/guides/{guides[0]['id']}").json()["body_html"]
    assert "<script" not in html


def test_imported_people_wait_for_a_password_and_entries_are_announced(
    target: TestClient, populated: dict, imported: dict
):
    settings = target.app.state.settings
    member = populated["member"].username
    assert not password_works(settings, member, "correct horse")

    async def work(session) -> tuple:  # type: ignore[no-untyped-def]
        user = await session.scalar(select(User).where(User.username == member))
        guides = list(await session.scalars(select(Guide).join(Community).where(Community.slug == populated["slug"])))
        announced = await session.scalar(
            select(func.count()).select_from(Activity).where(Activity.object_uri.in_([g.uri for g in guides]))
        )
        indexed = await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "index"))
        return user, guides, announced, indexed

    user, guides, announced, indexed = with_session(settings, work)
    assert user.local and user.password_hash is None
    assert all(g.local and g.uri.startswith(settings.base_url) for g in guides)
    assert announced == len(guides) == 3
    assert indexed >= 4  # three guides and the offer


def test_the_same_archive_is_imported_once(target: TestClient, target_admin: Person, exported: bytes, imported: dict):
    before = _counts(target)
    again = _import(target, exported, target_admin, slug=f"other-{uuid.uuid4().hex[:6]}")
    assert again.status_code == 409, again.text
    assert _counts(target) == before


def test_a_taken_slug_is_a_conflict_and_another_slug_imports(
    target: TestClient, target_admin: Person, exported: bytes, imported: dict
):
    copy = _repack(exported, lambda files: None)  # the same community under a new archive id
    assert _import(target, copy, target_admin).status_code == 409
    other = f"copy-{uuid.uuid4().hex[:6]}"
    response = _import(target, copy, target_admin, slug=other)
    assert response.status_code == 201, response.text
    assert response.json()["slug"] == other and response.json()["stats"]["guides"] == 2


def test_no_community_takes_the_slug_of_the_import_path(
    client: TestClient, admin: Person, target: TestClient, target_admin: Person, exported: bytes
):
    created = client.post("/api/v1/communities", json={"slug": "import", "name": "Imports"}, headers=admin.auth)
    assert created.status_code == 422 and "reserved" in created.json()["detail"]
    copy = _repack(exported, lambda files: None)
    assert _import(target, copy, target_admin, slug="import").status_code == 422
    refused = _import(target, copy, target_admin, slug="Not A Slug")
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "slug"


def _hostile_archives(exported: bytes) -> dict[str, tuple[bytes, str]]:
    files = _files(exported)
    entries = [_file(p, d) for p, d in files.items()]

    def wrong_checksum(f: dict[str, bytes]) -> None:
        f["guides/guide-0/revisions/1.md"] = b"# Something else"

    def unknown_version(f: dict[str, bytes]) -> None:
        manifest = json.loads(f[fmt.MANIFEST])
        manifest["format_version"] = 99
        f[fmt.MANIFEST] = json.dumps(manifest).encode()

    link = tarfile.TarInfo("guides/guide-0/revisions/9.md")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    device = tarfile.TarInfo("guides/guide-0/revisions/9.md")
    device.type = tarfile.CHRTYPE
    huge = tarfile.TarInfo("guides/guide-0/revisions/9.md")
    huge.size = 2 * 1024**3
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, 2 * 1024**3
    # A header that claims 2 GB, followed by none of it: the claim alone must be refused.
    raw = b"".join(info.tobuf(tarfile.PAX_FORMAT) + d + b"\0" * (-len(d) % 512) for info, d in entries)
    return {
        "dot-dot": (_pack([*entries, _file("guides/../../escape.md", b"x")]), "outside the archive"),
        "absolute": (_pack([_file("/etc/kith.md", b"x"), *entries]), "absolute path"),
        "checksum": (_repack(exported, wrong_checksum, rehash=False), "SHA-256"),
        "version": (_repack(exported, unknown_version, rehash=False), "format version 99"),
        "huge": (gzip.compress(raw + huge.tobuf(tarfile.PAX_FORMAT)), "claims 2147483648 bytes"),
        "huge-pax": (gzip.compress(raw + pax.tobuf(tarfile.USTAR_FORMAT)), "extended tar header of 2147483648"),
        "symlink": (_pack([*entries, (link, b"")]), "is a link"),
        "device": (_pack([*entries, (device, b"")]), "special file"),
        "unlisted": (_repack(exported, lambda f: f.update({"offers/9/offer.json": b"{}"}), rehash=False), "not list"),
        "not-gzip": (b"hello, archive", "not a gzip-compressed tar"),
        "truncated": (exported[: len(exported) // 2], "damaged or truncated"),
    }


def test_damaged_and_tampered_archives_are_refused_and_create_nothing(
    target: TestClient, target_admin: Person, exported: bytes
):
    before = _counts(target)
    for name, (archive, message) in _hostile_archives(exported).items():
        response = _import(target, archive, target_admin, slug=f"h-{name}")
        assert response.status_code == 422, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert message in response.json()["detail"], (name, response.json()["detail"])
        assert _counts(target) == before, name


def test_forged_content_goes_through_the_rules_and_refuses_the_whole_archive(
    target: TestClient, target_admin: Person, exported: bytes
):
    before = _counts(target)

    def blank_title(f: dict[str, bytes]) -> None:
        guide = json.loads(f["guides/guide-1/guide.json"])
        guide["title"] = "   "
        f["guides/guide-1/guide.json"] = json.dumps(guide).encode()

    def missing_revision(f: dict[str, bytes]) -> None:
        del f["guides/guide-0/revisions/2.md"]

    def nul_character(f: dict[str, bytes]) -> None:
        f["guides/guide-0/revisions/1.md"] = b"Hidden\x00text"

    for change in (blank_title, missing_revision, nul_character):
        response = _import(target, _repack(exported, change), target_admin, slug=f"f-{uuid.uuid4().hex[:6]}")
        assert response.status_code == 422, response.text
    assert _counts(target) == before


def test_people_of_other_instances_stay_remote(target: TestClient, target_admin: Person, exported: bytes):
    def remote_author(f: dict[str, bytes]) -> None:
        guide = json.loads(f["guides/guide-1/guide.json"])
        guide["author"] = {"uri": "https://elsewhere.example/u/zoe", "username": "zoe", "display_name": "Zoe",
                           "instance": "elsewhere.example", "local": False}  # fmt: skip
        f["guides/guide-1/guide.json"] = json.dumps(guide).encode()

    slug = f"r-{uuid.uuid4().hex[:6]}"
    assert _import(target, _repack(exported, remote_author), target_admin, slug=slug).status_code == 201
    guide = target.get(f"/api/v1/guides?community={slug}").json()["items"]
    author = next(g for g in guide if g["slug"] == "guide-1")["author"]
    assert author == {"username": "zoe", "display_name": "Zoe", "uri": "https://elsewhere.example/u/zoe",
                      "instance": "elsewhere.example"}  # fmt: skip


# A large community: guides and their revisions written in bulk, as an old instance would hold them.
LARGE_GUIDES, LARGE_REVISIONS = 1000, 5


def _bulk_community(settings: Settings, admin: Person) -> str:
    slug = f"big-{uuid.uuid4().hex[:8]}"

    async def work(session) -> None:  # type: ignore[no-untyped-def]
        author = await session.scalar(select(User).where(User.username == admin.username))
        uri = f"{settings.base_url}/c/{slug}"
        community = Community(uri=uri, url=uri, slug=slug, name="Big", local=True, instance=settings.host)
        session.add(community)
        await session.flush()
        start = datetime(2025, 1, 1, tzinfo=UTC)
        guides, revisions = [], []
        for n in range(LARGE_GUIDES):
            guide_id = uuid.uuid4()
            created = start + timedelta(minutes=n)
            tags = ["bulk", f"g{n % 7}"]
            guides.append({
                "id": guide_id, "uri": f"{settings.base_url}/guides/{guide_id}", "community_id": community.id,
                "url": f"{uri}/guides/guide-{n}", "author_id": author.id, "slug": f"guide-{n}",
                "title": f"Guide {n}", "summary": "", "body_markdown": f"Body {n} revision {LARGE_REVISIONS}",
                "body_html": "", "tags": tags, "tags_key": key_of(tags), "license": "CC-BY-4.0",
                "status": "published", "revision": LARGE_REVISIONS, "local": True, "instance": settings.host,
                "created_at": created, "updated_at": created + timedelta(seconds=LARGE_REVISIONS),
            })  # fmt: skip
            for number in range(1, LARGE_REVISIONS + 1):
                revisions.append({
                    "id": uuid.uuid4(), "guide_id": guide_id, "number": number, "title": f"Guide {n}",
                    "summary": "", "body_markdown": f"Body {n} revision {number}", "tags": tags,
                    "license": "CC-BY-4.0", "status": "published", "author_id": author.id,
                    "summary_of_change": f"edit {number}", "created_at": created + timedelta(seconds=number),
                })  # fmt: skip
        await session.execute(insert(Guide), guides)
        await session.execute(insert(GuideRevision), revisions)
        session.add(Membership(community_id=community.id, user_id=author.id, role="moderator"))
        await session.commit()

    with_session(settings, work)
    return slug


def test_a_community_of_a_thousand_guides_round_trips(
    client: TestClient, settings: Settings, admin: Person, target: TestClient, target_admin: Person
):
    slug = _bulk_community(settings, admin)
    archive = _export(client, slug, admin)
    response = _import(target, archive, target_admin)
    assert response.status_code == 201, response.text
    assert response.json()["stats"]["guides"] == LARGE_GUIDES
    first, again = _content(_files(archive)), _content(_files(_export(target, slug, target_admin)))
    assert len([p for p in first if p.endswith(".md")]) == LARGE_GUIDES * LARGE_REVISIONS
    assert again == first


def _kith(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KITH_DATABASE_URL": settings.database_url, "KITH_BASE_URL": settings.base_url,
           "KITH_DATA_DIR": str(settings.data_dir)}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_the_command_line_exports_and_imports(settings: Settings, target: TestClient, populated: dict, tmp_path: Path):
    archive, again = tmp_path / "community.tar.gz", tmp_path / "again.tar.gz"
    result = _kith(settings, "community", "export", populated["slug"], "-o", str(archive))
    assert result.returncode == 0, result.stderr
    second = target.app.state.settings
    slug = f"cli-{uuid.uuid4().hex[:6]}"
    result = _kith(second, "community", "import", str(archive), "--slug", slug)
    assert result.returncode == 0, result.stderr
    assert f"imported community {slug}" in result.stderr
    assert _kith(second, "community", "export", slug, "-o", str(again)).returncode == 0
    first_files, again_files = _files(archive.read_bytes()), _files(again.read_bytes())
    guides = {p: h for p, h in _content(first_files).items() if p.startswith("guides/")}
    assert {p: h for p, h in _content(again_files).items() if p.startswith("guides/")} == guides

    twice = _kith(second, "community", "import", str(archive), "--slug", f"{slug}-2")
    assert twice.returncode == 1 and "imported here already" in twice.stderr
    tampered = tmp_path / "tampered.tar.gz"
    tampered.write_bytes(_repack(archive.read_bytes(), lambda f: f.update({"community.json": b"{}"}), rehash=False))
    refused = _kith(second, "community", "import", str(tampered), "--slug", f"{slug}-3")
    assert refused.returncode == 1 and "SHA-256" in refused.stderr and "Traceback" not in refused.stderr
