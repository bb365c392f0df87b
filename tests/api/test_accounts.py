from __future__ import annotations

from tests.conftest import join


def test_me_reports_roles(client, admin, people, community):
    person = people.make()
    join(client, admin, community, person, "moderator")
    me = client.get("/api/v1/me", headers=person.auth).json()
    assert me["username"] == person.username
    assert me["roles"] == {"instance": None, "communities": {community["slug"]: "moderator"}}
    assert client.get("/api/v1/me", headers=admin.auth).json()["roles"]["instance"] == "admin"


def test_token_lifecycle_secret_shown_once_and_revocation_is_immediate(client, people):
    person = people.make()
    created = client.post("/api/v1/me/tokens", json={"name": "laptop", "scope": "read"}, headers=person.auth)
    assert created.status_code == 201
    token = created.json()
    assert token["secret"].startswith("kith_")
    listed = client.get("/api/v1/me/tokens", headers=person.auth).json()["items"]
    assert "laptop" in {t["name"] for t in listed}
    assert all("secret" not in t for t in listed)
    new_auth = {"Authorization": f"Bearer {token['secret']}"}
    assert client.get("/api/v1/me", headers=new_auth).status_code == 200
    assert client.delete(f"/api/v1/me/tokens/{token['id']}", headers=person.auth).status_code == 204
    assert client.get("/api/v1/me", headers=new_auth).status_code == 401
    assert client.delete(f"/api/v1/me/tokens/{token['id']}", headers=person.auth).status_code == 404


def test_token_last_used_is_recorded(client, people):
    person = people.make()
    client.get("/api/v1/me", headers=person.auth)
    tokens = client.get("/api/v1/me/tokens", headers=person.auth).json()["items"]
    assert tokens[0]["last_used_at"] is not None


def test_read_token_cannot_mint_write_token_and_member_cannot_mint_admin(client, people):
    reader = people.make(scope="read")
    response = client.post("/api/v1/me/tokens", json={"name": "x", "scope": "write"}, headers=reader.auth)
    assert response.status_code == 403
    writer = people.make()
    response = client.post("/api/v1/me/tokens", json={"name": "x", "scope": "admin"}, headers=writer.auth)
    assert response.status_code == 403


def test_bad_credentials(client):
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    response = client.get("/api/v1/me", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_session_cookie_is_never_accepted_on_api(client):
    response = client.get("/api/v1/me", headers={"Cookie": "session=anything"})
    assert response.status_code == 401


def test_tokens_are_stored_only_as_hashes(client, people, settings):
    import asyncio

    from sqlalchemy import select

    from server.db import create_engine, create_sessionmaker
    from server.models import ApiToken

    person = people.make()

    async def stored() -> list[str]:
        engine = create_engine(settings.database_url)
        async with create_sessionmaker(engine)() as session:
            hashes = list(await session.scalars(select(ApiToken.token_hash)))
        await engine.dispose()
        return hashes

    hashes = asyncio.run(stored())
    assert person.token not in hashes
    assert all(len(h) == 64 for h in hashes)


def test_instance_document(client):
    instance = client.get("/api/v1/instance").json()
    assert instance["host"] == "127.0.0.1:8000"
    assert instance["software"]["name"] == "kith"
    assert instance["federation"] == {"peers": [], "mode": "allowlist"}
    assert set(instance["stats"]) == {"communities", "guides", "offers", "remote_guides"}


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_a_read_token_can_neither_create_nor_revoke_tokens(client, people):
    reader = people.make(scope="read")
    before = client.get("/api/v1/me/tokens", headers=reader.auth).json()["items"]
    response = client.post("/api/v1/me/tokens", json={"name": "another", "scope": "read"}, headers=reader.auth)
    assert response.status_code == 403 and response.headers["content-type"].startswith("application/problem+json")
    assert client.delete(f"/api/v1/me/tokens/{before[0]['id']}", headers=reader.auth).status_code == 403
    assert client.get("/api/v1/me", headers=reader.auth).status_code == 200  # still valid: nothing was revoked
    after = client.get("/api/v1/me/tokens", headers=reader.auth).json()["items"]
    assert [t["id"] for t in after] == [t["id"] for t in before]  # nothing was created
