import re
from pathlib import Path

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
        ("REDIS_URL", "redis+cluster://cache", "REDIS_URL"),
        ("REDIS_CLUSTER_NODES", "cache-1:7000,cache-2", "REDIS_CLUSTER_NODES"),
        ("REDIS_SENTINELS", "sentinel", "REDIS_SENTINELS"),
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


# The development secrets published in this repository (docker-compose.yml falls back to some).
PUBLISHED = {
    "TWILIO_AUTH_TOKEN": "switchboard-dev-token",
    "AGENT_TOKEN_KEY": "switchboard-dev-agent-token-key-0123456789",
    "CHAT_SESSION_KEY": "switchboard-dev-chat-session-key-0123456789",
    "SURVEY_LINK_KEY": "switchboard-dev-survey-link-key-0123456789",
}
COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"


def compose_fallbacks() -> dict[str, str]:
    """``${VARIABLE:-fallback}`` of docker-compose.yml, for variables holding secrets."""
    found = re.findall(r"\$\{([A-Z_]+):-([^}]*)\}", COMPOSE.read_text())
    secret = re.compile(r"TOKEN|SECRET|PASSWORD|_KEY$")
    return {name: value for name, value in found if secret.search(name)}


def test_compose_falls_back_only_to_published_secrets() -> None:
    assert compose_fallbacks().items() <= PUBLISHED.items()


@pytest.mark.parametrize(("variable", "value"), sorted(PUBLISHED.items()))
def test_production_refuses_a_published_secret_and_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.delenv("SWITCHBOARD_ENV", raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable) as refused:
        load_settings()
    assert value not in str(refused.value)  # a secret is never echoed


def test_the_dev_environment_says_so_and_may_use_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in PUBLISHED.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("SWITCHBOARD_ENV", "dev")
    assert load_settings().twilio_auth_token == PUBLISHED["TWILIO_AUTH_TOKEN"]
    monkeypatch.setenv("SWITCHBOARD_ENV", "staging")
    with pytest.raises(SettingsError, match="SWITCHBOARD_ENV"):
        load_settings()


@pytest.mark.parametrize(
    ("enabling", "missing"),
    [
        ({"TWILIO_ACCOUNT_SID": "AC" + "1" * 32}, "TWILIO_AUTH_TOKEN"),
        (
            {"SMTP_HOST": "smtp.example", "SMTP_FROM": "help@example.com", "SMTP_USER": "help"},
            "SMTP_PASSWORD",
        ),
    ],
)
def test_production_refuses_an_enabled_channel_without_its_secret(
    monkeypatch: pytest.MonkeyPatch, enabling: dict[str, str], missing: str
) -> None:
    monkeypatch.delenv("SWITCHBOARD_ENV", raising=False)
    monkeypatch.delenv(missing, raising=False)
    for variable, value in enabling.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=missing):
        load_settings()
    monkeypatch.setenv(missing, "a-secret-of-our-own")
    load_settings()
    monkeypatch.delenv(missing)
    monkeypatch.setenv("SWITCHBOARD_ENV", "dev")
    load_settings()
