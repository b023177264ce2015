"""Types and constants the fixtures hand to tests (imported by tests, unlike conftest)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from libs.common.topics import Topics
from tests.support.otlp import OtlpReceiver
from tooling.devstack import ServiceProcess
from tooling.sandbox.twilio import TwilioSandbox

FIXTURES = Path(__file__).parent.parent / "fixtures"
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token"
OUR_NUMBER = "+15005550006"


@dataclass(frozen=True)
class Isolation:
    topic_prefix: str
    key_prefix: str
    topics: Topics


@dataclass
class TwilioFake:
    sandbox: TwilioSandbox
    url: str


@dataclass
class OtlpFake:
    receiver: OtlpReceiver
    url: str


Launch = Callable[..., Awaitable[list[ServiceProcess]]]
