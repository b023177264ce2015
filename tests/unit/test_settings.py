import pytest

from libs.common.settings import SettingsError, load_settings


def test_defaults_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    settings = load_settings()
    assert settings.switchboard_topic_prefix == "switchboard."
    assert not settings.kafka_enable_idempotence


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "KAFKA_BOOTSTRAP_SERVERS"),
        ("REDIS_URL", "http://cache:6379", "REDIS_URL"),
        ("SWITCHBOARD_HTTP_PORT", "eighty", "SWITCHBOARD_HTTP_PORT"),
        ("SWITCHBOARD_MAX_ATTEMPTS", "0", "SWITCHBOARD_MAX_ATTEMPTS"),
        ("LOG_LEVEL", "chatty", "LOG_LEVEL"),
    ],
)
def test_a_bad_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()
