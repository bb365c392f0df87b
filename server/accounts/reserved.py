"""Usernames nobody may sign up with: they would collide with Kith's own routes, or pass for the instance."""

from __future__ import annotations

# Top-level paths (a username becomes /u/{name}, and people read the bare name as a path too), ActivityPub and
# well-known documents, and names that would pass for whoever runs the instance.
RESERVED_USERNAMES = frozenset(
    {
        # routes
        "about", "accounts", "activities", "actor", "admin", "api", "c", "communities", "confirm-email", "feed",
        "feeds", "followers", "following", "g", "guides", "healthz", "inbox", "instance", "invite", "invites", "join",
        "login", "logout", "me", "mentorship", "metrics", "new", "nodeinfo", "ns", "oauth", "oidc", "outbox",
        "readyz", "register", "schema", "search", "settings", "sign-up", "signup", "static", "tags", "u",
        "users", "well-known", ".well-known", "webfinger",
        # the instance and its operators
        "abuse", "administrator", "hostmaster", "kith", "mod", "moderator", "moderators", "noreply",
        "no-reply", "postmaster", "root", "security", "staff", "support", "system", "webmaster",
    }
)  # fmt: skip


def is_reserved(username: str) -> bool:
    return username.strip().lower() in RESERVED_USERNAMES
