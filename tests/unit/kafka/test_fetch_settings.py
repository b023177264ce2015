"""How consumers fetch comes from the environment: Kafka's defaults unless told otherwise."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer

from libs.common.kafka.consumer import ConsumerPolicy, create_consumer
from libs.common.settings import Settings, SettingsError, load_settings

FETCH_VARIABLES = (
    "SWITCHBOARD_FETCH_MAX_WAIT_MS",
    "SWITCHBOARD_FETCH_MIN_BYTES",
    "SWITCHBOARD_FETCH_NUDGE",
    "SWITCHBOARD_FETCH_IDLE_POLL_MS",
)


@pytest.fixture(autouse=True)
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in FETCH_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_without_the_variables_consumers_fetch_as_aiokafka_does() -> None:
    settings = load_settings()
    assert settings.switchboard_fetch_max_wait_ms == 500
    assert settings.switchboard_fetch_min_bytes == 1
    assert not settings.switchboard_fetch_nudge


def test_the_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_FETCH_MAX_WAIT_MS", "10")
    monkeypatch.setenv("SWITCHBOARD_FETCH_MIN_BYTES", "4096")
    monkeypatch.setenv("SWITCHBOARD_FETCH_NUDGE", "true")
    monkeypatch.setenv("SWITCHBOARD_FETCH_IDLE_POLL_MS", "2500")
    settings = load_settings()
    assert settings.switchboard_fetch_max_wait_ms == 10
    assert settings.switchboard_fetch_min_bytes == 4096
    assert settings.switchboard_fetch_nudge
    assert settings.switchboard_fetch_idle_poll_ms == 2500


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SWITCHBOARD_FETCH_MAX_WAIT_MS", "-1"),
        ("SWITCHBOARD_FETCH_MAX_WAIT_MS", "61000"),
        ("SWITCHBOARD_FETCH_MAX_WAIT_MS", "soon"),
        ("SWITCHBOARD_FETCH_MIN_BYTES", "0"),
        ("SWITCHBOARD_FETCH_NUDGE", "perhaps"),
        ("SWITCHBOARD_FETCH_IDLE_POLL_MS", "0"),
    ],
)
def test_a_bad_value_is_named(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


async def test_every_consumer_fetches_with_the_configured_values() -> None:
    settings = Settings(
        switchboard_fetch_max_wait_ms=10,
        switchboard_fetch_min_bytes=2048,
        switchboard_fetch_nudge=True,
        switchboard_fetch_idle_poll_ms=1500,
    )
    policy = ConsumerPolicy.from_settings(
        settings, group_id="g", topics=["t"], deadletter_topic="dlq"
    )
    assert policy.nudged
    assert policy.idle_poll == 1.5
    assert policy.awake_linger == 0.05  # three fetch waits and a margin
    consumer = create_consumer(settings, policy)
    try:
        assert isinstance(consumer, AIOKafkaConsumer)
        # aiokafka keeps its arguments on the consumer; there is no public getter.
        assert consumer._fetch_max_wait_ms == 10
        assert consumer._fetch_min_bytes == 2048
    finally:
        await consumer.stop()
