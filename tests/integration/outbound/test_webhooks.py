"""Event webhooks to a real HTTP receiver: signed, filtered by type, retried on 5xx/429 only,
dead-lettered after the budget, and not POSTed again for a redelivered record."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from libs.common.clock import fixed_clock
from libs.common.config import ConfigError, LiveConfig, load_config
from libs.common.events import (
    Event,
    OutboundReceipt,
    SlaEvent,
    event_id,
)
from libs.common.kafka.consumer import Consumed
from libs.common.keys import Keys
from services.outbound.runtime import OutboundRuntime
from services.outbound.webhooks import WebhookDispatcher
from tests.support.harness import Isolation

ServeApp = Callable[[web.Application], Awaitable[str]]
SECRET = "whsec-test-0123456789"
NOW = datetime(2026, 11, 18, 8, 26, 40, tzinfo=UTC)


@dataclass
class Receiver:
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        return app

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        status, headers = self.answers.pop(0) if self.answers else (204, {})
        return web.Response(status=status, headers=headers)


@dataclass
class Setup:
    dispatcher: WebhookDispatcher
    receiver: Receiver
    slept: list[float]


@pytest.fixture
async def setup(
    serve_app: ServeApp,
    redis: Redis,
    isolation: Isolation,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Setup]:
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", SECRET)
    receiver = Receiver()
    url = await serve_app(receiver.app())
    path = tmp_path / "outbound.yaml"
    path.write_text(
        "queues: {desk: {}}\nrules: []\nwebhooks:\n"
        f"  - {{name: crm, url: '{url}/hook', events: [sla.event],\n"
        "      secret_env: CRM_WEBHOOK_SECRET}\n"
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with aiohttp.ClientSession() as session:
        yield Setup(
            WebhookDispatcher(
                live=LiveConfig(path, OutboundRuntime.build),
                session=session,
                redis=redis,
                keys=Keys(isolation.key_prefix),
                topics=isolation.topics,
                max_attempts=3,
                sleep=sleep,
                jitter=lambda _low, high: high,
                clock=fixed_clock(NOW),
            ),
            receiver,
            slept,
        )


def sla_breach(conversation: str = "conv-1") -> Consumed:
    at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    data = SlaEvent(
        kind="breached",
        conversation_id=conversation,
        reference="SB-7K3Q9",
        queue="desk",
        policy="standard",
        metric="first_response",
        started_at=at,
        deadline=at,
        remaining_seconds=0,
        business_hours=True,
    )
    event = Event(
        id=event_id(conversation, "breach"), source="/sla", subject="t", time=at, data=data
    )
    return Consumed(event, "sla", 0, 0, "t")


async def test_subscribed_event_is_posted_signed(setup: Setup) -> None:
    consumed = sla_breach()
    assert await setup.dispatcher.handle(consumed) == []
    [(headers, body)] = setup.receiver.received
    timestamp = headers["X-Switchboard-Timestamp"]
    assert timestamp == str(int(NOW.timestamp()))
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert headers["X-Switchboard-Signature"] == f"sha256={expected.hexdigest()}"
    assert headers["X-Switchboard-Delivery"] == event_id(consumed.event.id, "webhook", "crm")
    document = json.loads(body)
    assert document["type"] == "com.switchboard.sla.event.v1"
    assert document["id"] == consumed.event.id
    assert document["data"]["kind"] == "breached"
    # a redelivered record is not posted again
    assert await setup.dispatcher.handle(consumed) == []
    assert len(setup.receiver.received) == 1


async def test_other_event_types_are_not_posted(setup: Setup) -> None:
    receipt = OutboundReceipt(command_id="c", conversation_id="conv", channel="sms", status="sent")
    event = Event(id="r1", source="/outbound", subject="t", time=datetime.now(UTC), data=receipt)
    assert await setup.dispatcher.handle(Consumed(event, "status", 0, 0, "t")) == []
    assert setup.receiver.received == []


async def test_server_errors_and_rate_limits_are_retried_with_back_off(setup: Setup) -> None:
    setup.receiver.answers = [(503, {}), (429, {"Retry-After": "9"})]
    assert await setup.dispatcher.handle(sla_breach()) == []
    assert len(setup.receiver.received) == 3
    assert setup.slept == [1.0, 9.0]
    deliveries = {h["X-Switchboard-Delivery"] for h, _ in setup.receiver.received}
    assert len(deliveries) == 1


async def test_client_error_is_not_retried_and_dead_letters(
    setup: Setup, isolation: Isolation
) -> None:
    setup.receiver.answers = [(410, {})]
    consumed = sla_breach()
    [dead] = await setup.dispatcher.handle(consumed)
    assert (dead.topic, dead.event) == (isolation.topics.deadletter, consumed.event)
    assert len(setup.receiver.received) == 1
    assert setup.slept == []


async def test_spent_budget_dead_letters_once(setup: Setup, isolation: Isolation) -> None:
    setup.receiver.answers = [(500, {})] * 5
    consumed = sla_breach()
    [dead] = await setup.dispatcher.handle(consumed)
    assert dead.topic == isolation.topics.deadletter
    assert len(setup.receiver.received) == 3
    assert await setup.dispatcher.handle(consumed) == [dead]  # redelivered: decided, not retried
    assert len(setup.receiver.received) == 3


def test_config_names_unknown_events_and_missing_secrets(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "queues: {desk: {}}\nrules: []\nwebhooks:\n"
        "  - {name: crm, url: 'https://crm.example/h', events: [sla.evnt], secret_env: NO_SUCH}\n"
    )
    with pytest.raises(ConfigError, match=r"line 4.*no event 'sla\.evnt'"):
        load_config(path)
    path.write_text(path.read_text().replace("sla.evnt", "sla.event"))
    with pytest.raises(ConfigError, match="NO_SUCH is not set"):
        LiveConfig(path, OutboundRuntime.build)
