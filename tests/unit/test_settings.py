from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import ConfigError, load_settings


def test_defaults(tmp_path):
    settings = load_settings(env={"KITH_DATA_DIR": str(tmp_path)})
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.host == "127.0.0.1:8000"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'kith.db'}"
    assert settings.peers == ()


def test_a_database_url_that_already_names_the_async_driver_is_kept(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    assert load_settings(env={"KITH_DATA_DIR": str(tmp_path), "KITH_DATABASE_URL": url}).database_url == url


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = load_settings(env={"KITH_DATA_DIR": str(tmp_path)}).secret_key
    assert len(first) > 40
    assert load_settings(env={"KITH_DATA_DIR": str(tmp_path)}).secret_key == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_toml_then_env_overrides(tmp_path):
    config = tmp_path / "kith.toml"
    config.write_text(
        'base_url = "https://kith.example.org"\ninstance_name = "Example"\n'
        f'data_dir = "{tmp_path}"\n[federation]\npeers = ["https://b.example", "http://127.0.0.1:8002/"]\n'
    )
    settings = load_settings(config, env={"KITH_INSTANCE_NAME": "From env"})
    assert settings.base_url == "https://kith.example.org"
    assert settings.instance_name == "From env"
    assert settings.peers == ("https://b.example", "http://127.0.0.1:8002")
    assert settings.peer_hosts == ("b.example", "127.0.0.1:8002")
    env = {"KITH_CONFIG": str(config), "KITH_PEERS": "https://c.example, https://c.example"}
    assert load_settings(env=env).peers == ("https://c.example",)


def test_private_networks_are_none_by_default_and_read_from_toml_or_env(tmp_path):
    assert load_settings(env={"KITH_DATA_DIR": str(tmp_path)}).allowed_private_networks == ()
    config = tmp_path / "kith.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[federation]\nallowed_private_networks = ["10.1.0.0/16", "::1"]\n')
    assert load_settings(config, env={}).allowed_private_networks == ("10.1.0.0/16", "::1/128")
    env = {"KITH_CONFIG": str(config), "KITH_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8, 172.29.53.0/24"}
    assert load_settings(env=env).allowed_private_networks == ("127.0.0.0/8", "172.29.53.0/24")


def test_a_private_network_that_is_not_a_list_of_strings_names_the_key(tmp_path):
    config = tmp_path / "kith.toml"
    for value in ("42", "[42]", "{ a = 1 }"):
        config.write_text(f'data_dir = "{tmp_path}"\n[federation]\nallowed_private_networks = {value}\n')
        with pytest.raises(ConfigError, match="allowed_private_networks"):
            load_settings(config, env={})


def test_postgres_urls_pick_the_async_driver(tmp_path):
    env = {"KITH_DATA_DIR": str(tmp_path), "KITH_DATABASE_URL": "postgresql://u@127.0.0.1/kith"}
    assert load_settings(env=env).database_url == "postgresql+asyncpg://u@127.0.0.1/kith"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"KITH_BASE_URL": "ftp://x"}, "base_url"),
        ({"KITH_BASE_URL": "https://x.example/sub"}, "base_url"),
        ({"KITH_PEERS": "not a url"}, "peers"),
        ({"KITH_DATABASE_URL": "mysql://x"}, "database_url"),
        ({"KITH_PULL_INTERVAL_SECONDS": "soon"}, "pull_interval_seconds"),
        ({"KITH_REGISTRATION": "everyone"}, "registration"),
        ({"KITH_SMTP_PORT": "smtp"}, "smtp_port"),
        ({"KITH_ALLOWED_PRIVATE_NETWORKS": "10.0.0.0/33"}, "allowed_private_networks"),
        ({"KITH_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8, localhost"}, "allowed_private_networks"),
    ],
)
def test_bad_value_names_the_key(tmp_path, env, key):
    with pytest.raises(ConfigError, match=key):
        load_settings(env={"KITH_DATA_DIR": str(tmp_path), **env})


def test_bad_toml_and_unknown_keys(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("base_url = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, env={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match="colour"):
        load_settings(unknown, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})


def test_example_config_is_valid(tmp_path):
    example = (Path(__file__).resolve().parents[2] / "kith.example.toml").read_text()
    config = tmp_path / "kith.toml"
    config.write_text(example.replace('data_dir = "./var"', f'data_dir = "{tmp_path}"'))
    settings = load_settings(config, env={})
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.pull_interval_seconds == 600


def test_derived_hosts_are_computed_once_and_follow_replace(monkeypatch):
    from dataclasses import replace

    import server.settings as settings_module

    settings = settings_module.Settings(base_url="https://kith.example:8443", peers=("https://b.example",))
    assert settings.host == "kith.example:8443"
    assert settings.peer_hosts == ("b.example",)
    calls: list[str] = []
    monkeypatch.setattr(settings_module, "host_of", lambda url: calls.append(url) or "changed")
    assert settings.host == "kith.example:8443" and settings.peer_hosts == ("b.example",)
    assert calls == []
    monkeypatch.undo()
    moved = replace(settings, base_url="https://other.example", peers=())
    assert moved.host == "other.example" and moved.peer_hosts == ()
    assert settings == settings_module.Settings(base_url="https://kith.example:8443", peers=("https://b.example",))


def test_registration_mode_comes_from_the_accounts_table_or_the_environment(tmp_path):
    assert load_settings(env={"KITH_DATA_DIR": str(tmp_path)}).registration == "closed"
    config = tmp_path / "kith.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[accounts]\nregistration = "approval"\n')
    assert load_settings(config, env={}).registration == "approval"
    assert load_settings(config, env={"KITH_REGISTRATION": "Invite"}).registration == "invite"
    config.write_text(f'data_dir = "{tmp_path}"\n[accounts]\nregistration = "sometimes"\n')
    with pytest.raises(ConfigError, match="registration"):
        load_settings(config, env={})


def test_mail_settings_come_from_the_mail_table_or_the_environment(tmp_path):
    config = tmp_path / "kith.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[mail]\nsmtp_host = "mail.example.org"\nsmtp_port = 587\n')
    settings = load_settings(config, env={"KITH_MAIL_FROM": "kith@example.org"})
    assert (settings.smtp_host, settings.smtp_port, settings.mail_from) == ("mail.example.org", 587, "kith@example.org")
    assert load_settings(env={"KITH_DATA_DIR": str(tmp_path)}).smtp_host == ""


def test_search_backend_comes_from_the_search_table_or_the_environment(tmp_path):
    assert load_settings(env={"KITH_DATA_DIR": str(tmp_path)}).search.backend == "whoosh"
    config = tmp_path / "kith.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\ndatabase_url = "postgresql://kith@db/kith"\n'
        '[search]\nbackend = "postgres"\nlanguage = "english"\n'
    )
    settings = load_settings(config, env={})
    assert (settings.search.backend, settings.search.language) == ("postgres", "english")
    assert load_settings(config, env={"KITH_SEARCH_BACKEND": "whoosh"}).search.backend == "whoosh"


def test_postgres_search_backend_is_refused_on_sqlite(tmp_path):
    with pytest.raises(ConfigError, match="needs a PostgreSQL database_url"):
        load_settings(env={"KITH_DATA_DIR": str(tmp_path), "KITH_SEARCH_BACKEND": "postgres"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KITH_SEARCH_BACKEND": "elastic"}, "backend"),
        ({"KITH_SEARCH_LANGUAGE": "english; drop table guides"}, "language"),
    ],
)
def test_unusable_search_settings_name_the_key(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env={"KITH_DATA_DIR": str(tmp_path), **env})
