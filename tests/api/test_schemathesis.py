"""Property-based tests of the running server against its own OpenAPI document, on SQLite and on PostgreSQL.

A real `kith serve` process (tests/support/server.py) is seeded through the API, then schemathesis
generates requests for every operation in /schema/openapi.json and checks that none gets a 5xx and
that every response matches the documented status codes, content types and schemas.

Generated path parameters are random, so they would only ever hit 404s. Half of the generated cases
get a seeded id instead, so reads, edits and actions run against real rows too. Destructive operations
(DELETE of a community, guide, offer or member, and token revocation) get their own throwaway rows, so
nothing is excluded and the seed that later operations read survives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import postgres
from tests.support.server import KithServer

# The community import's body is an archive (application/gzip): generated and sent as bytes, like octet-stream.
schemathesis.serializer.alias("application/gzip", "application/octet-stream")

CHECKS = [
    schemathesis.checks.not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
# Small enough for both backends to finish in well under three minutes on two cores.
MAX_EXAMPLES = 12
SEED = 20250101
# Each case is a real HTTP round trip, so Hypothesis's per-example deadline and speed checks do not apply.
SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Seed:
    """Ids of rows made through the API before fuzzing; `doomed_*` ones exist to be deleted."""

    token: str
    slug: str
    doomed_slug: str
    guide_id: str
    doomed_guide_id: str
    offer_id: str
    doomed_offer_id: str
    request_id: str
    spare_token_id: str
    leaver: str


@dataclass(frozen=True)
class Target:
    server: KithServer
    seed: Seed

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.seed.token}"}


def _post(api: httpx.Client, path: str, body: dict[str, Any], token: str) -> dict[str, Any]:
    response = api.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, f"seeding POST {path}: {response.status_code} {response.text}"
    return response.json()


def _seed(server: KithServer) -> Seed:
    """Two communities, guides, offers, a mentorship request, a spare token and a member to remove."""
    admin = server.token()
    for username in ("mentor", "leaver"):
        server.create_user(username)
    mentor = server.token("mentor", "write")
    with httpx.Client(base_url=f"{server.base_url}/api/v1", timeout=30, trust_env=False) as api:
        for slug in ("seed", "doomed"):
            _post(api, "/communities", {"slug": slug, "name": f"The {slug} community"}, admin)
        for username in ("mentor", "leaver"):
            _post(api, "/communities/seed/members", {"username": username, "role": "member"}, admin)
        guide, doomed_guide = (
            _post(api, "/communities/seed/guides", {"title": title, "body_markdown": "# Hi\n\n*Welcome*."}, admin)
            for title in ("Onboarding", "Doomed guide")
        )
        offer_body = {"title": "Pairing", "description_markdown": "Let us pair.", "topics": ["python"]}
        offer_body |= {"format": "one_to_one", "capacity": 2}
        offer, doomed_offer = (_post(api, "/communities/seed/mentorship/offers", offer_body, mentor) for _ in range(2))
        request = _post(api, f"/mentorship/offers/{offer['id']}/requests", {"message": "May I join?"}, admin)
        spare = _post(api, "/me/tokens", {"name": "spare", "scope": "read"}, admin)
    return Seed(
        token=admin, slug="seed", doomed_slug="doomed", guide_id=guide["id"], doomed_guide_id=doomed_guide["id"],
        offer_id=offer["id"], doomed_offer_id=doomed_offer["id"], request_id=request["id"],
        spare_token_id=spare["id"], leaver="leaver",
    )  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres.fresh_database()) if request.param == "postgresql" else None
        server = stack.enter_context(KithServer(database_url=database_url))
        yield Target(server, _seed(server))


def known_path_values(method: str, path: str, seed: Seed) -> dict[str, Any]:
    """Seeded values for an operation's path parameters; deletions get the throwaway rows."""
    deleting = method.upper() == "DELETE"
    return {
        "ref": seed.doomed_slug if deleting and path.endswith("/communities/{ref}") else seed.slug,
        "slug": seed.slug,
        "guide_id": seed.doomed_guide_id if deleting else seed.guide_id,
        "offer_id": seed.doomed_offer_id if deleting else seed.offer_id,
        "request_id": seed.request_id,
        "token_id": seed.spare_token_id,
        "username": seed.leaver,
        "number": 1,
        "older": 1,
        "newer": 1,
    }


@pytest.fixture(scope="module")
def api_schema(target: Target) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{target.server.base_url}/schema/openapi.json", config=config)

    @schema.hook
    def before_generate_path_parameters(context: schemathesis.HookContext, strategy: st.SearchStrategy) -> Any:
        operation = context.operation
        if operation is None:
            return strategy
        known = known_path_values(operation.method, operation.path, target.seed)

        def with_known(parameters: Any) -> Any:
            if not isinstance(parameters, dict):
                return parameters
            return {name: known.get(name, value) for name, value in parameters.items()}

        return st.one_of(strategy, strategy.map(with_known))

    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy loader reads and renames `node._nodeid`, which pytest 9.2 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
@SETTINGS
def test_api_as_admin(case: schemathesis.Case, target: Target) -> None:
    case.call_and_validate(base_url=target.server.base_url, headers=target.auth, checks=CHECKS, timeout=30)


@schema.include(method="GET").parametrize()
@SETTINGS
def test_reads_anonymously(case: schemathesis.Case, target: Target) -> None:
    """Without a token: public reads answer, protected ones say 401 in the documented shape."""
    case.call_and_validate(base_url=target.server.base_url, checks=CHECKS, timeout=30)
