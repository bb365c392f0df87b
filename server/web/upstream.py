"""What the guide page shows of adapting: an adaptation's upstream and its change, a guide's adaptations, and the
communities the viewer could adapt it for."""

from __future__ import annotations

from typing import Any

from litestar import Request

from server.communities.service import CommunityService
from server.db import fetch_all
from server.errors import ProblemError
from server.guides import adaptation, rules, schemas
from server.guides.diffs import from_unified
from server.guides.queries import GuideView
from server.guides.service import GuideService
from server.settings import Settings
from server.web.core import Viewer, app_engine


async def adapt_context(
    request: Request[Any, Any, Any], shown: GuideView | schemas.Guide, viewer: Viewer | None, can_edit: bool
) -> dict[str, Any]:
    """What the guide page shows of adapting: the upstream of an adaptation (with its change, to those who may
    take it), the guide's own adaptations, and the viewer's communities it could be adapted for."""

    async def run(statement, params):  # type: ignore[no-untyped-def]
        return await fetch_all(app_engine(request), statement, params)

    # A view read with the guide says whether it has adaptations; a full guide (read for an editor) does not.
    adapted = None if isinstance(shown, schemas.Guide) else ({shown.origin.uri} if shown.adapted else set())
    upstreams, adaptations = await adaptation.links(run, [(shown.id, shown.origin.uri, shown.derived_from)], adapted)
    upstream = upstreams.get(shown.id)
    adapted = adaptations.get(shown.origin.uri, [])
    communities, instances = adaptation.reach(adapted)
    context: dict[str, Any] = {
        "upstream": upstream, "upstream_diff": None, "adaptations": adapted, "reach": (communities, instances),
        "adapt_targets": [], "adapt_error": None,
    }  # fmt: skip
    settings: Settings = request.app.state.settings
    if viewer is None:
        return context
    async with request.app.state.sessionmaker() as db:
        if upstream is not None and upstream.changed and can_edit:
            change = await GuideService(db, settings).upstream_change(shown.id, viewer.principal)
            context["upstream_diff"] = from_unified(change.diff.splitlines())
        if shown.status == "published":
            joined = await CommunityService(db, settings).joined(viewer.principal)
            targets = [c for c in joined if c.slug != shown.community.slug or not shown.local]
            try:
                rules.adaptable(shown.license)
                context["adapt_targets"] = targets
            except ProblemError as exc:
                if targets:  # said before anyone tries
                    context["adapt_error"] = cannot_adapt(exc)
    return context


def cannot_adapt(exc: ProblemError) -> str:
    return f"This guide cannot be adapted: {exc.errors[0].message if exc.errors else exc.detail}."
