"""Every real-world activity in tests/fixtures/activitypub goes through the handler dispatch.

What other servers send must either be applied (a string saying what happened) or refused with
`Rejected` and a reason; any other exception would leave the inbox item retrying forever and hide
the cause. Each payload runs inside a savepoint that is rolled back, so payloads do not see each
other's writes, and the same session must still answer a query afterwards.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import create_engine, create_sessionmaker
from server.federation import handlers
from server.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "activitypub"
ACTIVITIES = sorted(FIXTURES.glob("**/activities/**/*.json"))
PAYLOADS = {path: json.loads(path.read_text(encoding="utf-8")) for path in ACTIVITIES}


def _actor_host(payload: dict[str, Any]) -> str:
    """The authority of the payload's actor, as the inbox would have taken it from the signer's key."""
    actor = payload.get("actor")
    if isinstance(actor, list):
        actor = actor[0] if actor else None
    if isinstance(actor, dict):
        actor = actor.get("id")
    host = urlsplit(actor).netloc.lower() if isinstance(actor, str) else ""
    # A payload with no usable actor is still a fair input: sign it as some peer and let handle() judge.
    return host or "unknown.example"


def test_the_fixture_set_is_not_empty() -> None:
    # A moved folder would otherwise turn the parametrized test below into zero tests that all "pass".
    assert len(ACTIVITIES) >= 50


@pytest.fixture(scope="module")
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings.database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.mark.parametrize("path", ACTIVITIES, ids=lambda p: str(p.relative_to(FIXTURES)))
async def test_real_activity_is_applied_or_rejected_with_a_reason(
    path: Path, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    payload = PAYLOADS[path]
    host = _actor_host(payload)
    peered = replace(settings, peers=(f"https://{host}",))
    async with sessions() as session:
        savepoint = await session.begin_nested()
        try:
            outcome = await handlers.handle(session, peered, payload, signer_host=host, fetch=None)
        except handlers.Rejected as exc:
            assert isinstance(exc.reason, str) and exc.reason.strip(), "a rejection must say why"
        else:
            assert isinstance(outcome, str) and outcome.strip(), "an applied activity must say what happened"
        finally:
            await savepoint.rollback()
        # Whatever the handler did, the session must still work for the next item of the batch.
        assert (await session.execute(select(1))).scalar_one() == 1
        await session.rollback()
