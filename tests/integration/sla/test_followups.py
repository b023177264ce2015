"""Status updates and CSAT surveys from the SLA service: a keeper and a timer scheduler against
real Redis and the real broker, with plain-time windows whose points fall due within seconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry import trace
from redis.asyncio import Redis

from libs.common.config import LiveConfig
from libs.common.events import ConversationRouted, OutboundCommand, event_id
from libs.common.kafka.producer import EventProducer, create_producer
from libs.common.keys import Keys
from libs.common.settings import Settings
from libs.common.tracing import attached
from services.sla.clocks import ClockStore, ConversationLocks
from services.sla.contacts import ContactStore
from services.sla.lifecycle import survey_timer_of
from services.sla.runtime import SlaRuntime
from services.sla.scheduler import TimerScheduler
from services.sla.timers import TimerId, TimerStore
from tests.integration.ingest.conftest import read_all
from tests.integration.sla.conftest import PARTITION, Keeper, MakeKeeper, action, kinds, routed
from tests.support.harness import FIXTURES, Isolation
from tests.support.kafka import Collected, collect, wait_until, wait_until_async
from tests.support.tracing import span_exporter
from tooling.devstack import DevStack

CONFIG = """
version: 1
queues: {desk: {}}
sla_policies:
  updates:
    first_response: {within: 1h, business_hours: false}
    resolution: {within: 1h, business_hours: false, update_customer: [59m59s]}
  quiet:
    resolution: {within: 1h, business_hours: false}
rules:
  - name: all
    then: {queue: desk, sla_policy: updates}
templates:
  status-update:
    sms: {en: "Still on it: {{ reference }}"}
    chat: {en: "Still on it: {{ reference }}"}
    email: {en: "Still on it: {{ reference }}"}
    social: {en: "Still on it: {{ reference }}"}
    whatsapp: {en: "Still on it: {{ reference }}"}
  survey:
    sms: {en: "Rate {{ reference }} 1-5"}
