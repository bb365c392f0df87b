from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _kith(tmp_path, *args, stdin: str | None = None, **extra_env) -> subprocess.CompletedProcess:
    env = {**os.environ, "KITH_DATA_DIR": str(tmp_path / "var"), **extra_env}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


def test_user_and_token_commands_for_scripts(tmp_path):
    assert _kith(tmp_path, "migrate").returncode == 0
    created = _kith(tmp_path, "user", "create", "ada", "--admin", "--password-stdin", stdin="long enough pw\n")
    assert created.returncode == 0, created.stderr
    token = _kith(tmp_path, "token", "create", "--user", "ada", "--scope", "admin")
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip().startswith("kith_")
    assert token.stdout.count("\n") == 1  # the secret alone, so TOKEN=$(kith token create ...) works


def test_cli_errors_are_one_clear_line(tmp_path):
    assert _kith(tmp_path, "migrate").returncode == 0
    unknown = _kith(tmp_path, "token", "create", "--user", "ghost")
    assert unknown.returncode != 0 and "no local user named 'ghost'" in unknown.stderr
    short = _kith(tmp_path, "user", "create", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
    bad = _kith(tmp_path, "migrate", KITH_BASE_URL="nonsense")
    assert bad.returncode != 0
    assert "base_url (KITH_BASE_URL)" in bad.stderr and "Traceback" not in bad.stderr


def test_user_create_refuses_reserved_names(tmp_path):
    assert _kith(tmp_path, "migrate").returncode == 0
    for name in ("inbox", "Admin", "well-known"):
        refused = _kith(tmp_path, "user", "create", name, "--password-stdin", stdin="long enough pw\n")
        assert refused.returncode != 0 and "reserved" in refused.stderr, refused.stderr


def test_reindex_rebuilds_the_search_index_from_the_database(tmp_path):
    assert _kith(tmp_path, "migrate").returncode == 0
    result = _kith(tmp_path, "reindex")
    assert result.returncode == 0, result.stderr
    assert "search index rebuilt with 0 entries" in result.stderr
    assert (tmp_path / "var" / "search" / "CURRENT").exists()


def test_peers_status_prints_a_table(tmp_path):
    assert _kith(tmp_path, "migrate").returncode == 0
    result = _kith(tmp_path, "peers", "status")
    assert result.returncode == 0, result.stderr
    assert "state" in result.stdout and "queue" in result.stdout


def test_the_data_dir_and_what_is_in_it_are_private_from_the_start(tmp_path):
    assert _kith(tmp_path, "migrate").returncode == 0
    data_dir = tmp_path / "var"
    assert data_dir.stat().st_mode & 0o777 == 0o700
    for name in ("secret_key", "kith.db"):
        assert (data_dir / name).stat().st_mode & 0o777 == 0o600, name


def _example_env() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_serve_refuses_the_example_secrets_and_starts_nothing(tmp_path):
    examples = _example_env()
    secrets = {"KITH_SECRET_KEY": examples["KITH_A_SECRET_KEY"], "KITH_ADMIN_PASSWORD": "a real admin password"}
    admin = {"KITH_SECRET_KEY": "an-operators-own-secret", "KITH_ADMIN_PASSWORD": examples["KITH_B_ADMIN_PASSWORD"]}
    for env, named in ((secrets, "secret_key (KITH_SECRET_KEY)"), (admin, "KITH_ADMIN_PASSWORD")):
        # Port 1 could never be bound: had the check not stopped it, serve would fail with another message.
        result = _kith(tmp_path, "serve", "--port", "1", **env)
        assert result.returncode != 0
        assert f"{named} is an example value" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "var" / "kith.db").exists()  # stopped before the admin account was made


def test_compose_takes_every_secret_from_the_env_file():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    required = re.compile(r"\$\{(\w+):\?[^}]*\}")
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if re.search("SECRET|PASSWORD", key):
                variables = required.findall(value)
                assert variables and set(variables) <= set(_example_env()), f"{name}.{key} = {value!r}"
        database_url = service.get("environment", {}).get("KITH_DATABASE_URL", "")
        assert not database_url or "${POSTGRES_PASSWORD:?" in database_url, name
