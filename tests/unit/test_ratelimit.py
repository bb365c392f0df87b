from __future__ import annotations

from types import SimpleNamespace

import pytest

from server.errors import ProblemError
from server.ratelimit import SWEEP_EVERY, Limiter, client_address
from server.settings import ConfigError, RateLimits, load_settings
from tests.support.limits import Clock


def refused(limiter: Limiter, name: str, key: str) -> ProblemError | None:
    try:
        limiter.check(name, key)
    except ProblemError as exc:
        return exc
    return None


def test_a_key_over_its_limit_waits_out_the_rest_of_its_window():
    clock = Clock()
    limiter = Limiter(RateLimits(search="2/minute"), clock=clock)
    assert refused(limiter, "search", "a") is None
    clock.now += 20
    assert refused(limiter, "search", "a") is None
    error = refused(limiter, "search", "a")
    assert error is not None and error.status == 429 and error.headers == {"Retry-After": "40"}
    assert refused(limiter, "search", "b") is None  # another key has its own count
    clock.now += 40
    assert refused(limiter, "search", "a") is None


def test_limits_on_failures_refuse_without_counting():
    clock = Clock()
    limiter = Limiter(RateLimits(sign_in_account="2/minute"), clock=clock)
    for _ in range(5):
        limiter.refuse_if_spent("sign_in_account", "ada")  # looking counts nothing
    limiter.hit("sign_in_account", "ada")
    limiter.hit("sign_in_account", "ada")
    with pytest.raises(ProblemError) as caught:
        limiter.refuse_if_spent("sign_in_account", "ada")
    assert caught.value.headers["Retry-After"] == "60"
    limiter.forget("sign_in_account", "ada")
    limiter.refuse_if_spent("sign_in_account", "ada")


def test_memory_never_holds_more_than_its_cap_under_a_flood_of_new_keys():
    limiter = Limiter(RateLimits(), max_keys=1000, clock=Clock())
    for n in range(50_000):
        limiter.check("search", f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}")
        assert len(limiter.storage.counters) <= 1000
    # The newest keys are the ones kept, and they still count.
    assert limiter.storage.get(limiter.items["search"].key_for("search", "10.0.195.79")) == 1


def test_keys_whose_window_passed_are_dropped_without_the_cap_being_reached():
    clock = Clock()
    limiter = Limiter(RateLimits(search="5/minute"), clock=clock)
    for n in range(3000):
        limiter.check("search", f"old-{n}")
    clock.now += 61
    for n in range(SWEEP_EVERY):
        limiter.check("search", f"new-{n}")
    assert not [key for key in limiter.storage.counters if "old-" in key]
    assert len(limiter.storage.counters) <= SWEEP_EVERY


def test_a_key_read_after_its_window_is_gone():
    clock = Clock()
    limiter = Limiter(RateLimits(search="5/minute"), clock=clock)
    limiter.check("search", "a")
    clock.now += 60
    assert limiter.wait("search", "a") == 0 and limiter.storage.counters == {}


def address_of(host: str) -> str:
    return client_address(SimpleNamespace(client=SimpleNamespace(host=host)))  # type: ignore[arg-type]


def test_an_ipv6_client_counts_by_its_64_and_an_ipv4_client_by_its_address():
    assert address_of("2001:db8:1:2:aaaa::1") == address_of("2001:db8:1:2:bbbb::2") == "2001:0db8:0001:0002::/64"
    assert address_of("2001:db8:1:3::1") != address_of("2001:db8:1:2::1")
    assert address_of("::ffff:203.0.113.5") == address_of("203.0.113.5") == "203.0.113.5"
    assert address_of("203.0.113.5") != address_of("203.0.113.6")


def test_limits_and_trusted_proxies_come_from_the_config_file_and_the_environment(tmp_path):
    config = tmp_path / "kith.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n'
        '[limits]\nsearch = "30/minute"\ninbox = "50 per second"\n'
    )
    settings = load_settings(config, env={"KITH_LIMIT_SEARCH": "7/minute"})
    assert settings.rate_limits.search == "7/minute" and settings.rate_limits.inbox == "50 per second"
    assert settings.rate_limits.preview == RateLimits().preview
    assert settings.trusted_proxies == ("10.0.0.0/8", "::1/128")
    assert load_settings(config, env={"KITH_TRUSTED_PROXIES": ""}).trusted_proxies == ()
    assert load_settings(env={"KITH_DATA_DIR": str(tmp_path)}).trusted_proxies == ("127.0.0.1/32", "::1/128")


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('[limits]\nsearch = "often"\n', {}, "limits.search (KITH_LIMIT_SEARCH) must be a rate"),
        ('[limits]\nsearhc = "5/minute"\n', {}, "unknown key 'searhc' in [limits]"),
        ("", {"KITH_LIMIT_INBOX": "5/fortnight"}, "limits.inbox"),
        ('trusted_proxies = ["proxy.local"]\n', {}, "(KITH_TRUSTED_PROXIES) has a bad network 'proxy.local'"),
        ("", {"KITH_TRUSTED_PROXIES": "10.0.0.0/33"}, "trusted_proxies"),
    ],
)
def test_an_unusable_limit_or_proxy_is_a_config_error_naming_the_key(tmp_path, text, env, message):
    config = tmp_path / "kith.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n{text}')
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_settings(config, env=env)