surveys: {after: 1s, channels: [sms]}
"""


class Worker:
    """One SLA worker: its keeper and its scheduler (running as a task while started)."""

    def __init__(self, keeper: Keeper, scheduler: TimerScheduler, producer: EventProducer) -> None:
        self.keeper, self.scheduler, self.producer = keeper, scheduler, producer
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.scheduler.assign([PARTITION])
        self.task = asyncio.create_task(self.scheduler.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


MakeWorker = Callable[[], Worker]


@pytest.fixture
async def make_worker(
    stack: DevStack, redis: Redis, isolation: Isolation, tmp_path: Path
) -> AsyncIterator[MakeWorker]:
    path = tmp_path / "sla.yaml"
    path.write_text(CONFIG)
    kafka = create_producer(
        Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers), client_id="test"
    )
    await kafka.start()
    workers: list[Worker] = []

    def make() -> Worker:
        keys = Keys(isolation.key_prefix)
        clocks, timers = ClockStore(redis, keys), TimerStore(redis, keys)
        contacts, locks = ContactStore(redis, keys), ConversationLocks()
        live = LiveConfig(path, SlaRuntime.build)
        producer = EventProducer(kafka)
        scheduler = TimerScheduler(
            live=live,
            timers=timers,
            clocks=clocks,
            contacts=contacts,
            locks=locks,
            producer=producer,
            topics=isolation.topics,
        )
        keeper = Keeper(
            live=live,
            clocks=clocks,
            timers=timers,
            contacts=contacts,
            locks=locks,
            topics=isolation.topics,
            on_scheduled=scheduler.scheduled,
        )
        worker = Worker(keeper, scheduler, producer)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        await worker.stop()
    await kafka.stop()


def commands(seen: Collected, kind: str) -> list[OutboundCommand]:
    return [
        e.data
        for e in seen.of_type(OutboundCommand)
        if isinstance(e.data, OutboundCommand) and e.data.kind == kind
    ]


def now() -> datetime:
    return datetime.now(UTC)


def new_conversation(conversation: str, policy: str = "updates") -> ConversationRouted:
    return routed(conversation, now(), queue="desk", policy=policy)


async def test_a_status_update_goes_out_when_no_agent_replied(
    make_worker: MakeWorker, stack: DevStack, isolation: Isolation
) -> None:
    worker = make_worker()
    await worker.start()
    async with collect(stack.broker.bootstrap_servers, isolation.topics.outbound_commands) as seen:
        started = await worker.keeper.feed(new_conversation("u1"))
        assert kinds(started) == [("first_response", "started"), ("resolution", "started")]
        await wait_until(lambda: bool(commands(seen, "status_update")), message="status update")
    [update] = commands(seen, "status_update")
    assert update.conversation_id == "u1"
    assert update.template == "status-update"
    assert update.channel == "sms"
    assert update.recipient == "+14155550100"
    assert update.params["reference"] == "SB-TEST1"
    [event] = [e for e in seen.events if isinstance(e.data, OutboundCommand)]
    assert event.subject == "sms:u1"  # keyed by the thread: the conversation's partition


async def test_no_status_update_after_an_agent_reply_since_the_clock_started(
    make_worker: MakeWorker, stack: DevStack, isolation: Isolation, redis: Redis
) -> None:
    worker = make_worker()
    keys = Keys(isolation.key_prefix)
    await worker.keeper.feed(new_conversation("u2"))
    replied = await worker.keeper.reply("u2", now())
    assert kinds(replied) == [("first_response", "met")]
    assert await redis.hget(keys.sla_contact("u2"), "agent_reply") is not None
    clock = await worker.keeper.clock("u2", "resolution")
    assert clock is not None
    [(_, update_at)] = clock.updates
    await worker.start()
    timer = TimerId("u2", "resolution", clock.generation)
    await wait_for_timer_after(redis, keys, timer, point_ms(update_at))  # fired, now at the breach
    published = await read_all(stack.broker.bootstrap_servers, isolation.topics.outbound_commands)
    assert published == []


async def test_a_worker_that_dies_before_releasing_republishes_the_same_command(
    make_worker: MakeWorker, stack: DevStack, isolation: Isolation, redis: Redis
) -> None:
    keys = Keys(isolation.key_prefix)
    first = make_worker()
    await first.keeper.feed(new_conversation("u3"))
    clock = await first.keeper.clock("u3", "resolution")
    assert clock is not None
    [(_, update_at)] = clock.updates
    await first.start()
    timer = TimerId("u3", "resolution", clock.generation)
    await wait_for_timer_after(redis, keys, timer, point_ms(update_at))
    await first.stop()
    # As if it died between Kafka's ack and the release: the claim is still there.
    member = timer.encode()
    await redis.zrem(keys.sla_due(PARTITION), member)
    await redis.hset(keys.sla_claimed(PARTITION), member, point_ms(update_at))
    second = make_worker()
    await second.start()  # takes the partition over and republishes the leftover claim
    assert await second.keeper.timers.claimed(PARTITION) == []
    published = await read_all(stack.broker.bootstrap_servers, isolation.topics.outbound_commands)
    assert len(published) == 2
    assert len({e.id for e in published}) == 1
    assert len({e.data.command_id for e in published if isinstance(e.data, OutboundCommand)}) == 1


async def test_a_survey_follows_the_resolution(
    make_worker: MakeWorker, stack: DevStack, isolation: Isolation
) -> None:
    worker = make_worker()
    await worker.start()
    async with collect(stack.broker.bootstrap_servers, isolation.topics.outbound_commands) as seen:
        await worker.keeper.feed(new_conversation("s1", policy="quiet"))
        done = await worker.keeper.feed(action("s1", "resolve", now()))
        assert kinds(done) == [("resolution", "met")]
        await wait_until(lambda: bool(commands(seen, "survey")), message="the survey")
    [survey] = commands(seen, "survey")
    assert survey.template == "survey"
    assert survey.command_id == event_id("s1", "resolution", "1", "survey")
    assert (survey.channel, survey.recipient, survey.reference) == (
        "sms",
        "+14155550100",
        "SB-TEST1",
    )


async def test_reopening_before_the_survey_is_due_cancels_it(
    make_worker: MakeWorker, redis: Redis, isolation: Isolation
) -> None:
    keys = Keys(isolation.key_prefix)
    worker = make_worker()  # not started: the timers are inspected, not fired
    await worker.keeper.feed(new_conversation("s2", policy="quiet"))
    await worker.keeper.feed(action("s2", "resolve", now()))
    resolved = await worker.keeper.clock("s2", "resolution")
    assert resolved is not None
    assert resolved.status == "met"
    survey = survey_timer_of(resolved).encode()
    assert await redis.zscore(keys.sla_due(PARTITION), survey) is not None
    reopened = routed("s2", now(), queue="desk", policy="quiet", is_new=False, reopened=True)
    assert ("resolution", "started") in kinds(await worker.keeper.feed(reopened))
    assert await redis.zscore(keys.sla_due(PARTITION), survey) is None
    far = point_ms(now() + timedelta(days=2))
    claimed = await worker.keeper.timers.claim_due(PARTITION, far, 100)
    assert [t.metric for t, _ in claimed] == ["resolution"]  # the new clock's, no survey


async def test_conversations_without_follow_ups_keep_no_contact(
    make_keeper: MakeKeeper, redis: Redis, isolation: Isolation
) -> None:
    keeper = make_keeper(FIXTURES / "config" / "sla.yaml")  # no update points, no surveys
    await keeper.feed(routed("q1", now()))
    await keeper.reply("q1", now())
    assert await redis.exists(Keys(isolation.key_prefix).sla_contact("q1")) == 0


def point_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def wait_for_timer_after(redis: Redis, keys: Keys, timer: TimerId, point: int) -> None:
    """Until ``timer`` is back in the partition's schedule after ``point`` (ms): the scheduler
    claimed it, published that point's outputs and released it at the clock's next point.

    A claimed timer is out of the schedule until its release, so the partition's earliest due
    time alone would already say "fired" while the publish is still under way."""

    async def fired() -> bool:
        score = await redis.zscore(keys.sla_due(PARTITION), timer.encode())
        return score is not None and score > point

    await wait_until_async(fired, message="the point fired")


async def test_a_fired_timers_send_span_continues_its_clock_trace_and_its_batch_links_to_it(
    make_worker: MakeWorker, stack: DevStack, isolation: Isolation
) -> None:
    exporter = span_exporter()
    exporter.clear()
    origin = trace.SpanContext(
        trace_id=0x5B8AA5A2D2C872E8321CF37308D69DF2,
        span_id=0x051581BF3CB55C13,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    worker = make_worker()
    with attached(trace.set_span_in_context(trace.NonRecordingSpan(origin))):
        await worker.keeper.feed(new_conversation("t1"))  # the clocks keep this trace
    await worker.start()
    topic = isolation.topics.outbound_commands
    async with collect(stack.broker.bootstrap_servers, topic) as seen:
        await wait_until(lambda: bool(commands(seen, "status_update")), message="status update")
    spans = exporter.get_finished_spans()
    [send] = [s for s in spans if s.name == f"send {topic}"]  # the fired timer's one span
    assert send.parent == origin
    assert send.kind == trace.SpanKind.PRODUCER
    assert send.context is not None
    assert send.context.trace_id == origin.trace_id
    attributes = dict(send.attributes or {})
    assert {name: attributes[name] for name in attributes if name.startswith("switchboard.")} == {
        "switchboard.conversation_id": "t1",
        "switchboard.queue": "desk",
        "switchboard.channel": "sms",
        "switchboard.sla.metric": "resolution",
        "switchboard.sla.kind": "status_update",
    }
    assert attributes["messaging.destination.name"] == topic
    [record] = seen.records
    assert dict(record.headers)["traceparent"].decode() == (
        f"00-{origin.trace_id:032x}-{send.context.span_id:016x}-01"
    )
    [batch] = [s for s in spans if s.name == "sla timers due"]
    assert batch.parent is None  # a trace of its own, linked to the clock's
    assert batch.context is not None
    assert batch.context.trace_id != origin.trace_id
    assert [link.context for link in batch.links] == [origin]
