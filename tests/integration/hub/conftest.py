"""Fixtures of the hub tests: the hub served in this process against the real broker and
Redis, a producer standing in for router, SLA and outbound, and the router's conversation
records written as the router writes them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from libs.common.clock import Clock, system_clock
from libs.common.config import load_config
from libs.common.events import (
    Channel,
    ConversationRouted,
    CustomerIdentity,
    Event,
    EventData,
    Requirements,
    RoutingExplanation,
    SlaEvent,
    SlaEventKind,
)
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.keys import Keys
from libs.common.settings import Settings
from libs.contracts.agent_access import WS_PATH, AgentTokens
from services.hub.app import build
from services.hub.groups import AssignmentGroups
from services.hub.open_conversations import OpenConversations
from services.hub.sessions import Limits
from tests.conftest import ServeApp
from tests.support.harness import FIXTURES, Isolation
from tooling.devstack import DevStack
from tooling.hubclient import HubClient, HubClosed

KEY = "hub-test-key-0123456789abcdef0123456789"
QUEUE = "sms-desk"
OTHER = "email-desk"


@dataclass
class Hub:
    """One or more hub replicas and the means to feed them events."""

    urls: list[str]
    settings: Settings
    keys: Keys
    isolation: Isolation
    producer: EventProducer
    redis: Redis
    http: aiohttp.ClientSession
    tokens: AgentTokens = field(default_factory=lambda: AgentTokens(KEY))

    @property
    def url(self) -> str:
        return self.urls[0]

    def conversations(self) -> OpenConversations:
        """Open conversations as the hub's fan-out keeps them, in its configuration's groups."""
        config = load_config(self.settings.switchboard_config)
        return OpenConversations(self.redis, self.keys, AssignmentGroups(lambda: config.queues))

    def client(
        self,
        *queues: str,
        agent: str = "ada",
        replica: int = 0,
        skills: tuple[str, ...] = (),
        languages: tuple[str, ...] = (),
        **kw: Any,
    ) -> HubClient:
        token = self.tokens.issue(agent, queues or (QUEUE,), skills=skills, languages=languages)
        return HubClient(self.urls[replica] + WS_PATH, token, session=self.http, **kw)

    async def publish(
        self,
        topic: str,
        key: str,
        data: EventData,
        event_id: str | None = None,
        at: datetime | None = None,
    ) -> Event:
        """Publish ``data`` as an event of time ``at`` (by default the real clock's now)."""
        event = Event(
            id=event_id or uuid.uuid4().hex,
            source="/test",
            subject=key,
            time=at or system_clock(),
            data=data,
        )
        await self.producer.publish([Outgoing(topic, key, event)])
        return event

    async def open_conversation(
        self,
        queue: str = QUEUE,
        *,
        text: str = "my parcel never arrived",
        channel: Channel = "sms",
        requires: Requirements | None = None,
        at: datetime | None = None,
        conversation_id: str | None = None,
    ) -> ConversationRouted:
        """A conversation as the router leaves it: its record in Redis and its routed event
        (``conversation_id`` orders it among those with no running clock)."""
        conversation_id = conversation_id or uuid.uuid4().hex
        thread = f"sms:+1555{uuid.uuid4().int % 10**7:07d}"
        await self.redis.hset(
            self.keys.conversation(conversation_id),
            mapping={
                "sequence": 7,
                "queue": queue,
                "status": "open",
                "thread_key": thread,
                "channel": channel,
            },
        )
        routed = routed_event(conversation_id, thread, queue, text, channel, requires, at)
        await self.publish(self.isolation.topics.routed, thread, routed)
        return routed

    async def sla(
        self,
        routed: ConversationRouted,
        kind: SlaEventKind,
        minutes: float = 5.0,
        at: datetime | None = None,
    ) -> SlaEvent:
        now = at or system_clock()
        event = SlaEvent(
            kind=kind,
            conversation_id=routed.conversation_id,
            reference=routed.reference,
            queue=routed.queue,
            policy="blink",
            metric="first_response",
            started_at=now,
            deadline=now + timedelta(minutes=minutes),
            remaining_seconds=minutes * 60,
            business_hours=False,
        )
        await self.publish(self.isolation.topics.sla_events, routed.thread_key, event, at=at)
        return event

    async def stream(self, queue: str) -> list[str]:
        """Entry ids of a queue's stream, oldest first."""
        rows: Any = await self.redis.xrange(self.keys.hub_stream(queue))
        return [entry.decode() for entry, _ in rows]


def routed_event(
    conversation_id: str,
    thread: str,
    queue: str,
    text: str,
    channel: Channel = "sms",
    requires: Requirements | None = None,
    at: datetime | None = None,
) -> ConversationRouted:
    return ConversationRouted(
        conversation_id=conversation_id,
        reference="SB-TEST7",
        thread_key=thread,
        channel=channel,
        queue=queue,
        priority=2,
        sla_policy="blink",
        issue_type="delivery",
        is_new=True,
        message_id=uuid.uuid4().hex,
        customer=CustomerIdentity(display_name="Ada", phone=thread.removeprefix("sms:")),
        text=text,
        received_at=at or system_clock(),
        requires=requires,
        explanation=RoutingExplanation(
            rule="sms", conditions=(), issue_type="delivery", confidence=1.0
        ),
        provider_message_id=f"SM{uuid.uuid4().hex}",
        our_address="+15005550006",
    )


class ManualClock:
    """A hub clock that stands still until the test moves it (push assignment's ladder)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by


async def until_closed(client: HubClient, timeout: float = 30.0) -> tuple[HubClosed, list[str]]:
    """Read until the hub closes the socket: the close, and the event ids read before it."""
    ids: list[str] = []
    while True:
        try:
            message = await client.next(timeout)
        except HubClosed as closed:
            return closed, ids
        if message["type"] == "event":
            ids.append(message["id"])


MakeHub = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def make_hub(
    stack: DevStack, isolation: Isolation, serve_app: ServeApp, redis: Redis, redis_url: str
) -> AsyncIterator[MakeHub]:
    kafka = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap_servers, acks="all")
    await kafka.start()
    http = aiohttp.ClientSession()

    async def make(
        replicas: int = 1,
        limits: Limits | None = None,
        maxlen: int = 10_000,
        clock: Clock = system_clock,
        config: Path = FIXTURES / "config" / "spine.yaml",
        **more: Any,
    ) -> Hub:
        settings = Settings(
            kafka_bootstrap_servers=stack.broker.bootstrap_servers,
            redis_url=redis_url,
            switchboard_config=config,
            switchboard_topic_prefix=isolation.topic_prefix,
            switchboard_key_prefix=isolation.key_prefix,
            switchboard_drain_seconds=5,
            # A hub stopped while a second one joins its group waits out the session before it
            # can leave; the services' tests run with the same short session.
            switchboard_session_timeout_ms=3000,
            agent_token_key=KEY,
            hub_stream_maxlen=maxlen,
            **more,
        )
        urls = [await serve_app(build(settings, limits, clock)) for _ in range(replicas)]
        return Hub(
            urls=urls,
            settings=settings,
            keys=Keys(isolation.key_prefix),
            isolation=isolation,
            producer=EventProducer(kafka),
            redis=redis,
            http=http,
        )

    yield make
    await http.close()
    await kafka.stop()


@pytest.fixture
async def hub(make_hub: MakeHub) -> Hub:
    return await make_hub()
