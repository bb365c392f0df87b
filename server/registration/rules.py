"""The registration modes' answers, shared by the API and the pages."""

from __future__ import annotations

from server.errors import ProblemError


def closed_problem() -> ProblemError:
    return ProblemError(403, "Registration is closed on this instance: its operators make accounts.")


def invite_needed_problem() -> ProblemError:
    return ProblemError(
        403, "This instance takes new people by invitation: ask an admin or a community moderator for an invite link."
    )
