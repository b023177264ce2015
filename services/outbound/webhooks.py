"""Event webhooks for integrations: chosen event types POSTed to subscribers, signed.

The body is the event as a structured CloudEvent (JSON). Headers: ``X-Switchboard-Delivery``
(stable per event and subscriber, so a receiver drops repeats), ``X-Switchboard-Timestamp``
(Unix seconds; receivers should refuse old ones against replay) and
``X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`` with the
subscriber's secret from the environment variable its config names. 5xx, 429 and transport
errors are retried with back-off (honouring ``Retry-After``); other answers (4xx, 3xx) are not.
A subscriber given up on puts the event on the dead-letter topic. A delivery that got its 2xx is
remembered in Redis, so a redelivered record is not POSTed again; one cut off mid-request may
be (at least once, with the same delivery id).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
from redis.asyncio import Redis

from libs.common.backoff import Backoff
from libs.common.clock import Clock, system_clock
from libs.common.config import Config, ConfigError, Problem, event_type_named
from libs.common.events import SPEC_VERSION, Event, event_id
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from libs.common.keys import DAY, Keys
from libs.common.logs import get_logger
from libs.common.topics import Topics
from services.outbound.senders.sms import parse_retry_after

if TYPE_CHECKING:
    from libs.common.config import LiveConfig
    from services.outbound.runtime import OutboundRuntime

log = get_logger(__name__)
SIGNATURE_HEADER = "X-Switchboard-Signature"
TIMESTAMP_HEADER = "X-Switchboard-Timestamp"
DELIVERY_HEADER = "X-Switchboard-Delivery"
MAX_ATTEMPTS = 5
BACKOFF_BASE = 1.0
BACKOFF_MAX = 60.0
DONE_TTL = 7 * DAY

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Subscriber:
    name: str
    url: str
    event_types: frozenset[str]
    secret: bytes = field(repr=False)


def subscribers(config: Config, path: Path, environ: Mapping[str, str]) -> tuple[Subscriber, ...]:
    """The configured webhooks with their secrets; a missing secret refuses the configuration."""
    found = []
    for hook in config.webhooks:
        secret = environ.get(hook.secret_env, "")
        if not secret:
            message = f"webhook {hook.name!r}: environment variable {hook.secret_env} is not set"
            raise ConfigError(path, [Problem(1, 1, message)])
        types = frozenset(t for t in map(event_type_named, hook.events) if t is not None)
        found.append(Subscriber(hook.name, hook.url, types, secret.encode()))
    return tuple(found)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def cloudevent_json(event: Event) -> bytes:
    """The event as a structured-mode CloudEvent."""
    document: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "subject": event.subject,
        "time": event.time,
        "datacontenttype": "application/json",
        "data": event.data,
    }
    return _encoder.encode(document)


class WebhookDispatcher:
    """``sleep``, ``jitter`` and ``clock`` are injectable so back-off is tested without waiting."""

    def __init__(
        self,
        *,
        live: LiveConfig[OutboundRuntime],
        session: aiohttp.ClientSession,
        redis: Redis,
        keys: Keys,
        topics: Topics,
        max_attempts: int = MAX_ATTEMPTS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
        clock: Clock = system_clock,
    ) -> None:
        self._live = live
        self._session = session
        self._redis = redis
        self._keys = keys
        self._topics = topics
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._backoff = Backoff(BACKOFF_BASE, BACKOFF_MAX, uniform=jitter)
        self._clock = clock

    async def handle(self, consumed: Consumed) -> list[Outgoing]:
        event = consumed.event
        targets = [s for s in self._live.current.webhooks if event.type in s.event_types]
        if not targets:
            return []
        body = cloudevent_json(event)
        async with asyncio.TaskGroup() as group:
            tasks = {s.name: group.create_task(self._deliver(s, event, body)) for s in targets}
        failed = [name for name, task in tasks.items() if not task.result()]
        if not failed:
            return []
        log.warning("webhook given up; event dead-lettered", event_id=event.id, webhooks=failed)
        return [Outgoing(self._topics.deadletter, consumed.key, event)]

    async def _deliver(self, subscriber: Subscriber, event: Event, body: bytes) -> bool:
        delivery = event_id(event.id, "webhook", subscriber.name)
        done_key = self._keys.webhook_done(delivery)
        done = await self._redis.get(done_key)
        if done is not None:
            return done in (b"ok", "ok")
        attempt = 0
        while True:
            attempt += 1
            status, retry_after, error = await self._post(subscriber, delivery, body)
            if status is not None and 200 <= status < 300:
                await self._redis.set(done_key, "ok", ex=DONE_TTL)
                return True
            temporary = status is None or status == 429 or status >= 500
            if not temporary or attempt >= self._max_attempts:
                log.warning(
                    "webhook delivery failed",
                    webhook=subscriber.name,
                    delivery=delivery,
                    status=status,
                    error=error,
                    attempts=attempt,
                )
                await self._redis.set(done_key, "dead", ex=DONE_TTL)
                return False
            delay = self._backoff.delay(attempt)
            await self._sleep(max(delay, min(retry_after or 0.0, BACKOFF_MAX)))

    async def _post(
        self, subscriber: Subscriber, delivery: str, body: bytes
    ) -> tuple[int | None, float | None, str | None]:
        timestamp = str(int(self._clock().timestamp()))
        headers = {
            "Content-Type": "application/cloudevents+json",
            DELIVERY_HEADER: delivery,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(subscriber.secret, timestamp, body),
        }
        try:
            async with self._session.post(
                subscriber.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                return (
                    response.status,
                    parse_retry_after(response.headers.get("Retry-After"), self._clock()),
                    None,
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            return None, None, repr(exc)


def webhook_topics(config: Config, topics: Topics) -> list[str]:
    """The topics carrying the event types the webhooks at start-up subscribe to."""
    wanted = {event_type_named(e) for hook in config.webhooks for e in hook.events}
    carrying = {topics.carrying(t) for t in wanted if t is not None}
    return sorted(topic for topic in carrying if topic is not None)
