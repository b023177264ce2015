"""Process settings, read once from the environment at start-up.

Every service resolves its settings into one frozen object and passes it down explicitly; a bad
value fails the start with a message that names the variable. The standard ``OTEL_*`` variables
are read by the OpenTelemetry SDK itself (see :mod:`libs.common.tracing`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """Raised at start-up when an environment variable is missing or malformed."""


class Settings(BaseSettings):
    """Environment of one Switchboard process (documented in the README)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
    )
    kafka_enable_idempotence: bool = Field(
        default=False,
        description="Idempotent producer; off because the embedded broker lacks it.",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis DSN.")
    switchboard_config: Path = Field(
        default=Path("config/store.yaml"), description="Routing, SLA and template YAML."
    )
    switchboard_topic_prefix: str = Field(
        default="switchboard.", description="Prefix of every Kafka topic name."
    )
    switchboard_key_prefix: str = Field(default="sb:", description="Prefix of every Redis key.")
    switchboard_http_host: str = Field(default="0.0.0.0", description="HTTP bind address.")
    switchboard_http_port: int = Field(default=8080, ge=0, le=65535, description="HTTP port.")
    switchboard_smtp_port: int = Field(default=2525, ge=0, le=65535, description="SMTP port.")
    switchboard_public_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Public base URL of ingest as providers see it (Twilio signs this URL).",
    )
    switchboard_max_attempts: int = Field(
        default=5, ge=1, description="Tries of a failing record before it is dead-lettered."
    )
    switchboard_max_in_flight: int = Field(
        default=64, ge=1, description="Records processed at once per partition."
    )
    switchboard_drain_seconds: float = Field(
        default=20.0, gt=0, description="Longest wait for in-flight work on shutdown."
    )
    switchboard_publish_timeout: float = Field(
        default=5.0, gt=0, description="Longest wait for Kafka to acknowledge an ingest event."
    )
    twilio_account_sid: str = Field(default="", description="Twilio account SID.")
    twilio_auth_token: str = Field(default="", repr=False, description="Twilio auth token.")
    twilio_from_number: str = Field(default="", description="Sender number for outbound SMS.")
    twilio_api_base_url: str = Field(
        default="https://api.twilio.com", description="Twilio REST base URL."
    )
    log_level: str = Field(default="INFO", description="Root log level.")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers_have_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {value!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {value!r}")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {value!r}")
        return level


def load_settings() -> Settings:
    """Read the environment, or raise :class:`SettingsError` naming each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid environment: {problems}") from None
