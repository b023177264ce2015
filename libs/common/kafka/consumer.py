"""The one consumer loop every service runs: consume -> decode -> handle -> produce -> commit.

Delivery mechanics live here once; a service supplies only ``handle(record) -> [Outgoing]``,
and optionally ``prepare(batch)`` (:data:`Prepare`) to do ahead, once for the records one fetch
returned for a partition, work that ``handle`` would otherwise do record by record.

- At least once on the wire: a record's offset is committed only after the handler finished
  and Kafka acknowledged every event it produced (acks=all); commits are the highest
  contiguous finished offset + 1, throttled to once per ``commit_interval`` and forced on
  revoke and on shutdown. Exactly once in effect comes from deterministic event ids.
- Concurrency: records of one partition run concurrently up to ``max_in_flight``, but records
  with the same key run one after another, in offset order. At the bound the partition is
  paused (back-pressure), never buffered further.
- Errors: a property of the record (:class:`InvalidEvent`, a record over ``max_record_bytes``,
  an output too large to publish) goes straight to the dead-letter topic; an unavailable broker
  or Redis is retried until it returns (the record is not poison); any other error is retried
  with back-off and, after ``max_attempts`` (counted in Redis so restarts keep the count),
  dead-lettered with the error. The DLQ write is awaited before the commit passes the record,
  and carries a bounded copy of the record, so no record is too large to dead-letter.
  A breaker stops the consumer when most recent records went to the DLQ (a bad deploy).
- Fetching: ``fetch_max_wait_ms`` and ``fetch_min_bytes`` come from the settings (Kafka keeps
  aiokafka's defaults). With ``nudged`` (the embedded broker, :mod:`libs.common.kafka.nudge`)
  the loop dozes when no records came for ``awake_linger``: every partition is paused, so no
  fetch is sent, until a producer's nudge on one of its topics or ``idle_poll`` wakes it.
- Stalls: a partition with records in flight whose position has not advanced for
  ``stall_seconds`` is reported by :meth:`ConsumerLoop.stalled` (readiness) and a metric.
- Batches: records are decoded as they are fetched; ``prepare`` then sees the decoded records
  of one partition's fetch in offset order before any of them is handled. It is advisory: a
  failure is logged and the records are handled as if it had not run, so it never loses or
  dead-letters a record (one that fails to decode is not in the batch; its own handling
  dead-letters it).
- Shutdown (``stop()``, wired to SIGTERM): stop fetching, finish in-flight work up to
  ``drain_timeout``, commit and leave the group within ``leave_timeout``. aiokafka calls no
  revoke listener on ``stop()``, so the final commit is explicit.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis.exceptions
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes.cloudevents_attributes import (
    CLOUDEVENTS_EVENT_TYPE,
)
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_OFFSET,
    MESSAGING_MESSAGE_ID,
)
from opentelemetry.util.types import AttributeValue
from redis.asyncio import Redis

from libs.common import metrics
from libs.common.backoff import Backoff
from libs.common.events import Event, InvalidEvent, decode
from libs.common.kafka.nudge import listen
from libs.common.kafka.offsets import PartitionOffsets
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.keys import DAY, Keys
from libs.common.logs import get_logger
from libs.common.redis_client import transaction
from libs.common.settings import Settings
from libs.common.tracing import (
    PROCESS,
    SEND,
    attached,
    extract,
    mark_failed,
    messaging_span,
    span_links,
    traceparent_of,
)

log = get_logger(__name__)
_tracer = trace.get_tracer("switchboard.kafka")

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    KafkaError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    ConnectionError,
    TimeoutError,
)
"""Failures of the broker or Redis: retried until they pass, never blamed on the record. On a
Redis Cluster that includes a slot without a primary (CLUSTERDOWN, between a primary's death
and its replica's promotion), TRYAGAIN during a resharding and a slot no known node serves."""

RECORD_ERRORS: tuple[type[BaseException], ...] = (InvalidEvent, MessageSizeTooLargeError)
"""Properties of the record (invalid, or it or its output too large for Kafka): dead-lettered
at once, never retried. Caught before :data:`INFRASTRUCTURE_ERRORS`, of which the size error is
a subclass."""

GETMANY_TIMEOUT_MS = 200
"""Longest one turn of the loop waits for records (so stop, commits and the idle poll run)."""

DEADLETTER_COPY_BYTES = 64 * 1024
"""Most bytes of a record's key, of its value and of its headers that its dead letter carries:
far below the producer's 1 MiB request limit, so writing a dead letter never fails for size."""


@dataclass(frozen=True, slots=True)
class Consumed:
    """A decoded record as a handler sees it."""

    event: Event
    topic: str
    partition: int
    offset: int
    key: str


Handler = Callable[[Consumed], Awaitable[Sequence[Outgoing]]]
Prepare = Callable[[Sequence[Consumed]], Awaitable[None]]
"""A handler's look at the records one fetch returned for a partition (decoded, in offset
order), before any of them is handled: to do once for the batch what ``handle`` would do for
each record (classify many texts in one call) and keep it for ``handle``. Advisory: ``handle``
must still work without it, since a failing ``prepare`` is only logged."""
PartitionsCallback = Callable[[frozenset[TopicPartition]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConsumerPolicy:
    """How one consumer group consumes; frozen and passed in explicitly."""

    group_id: str
    topics: tuple[str, ...]
    deadletter_topic: str
    max_in_flight: int = 64
    max_attempts: int = 5
    commit_interval: float = 1.0
    drain_timeout: float = 20.0
    leave_timeout: float = 5.0
    """Longest the final commit and the group leave may take together. aiokafka's ``stop()``
    first waits for its coordination task, which in a rebalance waits for the other members (on
    the embedded broker, sometimes for good); a service still leaving when its pod's grace
    period ends is killed."""
    retry_backoff: float = 0.1
    retry_backoff_max: float = 5.0
    breaker_window: int = 200
    breaker_ratio: float = 0.5
    max_record_bytes: int = 1024 * 1024
    stall_seconds: float = 120.0
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 2_000
    max_records: int = 500
    fetch_max_wait_ms: int = 500
    fetch_min_bytes: int = 1
    nudged: bool = False
    """Doze between nudges (:mod:`libs.common.kafka.nudge`) instead of fetching all along."""
    idle_poll: float = 1.0
    """Seconds between the fetches of a dozing consumer (the bound on a lost nudge)."""
    awake_linger: float = 0.25
    """Seconds a nudged consumer keeps fetching after its last records or nudge, before it
    dozes: a few fetch waits, so a fetch sent before a nudged record was written is followed by
    one sent after (each awake fetch costs the broker CPU while traffic is sparse)."""

    @classmethod
    def from_settings(
        cls, settings: Settings, *, group_id: str, topics: Sequence[str], deadletter_topic: str
    ) -> ConsumerPolicy:
        return cls(
            group_id=group_id,
            topics=tuple(topics),
            deadletter_topic=deadletter_topic,
            max_in_flight=settings.switchboard_max_in_flight,
            max_attempts=settings.switchboard_max_attempts,
            drain_timeout=settings.switchboard_drain_seconds,
            session_timeout_ms=settings.switchboard_session_timeout_ms,
            heartbeat_interval_ms=max(settings.switchboard_session_timeout_ms // 5, 100),
            max_record_bytes=settings.switchboard_max_record_bytes,
            stall_seconds=settings.switchboard_stall_seconds,
            fetch_max_wait_ms=settings.switchboard_fetch_max_wait_ms,
            fetch_min_bytes=settings.switchboard_fetch_min_bytes,
            nudged=settings.switchboard_fetch_nudge,
            idle_poll=settings.switchboard_fetch_idle_poll_ms / 1000,
            awake_linger=(3 * settings.switchboard_fetch_max_wait_ms + 20) / 1000,
        )


class KafkaConsumer(Protocol):
    """What the loop uses of aiokafka's consumer (a fake stands in for it in unit tests)."""

    def subscribe(self, topics: list[str], *, listener: ConsumerRebalanceListener) -> None: ...
    async def start(self) -> None: ...
    async def getmany(
        self, *, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord]]: ...
    def pause(self, *partitions: TopicPartition) -> None: ...
    def resume(self, *partitions: TopicPartition) -> None: ...
    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...
    async def stop(self) -> None: ...


def create_consumer(settings: Settings, policy: ConsumerPolicy) -> KafkaConsumer:
    """The group member a :class:`ConsumerLoop` runs: manual commits, from the earliest offset."""
    consumer: KafkaConsumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=policy.group_id,
        client_id=policy.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=policy.session_timeout_ms,
        heartbeat_interval_ms=policy.heartbeat_interval_ms,
        fetch_max_wait_ms=policy.fetch_max_wait_ms,
        fetch_min_bytes=policy.fetch_min_bytes,
        # Every topic has the same partition count; the range assignor gives a member the
        # same partition numbers of every topic it reads, so one worker owns everything
        # (records and SLA timers) of the conversations that hash to its partitions.
        partition_assignment_strategy=(RangePartitionAssignor,),
    )
    return consumer


class CircuitOpen(RuntimeError):
    """Most recent records were dead-lettered: stop rather than drain traffic into the DLQ."""


@dataclass(slots=True)
class _Partition:
    progressed_at: float
    """When the position last advanced, or work arrived on an idle partition (loop's clock)."""
    offsets: PartitionOffsets = field(default_factory=PartitionOffsets)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    key_tails: dict[bytes | None, asyncio.Task[None]] = field(default_factory=dict)
    committed: int | None = None
    paused: bool = False


class ConsumerLoop:
    """Runs one consumer group member until :meth:`stop` or a fatal error."""

    def __init__(
        self,
        *,
        consumer: KafkaConsumer,
        policy: ConsumerPolicy,
        handler: Handler,
        producer: EventProducer,
        redis: Redis,
        key_prefix: str,
        prepare: Prepare | None = None,
        on_assigned: PartitionsCallback | None = None,
        on_revoked: PartitionsCallback | None = None,
        clock: Callable[[], float],
    ) -> None:
        """``clock`` (monotonic seconds) times commits, the heartbeat and stalls."""
        self._consumer = consumer
        self._policy = policy
        self._retry_backoff = Backoff(policy.retry_backoff, policy.retry_backoff_max)
        self._handler = handler
        self._prepare = prepare
        self._producer = producer
        self._redis = redis
        self._keys = Keys(key_prefix)
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._clock = clock
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        self._last_commit = 0.0
        self._outcomes: deque[bool] = deque(maxlen=policy.breaker_window)
        self._dozing = False
        self._awake_until = clock() + policy.awake_linger
        self._next_poll = 0.0
        self.heartbeat = clock()
        self.running = False

    @property
    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(self._partitions)

    def stalled(self) -> frozenset[TopicPartition]:
        """Partitions with records in flight whose position has not advanced for
        ``stall_seconds``: a stuck record holds its key and, at ``max_in_flight``, the
        partition."""
        now = self._clock()
        return frozenset(
            tp
            for tp, state in self._partitions.items()
            if state.offsets.in_flight and now - state.progressed_at > self._policy.stall_seconds
        )

    @property
    def dozing(self) -> bool:
        """Every partition paused until a nudge or the idle poll (only when ``nudged``)."""
        return self._dozing

    def stop(self) -> None:
        """Ask the loop to drain and leave; :meth:`run` returns when it has."""
        self._stopping.set()

    async def run(self) -> None:
        self._consumer.subscribe(list(self._policy.topics), listener=_Listener(self))
        if not await self._joined():
            return
        self.running = True
        nudges = self._listen_for_nudges() if self._policy.nudged else None
        try:
            while not self._stopping.is_set():
                batch = await self._consumer.getmany(
                    timeout_ms=self._getmany_timeout_ms(), max_records=self._policy.max_records
                )
                self.heartbeat = self._clock()
                for tp, records in batch.items():
                    state = self._partitions.get(tp)
                    if state is None:
                        continue  # revoked while the fetch was in flight: the new owner reads it
                    decoded = [(record, self._decode(record)) for record in records]
                    if self._prepare is not None:
                        await self._prepare_batch(tp, decoded, self._prepare)
                        if self._partitions.get(tp) is not state:
                            continue  # revoked while preparing: the new owner reads them
                    for record, consumed in decoded:
                        self._schedule(tp, state, record, consumed)
                    if state.offsets.in_flight >= self._policy.max_in_flight and not state.paused:
                        self._consumer.pause(tp)
                        state.paused = True
                if self._policy.nudged:
                    self._doze_or_poll(fetched=bool(batch))
                self._raise_failure()
                await self._commit(force=False)
                metrics.consumer_stalled_partitions.labels(self._policy.group_id).set(
                    len(self.stalled())
                )
        finally:
            self.running = False
            if nudges is not None:
                nudges.cancel()
            await self._drain(set(self._partitions))
            await self._leave()
        self._raise_failure()

    async def _leave(self) -> None:
        """Commit what finished and leave the group, within ``leave_timeout``: past it, what
        was not committed is read again by the partitions' next owner."""
        try:
            async with asyncio.timeout(self._policy.leave_timeout):
                try:
                    await self._commit(force=True)
                finally:
                    await self._consumer.stop()
        except TimeoutError:
            log.warning(
                "leaving the consumer group timed out; the group expires the member",
                group=self._policy.group_id,
                seconds=self._policy.leave_timeout,
            )

    async def _joined(self) -> bool:
        """Start the consumer (join the group), or stop it if :meth:`stop` comes first.

        Joining waits for the group's rebalance, which lasts until every member has rejoined
        (on the embedded broker a member that leaves mid-rebalance can leave the join retrying
        for good); a service told to stop while joining leaves instead of waiting it out. It
        gives the start the drain timeout first: the start also connects to the brokers, and a
        connection cut off half-made is never closed.
        """
        starting = asyncio.ensure_future(self._consumer.start())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                await asyncio.wait((starting,), timeout=self._policy.drain_timeout)
        finally:
            stopping.cancel()
            if not starting.done():
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
        if starting.cancelled():
            await self._consumer.stop()
            return False
        starting.result()
        return True

    # --- dozing between nudges ---------------------------------------------------------------

    def _listen_for_nudges(self) -> asyncio.Task[None]:
        task = asyncio.create_task(
            listen(self._redis, self._keys.prefix, self._policy.topics, self._wake)
        )

        def ended(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and (exc := task.exception()) is not None:
                self._failure = self._failure or exc
                self._stopping.set()

        task.add_done_callback(ended)
        return task

    def _doze_or_poll(self, *, fetched: bool) -> None:
        now = self._clock()
        if fetched:
            self._awake_until = max(self._awake_until, now + self._policy.awake_linger)
        if self._dozing and now >= self._next_poll:
            self._wake(linger=0.0)  # the idle poll, one fetch: finds a record whose nudge was lost
        elif not self._dozing and now >= self._awake_until:
            self._dozing = True
            self._next_poll = now + self._policy.idle_poll
            if fetchable := self._fetchable():
                self._consumer.pause(*fetchable)

    def _wake(self, linger: float | None = None) -> None:
        """Fetch now and for ``linger`` (default ``awake_linger``): a nudge, work unblocked."""
        linger = self._policy.awake_linger if linger is None else linger
        self._awake_until = max(self._awake_until, self._clock() + linger)
        if self._dozing:
            self._dozing = False
            if fetchable := self._fetchable():
                self._consumer.resume(*fetchable)

    def _getmany_timeout_ms(self) -> int:
        """Awake and nudged: about one fetch, so the loop dozes soon after the records stop
        (each turn of an idle awake loop is a fetch the broker holds)."""
        if self._policy.nudged and not self._dozing:
            return min(GETMANY_TIMEOUT_MS, self._policy.fetch_max_wait_ms + 20)
        return GETMANY_TIMEOUT_MS

    def _fetchable(self) -> list[TopicPartition]:
        """Partitions not paused for back-pressure."""
        return [tp for tp, state in self._partitions.items() if not state.paused]

    # --- scheduling -------------------------------------------------------------------------

    def _decode(self, record: ConsumerRecord) -> Consumed | InvalidEvent:
        """The record as a handler sees it, or why it cannot be handled (dead-lettered when
        its turn comes)."""
        try:
            _check_size(record, self._policy.max_record_bytes)
            event = decode(record.value, list(record.headers or ()))
        except InvalidEvent as exc:
            return exc
        return Consumed(
            event=event,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=(record.key or b"").decode("utf-8", "replace"),
        )

    async def _prepare_batch(
        self,
        tp: TopicPartition,
        decoded: Sequence[tuple[ConsumerRecord, Consumed | InvalidEvent]],
        prepare: Prepare,
    ) -> None:
        """Run ``prepare`` on the decoded records, in a span linked to each record's trace; a
        failure is logged, and the records are handled as if it had not run."""
        batch = [consumed for _, consumed in decoded if isinstance(consumed, Consumed)]
        if not batch:
            return
        attributes: dict[str, AttributeValue] = {
            MESSAGING_DESTINATION_PARTITION_ID: str(tp.partition),
            MESSAGING_CONSUMER_GROUP_NAME: self._policy.group_id,
            MESSAGING_BATCH_MESSAGE_COUNT: len(batch),
        }
        with _tracer.start_as_current_span(
            f"prepare {tp.topic}", kind=trace.SpanKind.CONSUMER, attributes=attributes
        ) as span:
            if span.is_recording():  # links cost a parse per record: only when kept
                parents = (traceparent_of(list(record.headers or ())) for record, _ in decoded)
                for link in span_links(parents):
                    span.add_link(link.context)
            try:
                await prepare(batch)
            except Exception as exc:
                mark_failed(span, "prepare failed; records handled one by one", exc)
                log.warning(
                    "preparing a batch failed; its records are handled one by one",
                    error=repr(exc),
                    topic=tp.topic,
                    partition=tp.partition,
                    records=len(batch),
                )

    def _schedule(
        self,
        tp: TopicPartition,
        state: _Partition,
        record: ConsumerRecord,
        consumed: Consumed | InvalidEvent,
    ) -> None:
        if not state.offsets.in_flight:
            state.progressed_at = self._clock()  # an idle partition has not been stalling
        state.offsets.take(record.offset)
        previous = state.key_tails.get(record.key)
        task = asyncio.create_task(self._run_after(previous, record, consumed))
        state.tasks.add(task)
        state.key_tails[record.key] = task
        task.add_done_callback(lambda t: self._finished(tp, state, record, t))

    def _finished(
        self,
        tp: TopicPartition,
        state: _Partition,
        record: ConsumerRecord,
        task: asyncio.Task[None],
    ) -> None:
        state.tasks.discard(task)
        if state.key_tails.get(record.key) is task:
            del state.key_tails[record.key]
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:
            self._failure = self._failure or exc
            self._stopping.set()
            return
        position = state.offsets.position
        state.offsets.finish(record.offset)
        if state.offsets.position != position:
            state.progressed_at = self._clock()
        if state.paused and state.offsets.in_flight < self._policy.max_in_flight // 2 + 1:
            state.paused = False
            if self._partitions.get(tp) is state:
                if self._dozing:
                    self._wake()  # its next records wait at the broker
                else:
                    self._consumer.resume(tp)

    async def _run_after(
        self,
        previous: asyncio.Task[None] | None,
        record: ConsumerRecord,
        consumed: Consumed | InvalidEvent,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # same key: keep offset order, whatever it returned
        await self._process(record, consumed)

    # --- one record -------------------------------------------------------------------------

    async def _process(self, record: ConsumerRecord, consumed: Consumed | InvalidEvent) -> None:
        started = time.perf_counter()
        headers = list(record.headers or ())
        topic = record.topic
        attributes: dict[str, AttributeValue] = {
            MESSAGING_DESTINATION_PARTITION_ID: str(record.partition),
            MESSAGING_CONSUMER_GROUP_NAME: self._policy.group_id,
            MESSAGING_KAFKA_OFFSET: record.offset,
        }
        if record.key is not None:
            attributes[MESSAGING_KAFKA_MESSAGE_KEY] = record.key.decode("utf-8", "replace")
        with (
            attached(extract(headers)),
            messaging_span(_tracer, PROCESS, topic, attributes) as span,
        ):
            if isinstance(consumed, InvalidEvent):
                await self._deadletter(record, consumed, attempts=1)
                return
            span.set_attribute(MESSAGING_MESSAGE_ID, consumed.event.id)
            span.set_attribute(CLOUDEVENTS_EVENT_TYPE, consumed.event.type)
            await self._handle_with_retries(record, consumed)
        metrics.record_processing_seconds.labels(self._policy.group_id, topic).observe(
            time.perf_counter() - started
        )

    async def _handle_with_retries(self, record: ConsumerRecord, consumed: Consumed) -> None:
        attempt = 0
        infra_failures = 0
        while True:
            try:
                outputs = await self._handler(consumed)
                await self._producer.publish(outputs)
            except RECORD_ERRORS as exc:
                await self._deadletter(record, exc, attempts=attempt + 1)
                return
            except INFRASTRUCTURE_ERRORS as exc:
                infra_failures += 1
                await self._wait_out(exc, record, infra_failures)
                continue
            except Exception as exc:
                try:
                    attempt = await self._count_attempt(record)
                except INFRASTRUCTURE_ERRORS as counting:  # the attempts are counted in Redis
                    infra_failures += 1
                    await self._wait_out(counting, record, infra_failures)
                    continue
                if attempt >= self._policy.max_attempts:
                    await self._deadletter(record, exc, attempts=attempt)
                    return
                metrics.record_retries.labels(self._policy.group_id, record.topic).inc()
                log.warning(
                    "record failed, retrying",
                    error=repr(exc),
                    attempt=attempt,
                    topic=record.topic,
                    offset=record.offset,
                )
                await self._backoff(attempt)
                continue
            self._record_outcome(ok=True, topic=record.topic)
            return

    async def _wait_out(self, exc: BaseException, record: ConsumerRecord, failures: int) -> None:
        """An infrastructure error is waited out and the record tried again; it never counts
        against the record, and never ends the loop."""
        log.warning("infrastructure unavailable, retrying", error=repr(exc), topic=record.topic)
        await self._backoff(failures)

    async def _backoff(self, attempt: int) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), self._retry_backoff.delay(attempt))
        except TimeoutError:
            return
        raise asyncio.CancelledError  # shutting down: leave the record uncommitted

    async def _count_attempt(self, record: ConsumerRecord) -> int:
        """Failed attempts so far, kept in Redis so a restart does not reset the budget."""
        key = self._keys.attempts(
            self._policy.group_id, record.topic, record.partition, record.offset
        )
        async with transaction(self._redis) as pipe:
            pipe.incr(key)
            pipe.expire(key, DAY)
            count, _ = await pipe.execute()
        return int(count)

    async def _deadletter(
        self, record: ConsumerRecord, exc: BaseException, *, attempts: int
    ) -> None:
        key, value, kept_headers = _bounded_copy(record)
        size = _record_size(record)
        truncated = _size(key, value, kept_headers) < size
        headers = [
            *kept_headers,
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_group", self._policy.group_id.encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_error", f"{type(exc).__name__}: {exc}"[:2000].encode()),
            ("dlq_original_size", str(size).encode()),
            ("dlq_truncated", b"true" if truncated else b"false"),
        ]
        mark_failed(trace.get_current_span(), "dead-lettered", exc)
        failures = 0
        sent: dict[str, AttributeValue] = {}
        if key is not None:
            sent[MESSAGING_KAFKA_MESSAGE_KEY] = key.decode("utf-8", "replace")
        with messaging_span(_tracer, SEND, self._policy.deadletter_topic, sent):
            while True:
                try:
                    await self._producer.kafka.send_and_wait(
                        self._policy.deadletter_topic, value=value, key=key, headers=headers
                    )
                    break
                except KafkaError as send_error:
                    failures += 1
                    log.warning("dead-letter write failed, retrying", error=repr(send_error))
                    await self._backoff(failures)
        log.error(
            "record dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=repr(exc),
            attempts=attempts,
        )
        self._record_outcome(ok=False, topic=record.topic)

    def _record_outcome(self, *, ok: bool, topic: str) -> None:
        metrics.records_processed.labels(
            self._policy.group_id, topic, "ok" if ok else "deadlettered"
        ).inc()
        self._outcomes.append(ok)
        window = self._outcomes
        if len(window) == window.maxlen and window.count(False) > self._policy.breaker_ratio * len(
            window
        ):
            raise CircuitOpen(
                f"{window.count(False)} of the last {len(window)} records were dead-lettered"
            )

    # --- commits and rebalances -------------------------------------------------------------

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _commit(self, *, force: bool, only: set[TopicPartition] | None = None) -> None:
        now = self._clock()
        if not force and now - self._last_commit < self._policy.commit_interval:
            return
        self._last_commit = now
        offsets = {}
        for tp, state in self._partitions.items():
            if only is not None and tp not in only:
                continue
            position = state.offsets.position
            if position is not None and position != state.committed:
                offsets[tp] = OffsetAndMetadata(position, "")
        if offsets:
            await self._consumer.commit(offsets)
            for tp, meta in offsets.items():
                self._partitions[tp].committed = meta.offset
        self._update_lag()

    def _update_lag(self) -> None:
        for tp, state in self._partitions.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None and state.committed is not None:
                metrics.consumer_lag.labels(self._policy.group_id, tp.topic, str(tp.partition)).set(
                    max(0, highwater - state.committed)
                )

    async def _drain(self, partitions: set[TopicPartition]) -> None:
        tasks = {t for tp in partitions if (s := self._partitions.get(tp)) for t in s.tasks}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self._policy.drain_timeout)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("drain timed out; unfinished records stay uncommitted", count=len(pending))
            await asyncio.wait(pending)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        owned = revoked & set(self._partitions)
        await self._drain(owned)
        try:
            await self._commit(force=True, only=owned)
        except KafkaError as exc:
            log.warning(
                "commit on revoke failed; the next owner may redo some records", error=repr(exc)
            )
        for tp in owned:
            del self._partitions[tp]
            metrics.consumer_lag.remove(self._policy.group_id, tp.topic, str(tp.partition))
        if self._on_revoked and owned:
            await self._on_revoked(frozenset(owned))

    async def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            self._partitions.setdefault(tp, _Partition(progressed_at=self._clock()))
        self._wake()  # new partitions may hold a backlog
        if self._on_assigned and assigned:
            await self._on_assigned(frozenset(assigned))


def _size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """Bytes of a key, value and headers (what Kafka's size limits count, less framing)."""
    return len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in headers)


def _record_size(record: ConsumerRecord) -> int:
    return _size(record.key, record.value, record.headers or ())


def _check_size(record: ConsumerRecord, limit: int) -> None:
    if (size := _record_size(record)) > limit:
        raise InvalidEvent(f"record of {size} bytes is over the {limit} bytes a consumer takes")


def _bounded_copy(
    record: ConsumerRecord,
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """Key, value and leading headers of a record, each within :data:`DEADLETTER_COPY_BYTES`."""
    headers, room = [], DEADLETTER_COPY_BYTES
    for name, data in record.headers or ():
        room -= len(name) + len(data)
        if room < 0:
            break
        headers.append((name, data))
    key, value = (part and part[:DEADLETTER_COPY_BYTES] for part in (record.key, record.value))
    return key, value, headers


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._loop.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._loop.partitions_assigned(set(assigned))
