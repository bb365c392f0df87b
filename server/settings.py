"""Settings: defaults, then kith.toml, then KITH_* environment variables."""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlsplit

from limits import parse


class ConfigError(Exception):
    """A setting that cannot be used; the message names the key."""


@dataclass(frozen=True)
class OIDCProvider:
    name: str
    issuer: str
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class RateLimits:
    """How often each action that is cheap to abuse may happen, in the notation of the `limits` package
    ("5/minute", "20 per hour", "30/15minutes"). Set in kith.toml's [limits] table or KITH_LIMIT_<NAME>."""

    sign_in_account: str = "10/15minutes"  # failed sign-ins per account name, from any address
    sign_in_address: str = "30/15minutes"  # failed sign-ins per client address, whatever the name
    token_create: str = "20/hour"  # API tokens a person creates
    registration: str = "5/hour"  # sign-ups per client address
    search: str = "120/minute"  # searches per person, or per client address for strangers
    preview: str = "120/minute"  # markdown previews per person or client address
    inbox: str = "300/second"  # activities accepted per peer host
    messages: str = "30/minute"  # private messages a person writes on mentorship requests


SEARCH_BACKENDS = ("whoosh", "postgres")
# A PostgreSQL text search configuration name (`simple`, `english`, ...), checked by PostgreSQL when used.
_LANGUAGE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class SearchSettings:
    """Which search backend answers searches (kith.toml's [search] table or KITH_SEARCH_<NAME>).

    `whoosh`: the embedded index in data_dir/search, written by the worker. `postgres`: the database's own full
    text search, for instances on PostgreSQL. Both analyse text with Kith's own English analysis: `language`
    is no longer read, and is accepted so that configurations written for the earlier postgres backend load."""

    backend: str = "whoosh"
    language: str = "simple"


@dataclass(frozen=True)
class Settings:
    base_url: str = "http://127.0.0.1:8000"
    instance_name: str = "Kith"
    instance_description: str = "A knowledge commons for communities."
    data_dir: Path = Path("./var")
    database_url: str = ""
    secret_key: str = ""
    peers: tuple[str, ...] = ()
    pull_interval_seconds: int = 600
    # Private ranges outbound connections may reach, as CIDR strings; none by default (see server/outbound.py).
    allowed_private_networks: tuple[str, ...] = ()
    oidc: tuple[OIDCProvider, ...] = field(default_factory=tuple)
    # Who may make an account here: closed | invite | approval | open (see REGISTRATION_MODES).
    registration: str = "closed"
    # Outgoing mail (email confirmation, notifications); none is sent while smtp_host is empty.
    smtp_host: str = ""
    smtp_port: int = 25
    mail_from: str = ""
    # Addresses or networks of reverse proxies whose X-Forwarded-For names the client (see `kith serve`).
    trusted_proxies: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    rate_limits: RateLimits = RateLimits()
    search: SearchSettings = SearchSettings()

    # Settings never change after construction (frozen; `replace` builds a new object), so what they derive
    # is computed once: pages ask for the host dozens of times a request.
    @cached_property
    def host(self) -> str:
        return host_of(self.base_url)

    @cached_property
    def peer_hosts(self) -> tuple[str, ...]:
        return tuple(host_of(peer) for peer in self.peers)

    @property
    def is_https(self) -> bool:
        return self.base_url.startswith("https://")


# Kith's own examples (.env.example, kith.example.toml) use values that start with this: anyone can read
# them, so an instance that runs with one has no secret at all.
EXAMPLE_SECRET_PREFIX = "change-me"


def is_example_secret(value: str) -> bool:
    return value.strip().lower().startswith(EXAMPLE_SECRET_PREFIX)


def host_of(url: str) -> str:
    """The authority of a URL, with its port only when it is not the scheme's default."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port and parts.port != default_port:
        return f"{host}:{parts.port}"
    return host


def is_http_url(value: str, schemes: tuple[str, ...] = ("http", "https")) -> bool:
    """An absolute URL of one of `schemes` that reads whole: a host, a numeric port, closed IPv6 brackets, no
    credentials (they only serve to make one host look like another) and no spaces or control characters."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    has_userinfo = parts.username is not None or parts.password is not None
    return parts.scheme in schemes and bool(parts.hostname) and not has_userinfo


# key in kith.toml -> (environment variable, table in kith.toml or None)
_KEYS: dict[str, tuple[str, str | None]] = {
    "base_url": ("KITH_BASE_URL", None),
    "instance_name": ("KITH_INSTANCE_NAME", None),
    "instance_description": ("KITH_INSTANCE_DESCRIPTION", None),
    "data_dir": ("KITH_DATA_DIR", None),
    "database_url": ("KITH_DATABASE_URL", None),
    "secret_key": ("KITH_SECRET_KEY", None),
    "peers": ("KITH_PEERS", "federation"),
    "pull_interval_seconds": ("KITH_PULL_INTERVAL_SECONDS", "federation"),
    "registration": ("KITH_REGISTRATION", "accounts"),
    "smtp_host": ("KITH_SMTP_HOST", "mail"),
    "smtp_port": ("KITH_SMTP_PORT", "mail"),
    "mail_from": ("KITH_MAIL_FROM", "mail"),
    "allowed_private_networks": ("KITH_ALLOWED_PRIVATE_NETWORKS", "federation"),
    "trusted_proxies": ("KITH_TRUSTED_PROXIES", None),
}

