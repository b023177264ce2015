"""Process settings, read once from the environment at start-up.

Every service resolves its settings into one frozen object and passes it down explicitly; a bad
value fails the start with a message that names the variable. The standard ``OTEL_*`` variables
are read by the OpenTelemetry SDK itself (see :mod:`libs.common.tracing`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets published in this repository, for the dev stack (tooling/dev.py) and as docker
# compose's fallbacks: anyone can sign with them, so only SWITCHBOARD_ENV=dev accepts them.
DEV_AUTH_TOKEN: Final = "switchboard-dev-token"
DEV_CHAT_KEY: Final = "switchboard-dev-chat-session-key-0123456789"
DEV_AGENT_KEY: Final = "switchboard-dev-agent-token-key-0123456789"
DEV_SURVEY_KEY: Final = "switchboard-dev-survey-link-key-0123456789"
DEV_X_TOKEN: Final = "switchboard-dev-x-bearer"
PUBLISHED_SECRETS: Final = frozenset(
    {DEV_AUTH_TOKEN, DEV_CHAT_KEY, DEV_AGENT_KEY, DEV_SURVEY_KEY, DEV_X_TOKEN}
)


def _host_ports(value: str) -> None:
    """Raise unless ``value`` is ``host:port[,host:port...]``."""
    for server in value.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"expected host:port[,host:port], got {value!r}")


class SettingsError(RuntimeError):
    """Raised at start-up when an environment variable is missing or malformed."""


class Settings(BaseSettings):
    """Environment of one Switchboard process (documented in the README)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    switchboard_env: Literal["production", "dev"] = Field(
        default="production",
        description="`dev` (the dev stack, docker compose) accepts the secrets published in "
        "this repository and channels without their secret; production refuses both.",
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
    )
    kafka_enable_idempotence: bool = Field(
        default=False,
        description="Idempotent producer; off because the embedded broker lacks it.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis DSN of one node, or redis+cluster://host:port,host:port for a cluster.",
    )
    redis_cluster_nodes: str = Field(
        default="",
        description="Comma-separated host:port of some Redis Cluster nodes; set: use the cluster "
        "(REDIS_URL is then ignored).",
    )
    redis_sentinels: str = Field(
        default="",
        description="Comma-separated host:port of Redis Sentinels; set: use the primary they name.",
    )
    redis_sentinel_service: str = Field(
        default="mymaster", description="Name of the primary the sentinels monitor."
    )
    switchboard_config: Path = Field(
        default=Path("config/store.yaml"), description="Routing, SLA and template YAML."
    )
    switchboard_model_cache: Path | None = Field(
        default=None,
        description="Router: directory (private to the service) where fitted issue-type models "
        "are kept, so a restart on the same examples loads the model instead of fitting it.",
    )
    switchboard_topic_prefix: str = Field(
        default="switchboard.", description="Prefix of every Kafka topic name."
    )
    switchboard_key_prefix: str = Field(default="sb:", description="Prefix of every Redis key.")
    switchboard_http_host: str = Field(default="0.0.0.0", description="HTTP bind address.")
    switchboard_http_port: int = Field(default=8080, ge=0, le=65535, description="HTTP port.")
    switchboard_http_max_line_size: int = Field(
        default=8190, ge=1024, description="Longest HTTP request line or header line (else 400)."
    )
    switchboard_http_max_field_size: int = Field(
        default=8190, ge=1024, description="Longest HTTP header value (else 400)."
    )
    switchboard_smtp_port: int = Field(default=2525, ge=0, le=65535, description="SMTP port.")
    switchboard_smtp_recipients: str = Field(
        default="",
        description="Comma-separated addresses SMTP accepts mail for; empty: any recipient.",
    )
    switchboard_smtp_max_bytes: int = Field(
        default=25 * 1024 * 1024,
        ge=1024,
        le=32 * 1024 * 1024,
        description="Largest message SMTP accepts (advertised as SIZE; larger: 552).",
    )
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
    switchboard_max_record_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest record (key, value, headers) a consumer takes; larger: dead-lettered.",
    )
    switchboard_stall_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a partition with work may go without its position advancing "
        "before readiness fails and the stall metric counts it.",
    )
    switchboard_session_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        description="Kafka consumer session timeout: how soon a dead worker's partitions move.",
    )
    switchboard_fetch_max_wait_ms: int = Field(
        default=500,
        ge=0,
        le=60_000,
        description="Longest a consumer's fetch waits at the broker for data (aiokafka's "
        "default; Kafka answers as soon as min bytes are there, the embedded broker only when "
        "the wait is over, so the dev stack sets 10).",
    )
    switchboard_fetch_min_bytes: int = Field(
        default=1, ge=1, le=1024 * 1024, description="Bytes a fetch waits for (aiokafka's default)."
    )
    switchboard_fetch_nudge: bool = Field(
        default=False,
        description="Producers announce each publish on Redis pub/sub and idle consumers stop "
        "fetching until announced (the embedded broker, which polls); off for Kafka.",
    )
    switchboard_fetch_idle_poll_ms: int = Field(
        default=1_000,
        ge=10,
        le=60_000,
        description="With SWITCHBOARD_FETCH_NUDGE, how often an idle consumer fetches anyway "
        "(the bound on the wait for a record whose nudge was lost).",
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
    x_bearer_token: str = Field(
        default="", repr=False, description="X API bearer token; set it to poll mentions."
    )
    x_user_id: str = Field(default="", description="Numeric id of our X account.")
    x_consumer_secret: str = Field(
        default="", repr=False, description="X app consumer secret (CRC and webhook signatures)."
    )
    x_api_base_url: str = Field(
        default="https://api.twitter.com", description="X API base URL (the dev sandbox)."
    )
    x_poll_interval: float = Field(default=60.0, gt=0, description="Seconds between polls.")
    x_user_access_token: str = Field(
        default="",
        repr=False,
        description="OAuth 2.0 user-context token of our X account (tweet.write, dm.write); "
        "set it to answer on X.",
    )
    x_ca_bundle: Path | None = Field(
        default=None,
        description="PEM file of the only CAs trusted for X_API_BASE_URL; unset: system store.",
    )
    chat_session_key: str = Field(
        default="",
        repr=False,
        description="Key that signs chat session tokens (HS256, 32+ bytes); unset: chat is off.",
    )
    chat_session_ttl: float = Field(
        default=7 * 86_400.0, gt=0, description="Lifetime of a chat session token, in seconds."
    )
    chat_max_sockets_per_ip: int = Field(
        default=0,
        ge=0,
        description="Open chat websockets per peer address (else closed 4429); 0: no cap. "
        "Behind an ingress the peer is the ingress: cap per client IP there.",
    )
    survey_link_key: str = Field(
        default="",
        repr=False,
        description="Key that signs the answer links of email CSAT surveys (HS256, 32+ bytes); "
        "unset: surveys by email are off.",
    )
    agent_token_key: str = Field(
        default="",
        repr=False,
        description="Key that signs agent tokens of the hub (HS256, 32+ bytes); the hub needs it.",
    )
    hub_stream_maxlen: int = Field(
        default=10_000, ge=10, description="Events kept per queue for resuming agents (about)."
    )
    hub_stream_max_age: float = Field(
        default=86_400.0, gt=0, description="Seconds an event stays resumable in a queue stream."
    )
    hub_offer_seconds: float = Field(
        default=30.0, gt=0, description="Seconds an agent has to accept an offered conversation."
    )
    hub_offer_misses: int = Field(
        default=2,
        ge=1,
        description="Offers an agent lets expire in a row before counting as offline.",
    )
    hub_presence_grace: float = Field(
        default=30.0,
        gt=0,
        description="Seconds an agent stays present after its last socket closed (to reconnect).",
    )
    smtp_host: str = Field(default="", description="SMTP relay for outbound email; unset: off.")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP relay port.")
    smtp_user: str = Field(default="", description="SMTP login; unset: no AUTH.")
    smtp_password: str = Field(default="", repr=False, description="SMTP password.")
    smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP connection (STARTTLS).")
    smtp_from: str = Field(
        default="", description="From address of outbound email (also names Message-IDs)."
    )
    imap_host: str = Field(default="", description="IMAP server to poll for email; unset: off.")
    imap_port: int = Field(default=993, ge=1, le=65535, description="IMAP port.")
    imap_user: str = Field(default="", description="IMAP login.")
    imap_password: str = Field(default="", repr=False, description="IMAP password.")
    imap_mailbox: str = Field(default="INBOX", min_length=1, description="Mailbox to poll.")
    imap_ssl: bool = Field(default=True, description="IMAP over TLS (port 993).")
    imap_poll_interval: float = Field(default=60.0, gt=0, description="Seconds between IMAP polls.")
    log_level: str = Field(default="INFO", description="Root log level.")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers_have_ports(cls, value: str) -> str:
        _host_ports(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value.startswith("redis+cluster://"):
            _host_ports(value.removeprefix("redis+cluster://").split("/")[0])
        elif not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"expected a redis://, rediss://, unix:// or redis+cluster:// URL, got {value!r}"
            )
        return value

    @field_validator("redis_cluster_nodes", "redis_sentinels")
    @classmethod
    def _redis_nodes(cls, value: str) -> str:
        if value:
            _host_ports(value)
        return value

    @field_validator("chat_session_key", "agent_token_key", "survey_link_key")
    @classmethod
    def _chat_key_long_enough(cls, value: str) -> str:
        # HMAC-SHA256 keys shorter than the hash are guessable; PyJWT warns about them too.
        if value and len(value.encode()) < 32:
            raise ValueError("expected at least 32 bytes (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {value!r}")
        return level

    @field_validator("x_user_id")
    @classmethod
    def _x_user_id_numeric(cls, value: str) -> str:
        if value and not (value.isascii() and value.isdigit() and len(value) <= 20):
            raise ValueError(f"expected the numeric id of the X account, got {value!r}")
        return value

    @field_validator("x_api_base_url")
    @classmethod
    def _x_base_is_http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"expected an https:// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("x_ca_bundle", mode="before")
    @classmethod
    def _x_ca_bundle_exists(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if not Path(str(value)).is_file():
            raise ValueError(f"no such file: {value!r}")
        return value

    @model_validator(mode="after")
    def _smtp_sender_known(self) -> Settings:
        if self.smtp_host and "@" not in self.smtp_from:
            raise ValueError("SMTP_FROM (an email address) is required with SMTP_HOST")
        return self

    @model_validator(mode="after")
    def _imap_login_known(self) -> Settings:
        if self.imap_host and not (self.imap_user and self.imap_password):
            raise ValueError("IMAP_USER and IMAP_PASSWORD are required with IMAP_HOST")
        return self

    @model_validator(mode="after")
    def _production_secrets(self) -> Settings:
        if self.switchboard_env == "dev":
            return self
        problems = [
            f"{name.upper()} is a development secret published with Switchboard"
            for name, field in type(self).model_fields.items()
            if not field.repr and getattr(self, name) in PUBLISHED_SECRETS
        ]
        if self.twilio_account_sid and not self.twilio_auth_token:
            problems.append("TWILIO_AUTH_TOKEN is required with TWILIO_ACCOUNT_SID")
        if self.smtp_user and not self.smtp_password:
            problems.append("SMTP_PASSWORD is required with SMTP_USER")
        if problems:
            raise ValueError(
                "; ".join(problems) + " (set your own secrets, or SWITCHBOARD_ENV=dev)"
            )
        return self

    @model_validator(mode="after")
    def _x_account_known(self) -> Settings:
        # Both X connectors must know our own account: the poller asks for its mentions and
        # the webhook drops the direct messages it sent itself.
        if (self.x_bearer_token or self.x_consumer_secret) and not self.x_user_id:
            raise ValueError("X_USER_ID is required with X_BEARER_TOKEN or X_CONSUMER_SECRET")
        return self


def load_settings() -> Settings:
    """Read the environment, or raise :class:`SettingsError` naming each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid environment: {problems}") from None
