"""REDIS_URL forms and the on/off variables, read one way by the app and push."""

from __future__ import annotations

import pytest

from tidings.app.settings import AppSettings
from tidings.broker.redis_config import RedisConfig
from tidings.environment import flag


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", " yes ", "on"])
def test_every_true_spelling_is_true(raw: str) -> None:
    assert flag({"X": raw}, "X", False) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off"])
def test_every_false_spelling_is_false(raw: str) -> None:
    assert flag({"X": raw}, "X", True) is False


def test_unset_or_empty_gives_the_default_and_a_typo_is_an_error() -> None:
    assert flag({}, "X", True) is True
    assert flag({"X": ""}, "X", False) is False
    with pytest.raises(ValueError, match="X='ture'"):
        flag({"X": "ture"}, "X", False)


def test_app_and_push_read_sharded_the_same_way() -> None:
    env = {"REDIS_URL": "redis://h:1/0", "TIDINGS_REDIS_SHARDED": "true"}
    app = AppSettings.from_env(env).redis_config()
    assert app is not None and app.sharded
    assert RedisConfig.from_env(env) == app


def test_a_cluster_url_names_its_seeds() -> None:
    config = RedisConfig.parse("redis+cluster://:secret@a:7000,b:7001")
    assert config.cluster and config.seeds == (("a", 7000), ("b", 7001))
    assert config.password == "secret" and config.scheme == "redis"
    assert "secret" not in config.describe()


def test_a_plain_url_with_the_cluster_switch_is_one_seed() -> None:
    config = RedisConfig.from_env({"REDIS_URL": "redis://a:7000/0", "TIDINGS_REDIS_CLUSTER": "1"})
    assert config.cluster and config.seeds == (("a", 7000),)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://a:1", "scheme"),
        ("redis+cluster://a", "host:port"),
        ("redis+cluster://", "at least one"),
    ],
)
def test_a_url_it_cannot_use_fails_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        RedisConfig.parse(url)
    with pytest.raises(ValueError, match=reason):
        AppSettings.from_env({"REDIS_URL": url})