# closed: only operators make accounts (`kith user create`); invite: an invite link is needed; approval: anyone
# may ask, an admin lets them in; open: anyone may sign up.
REGISTRATION_MODES = ("closed", "invite", "approval", "open")


def load_settings(config_path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read settings; raise ConfigError naming the key for anything unusable."""
    env = dict(os.environ if env is None else env)
    config_path = config_path or env.get("KITH_CONFIG")
    raw: dict[str, object] = {}
    oidc_raw: object = []
    limits_raw: object = {}
    search_raw: object = {}
    if config_path:
        raw, oidc_raw, limits_raw, search_raw = _read_toml(Path(config_path))
    for key, (var, _table) in _KEYS.items():
        # An empty KITH_TRUSTED_PROXIES means "trust no proxy", not "unset".
        if var in env and (env[var] != "" or key == "trusted_proxies"):
            raw[key] = env[var]
    settings = replace(
        _build(raw, _parse_oidc(oidc_raw)), rate_limits=_rate_limits(limits_raw, env), search=_search(search_raw, env)
    )
    return _with_database_and_secret(settings)


def _read_toml(path: Path) -> tuple[dict[str, object], object, object, object]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config: file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {path} is not valid TOML: {exc}") from exc
    raw: dict[str, object] = {}
    for key, (_var, table) in _KEYS.items():
        source = document.get(table, {}) if table else document
        if isinstance(source, dict) and key in source:
            raw[key] = source[key]
    tables = {"federation", "auth", "accounts", "mail", "limits", "search"}
    known = {k for k, (_v, t) in _KEYS.items() if t is None} | tables
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigError(f"config: unknown key {unknown[0]!r} in {path}")
    auth = document.get("auth", {})
    oidc = auth.get("oidc", []) if isinstance(auth, dict) else auth
    return raw, oidc, document.get("limits", {}), document.get("search", {})


def _build(raw: dict[str, object], oidc: tuple[OIDCProvider, ...]) -> Settings:
    values: dict[str, object] = {"oidc": oidc}
    if "base_url" in raw:
        values["base_url"] = _url("base_url", raw["base_url"]).rstrip("/")
    for key in ("instance_name", "instance_description", "secret_key", "database_url"):
        if key in raw:
            values[key] = _string(key, raw[key])
    if "data_dir" in raw:
        values["data_dir"] = Path(_string("data_dir", raw["data_dir"]))
    if "peers" in raw:
        values["peers"] = _peers(raw["peers"])
    if "pull_interval_seconds" in raw:
        values["pull_interval_seconds"] = _positive_int("pull_interval_seconds", raw["pull_interval_seconds"])
    for key in ("smtp_host", "mail_from"):
        if key in raw:
            values[key] = _string(key, raw[key]).strip()
    if "smtp_port" in raw:
        values["smtp_port"] = _positive_int("smtp_port", raw["smtp_port"])
    if "registration" in raw:
        values["registration"] = _registration(raw["registration"])
    if "allowed_private_networks" in raw:
        values["allowed_private_networks"] = _networks("allowed_private_networks", raw["allowed_private_networks"])
    if "trusted_proxies" in raw:
        values["trusted_proxies"] = _networks("trusted_proxies", raw["trusted_proxies"])
    settings = Settings(**values)  # type: ignore[arg-type]
    if not settings.instance_name.strip():
        raise ConfigError("config: instance_name (KITH_INSTANCE_NAME) must not be empty")
    return settings


def _search(raw: object, env: dict[str, str]) -> SearchSettings:
    if not isinstance(raw, dict):
        raise ConfigError("config: [search] must be a table")
    unknown = sorted(set(raw) - {"backend", "language"})
    if unknown:
        raise ConfigError(f"config: unknown key {unknown[0]!r} in [search]")
    values = {name: env.get(f"KITH_SEARCH_{name.upper()}") or raw.get(name) for name in ("backend", "language")}
    backend = values["backend"] or SearchSettings.backend
    language = values["language"] or SearchSettings.language
    if backend not in SEARCH_BACKENDS:
        raise ConfigError(
            f"config: [search] backend (KITH_SEARCH_BACKEND) must be one of {', '.join(SEARCH_BACKENDS)}, "
            f"got {backend!r}"
        )
    if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
        raise ConfigError(
            "config: [search] language (KITH_SEARCH_LANGUAGE) must be a PostgreSQL text search configuration "
            f"name such as simple or english, got {language!r}"
        )
    return SearchSettings(backend=backend, language=language)


def _with_database_and_secret(settings: Settings) -> Settings:
    database_url = settings.database_url or f"sqlite:///{settings.data_dir / 'kith.db'}"
    database_url = normalize_database_url(database_url)
    if settings.search.backend == "postgres" and not database_url.startswith("postgresql"):
        # The backend is the database's own full text search: SQLite has none of it (the whoosh index serves there).
        raise ConfigError(
            'config: [search] backend = "postgres" (KITH_SEARCH_BACKEND) needs a PostgreSQL database_url; '
            'this instance uses SQLite: use backend = "whoosh"'
        )
    secret_key = settings.secret_key or _stored_secret(settings.data_dir)
    return replace(settings, database_url=database_url, secret_key=secret_key)


def normalize_database_url(url: str) -> str:
    """Accept the plain forms operators write and pick the async drivers Kith runs on."""
    if url.startswith("sqlite+aiosqlite:///"):
        return url
    if url.startswith("sqlite:///"):
        return url.replace("sqlite:///", "sqlite+aiosqlite:///", 1)
    for prefix in ("postgresql://", "postgres://", "postgresql+asyncpg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ConfigError(
        f"config: database_url (KITH_DATABASE_URL) must start with sqlite:/// or postgresql://, got {url!r}"
    )


def _stored_secret(data_dir: Path) -> str:
    """The secret key lives in the data dir so sessions survive restarts without configuration."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Created private (O_EXCL: never through a file someone put there), not made private after writing.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as file:
        file.write(secret)
    return secret


def _string(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"config: {key} ({_KEYS[key][0]}) must be a string, got {value!r}")
    return value


def _url(key: str, value: object) -> str:
    text = _string(key, value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"config: {key} ({_KEYS[key][0]}) must be an http(s) URL, got {text!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"config: {key} ({_KEYS[key][0]}) must be a bare origin, got {text!r}")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ConfigError(f"config: {key} ({_KEYS[key][0]}) has a bad port: {text!r}") from exc
    return text


def _peers(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, list):
        items = list(value)
    else:
        raise ConfigError(f"config: peers (KITH_PEERS) must be a list of URLs, got {value!r}")
    peers = tuple(_url("peers", item).rstrip("/") for item in items)
    return tuple(dict.fromkeys(peers))


def _registration(value: object) -> str:
    mode = _string("registration", value).strip().lower()
    if mode not in REGISTRATION_MODES:
        raise ConfigError(
            f"config: registration (KITH_REGISTRATION) must be one of {', '.join(REGISTRATION_MODES)}, got {value!r}"
        )
    return mode


def _networks(key: str, value: object) -> tuple[str, ...]:
    items = [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ConfigError(f"config: {key} ({_KEYS[key][0]}) must be a list of networks, got {value!r}")
    networks = []
    for item in items:
        try:
            networks.append(str(ip_network(_string(key, item), strict=False)))
        except ValueError as exc:
            raise ConfigError(f"config: {key} ({_KEYS[key][0]}) has a bad network {item!r}: {exc}") from exc
    return tuple(dict.fromkeys(networks))


def _rate_limits(table: object, env: dict[str, str]) -> RateLimits:
    """[limits] in kith.toml, then KITH_LIMIT_<NAME>; each value must parse as a `limits` rate."""
    if not isinstance(table, dict):
        raise ConfigError("config: limits must be a table ([limits])")
    names = {f.name for f in fields(RateLimits)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise ConfigError(f"config: unknown key {unknown[0]!r} in [limits]; known: {', '.join(sorted(names))}")
    values = dict(table)
    for name in names:
        if env.get(f"KITH_LIMIT_{name.upper()}"):
            values[name] = env[f"KITH_LIMIT_{name.upper()}"]
    for name, value in values.items():
        try:
            parse(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"config: limits.{name} (KITH_LIMIT_{name.upper()}) must be a rate like '10/minute', got {value!r}"
            ) from exc
    return RateLimits(**values)


def _positive_int(key: str, value: object) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config: {key} ({_KEYS[key][0]}) must be an integer, got {value!r}") from exc
    if number < 1:
        raise ConfigError(f"config: {key} ({_KEYS[key][0]}) must be at least 1, got {number}")
    return number


def _parse_oidc(raw: object) -> tuple[OIDCProvider, ...]:
    if not isinstance(raw, list):
        raise ConfigError("config: auth.oidc must be an array of tables ([[auth.oidc]])")
    providers = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ConfigError(f"config: auth.oidc[{index}] must be a table")
        missing = [k for k in ("name", "issuer", "client_id", "client_secret") if not entry.get(k)]
        if missing:
            raise ConfigError(f"config: auth.oidc[{index}].{missing[0]} is required")
        providers.append(
            OIDCProvider(
                name=str(entry["name"]),
                issuer=str(entry["issuer"]).rstrip("/"),
                client_id=str(entry["client_id"]),
                client_secret=str(entry["client_secret"]),
            )
        )
    return tuple(providers)
