"""SLA clock state in Redis, compact enough for a million open clocks.

A clock counts business (or plain) time in segments: ``used`` is what earlier segments spent
(before a pause, or before a transfer changed the calendar) and ``segment_start`` is where the
current one began (for a paused clock: where the pause began, or where a transfer or reload
recomputed it while paused). A paused clock counts nothing, so its stored deadline is no
deadline: what it reports is :meth:`Clock.deadline_at`. ``generation`` grows whenever the
deadline is recomputed, so timers of an older computation are recognised and dropped.

Stored shape: every key carries the hash tag of the clock's partition (``{sla:<partition>}``,
the Kafka partition its conversation's records arrive on), so a clock, its timers and the open
counts it changes share one slot of a Redis Cluster and partitions spread over the cluster. An
open clock (running or paused) is one field of ``sla:clocks:{sla:<partition>}:<bucket>``, a
hash of the partition chosen by a hash of the conversation id (so any event of the conversation
finds it, and a hash holds a bounded share of the clocks); its value is a msgpack array of short
fields with instants as integer microseconds. The explanation is not stored: it is a pure
function of the window, the time used, the segment start, the deadline and the calendar, and is
rebuilt when an event needs it. A closed clock (met or cancelled) moves to its own
``sla:clock:{sla:<partition>}:<conversation>:<metric>`` key that expires after 30 days, so
finished conversations cost nothing after a month. The number of open clocks per queue is a
counter per partition in ``sla:open:{sla:<partition>}`` kept in step by the same Lua call that
writes the clock, which reads the queue of the clock it replaces (first element of the array);
the gauge sums the partitions listed in ``sla:partitions``, where a store enters a partition
before it first writes there. The instants of customer status updates (``update_customer``) are
one more element at the end, present only when the clock has such points, so clocks of other
policies pay nothing for them.
"""

from __future__ import annotations

import asyncio
import base64
import weakref
import zlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Literal

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from libs.common.events import Channel, SlaMetric
from libs.common.keys import DAY, Keys
from libs.common.redis_client import load_script, queue_script, transaction
from libs.domain.calendar import BusinessCalendar
from libs.domain.deadlines import due_after, explain_paused, explain_window
from services.sla.steps import BREACH, Step, StepKind

CLOCK_TTL = 30 * DAY
BUCKETS = 128
"""Hashes each partition's open clocks are spread over; fixed, since every replica must find a
clock (1,000,000 clocks on 8 partitions: about 1,000 a hash)."""

ClockStatus = Literal["running", "paused", "met", "cancelled"]
OPEN: frozenset[ClockStatus] = frozenset({"running", "paused"})
METRIC_CODES: dict[SlaMetric, str] = {
    "first_response": "f",
    "next_response": "n",
    "resolution": "r",
}
METRICS_BY_CODE: dict[str, SlaMetric] = {code: metric for metric, code in METRIC_CODES.items()}
_STATUS_CODES: dict[ClockStatus, str] = {
    "running": "r",
    "paused": "p",
    "met": "m",
    "cancelled": "c",
}
_STATUSES: dict[str, ClockStatus] = {code: status for status, code in _STATUS_CODES.items()}


class Clock(msgspec.Struct, frozen=True, kw_only=True):
    conversation_id: str
    reference: str
    queue: str
    channel: Channel
    thread_key: str
    partition: int
    policy: str
    metric: SlaMetric
    generation: int
    status: ClockStatus
    started_at: datetime
    segment_start: datetime
    used_seconds: float
    within_seconds: float
    deadline: datetime
    warnings: tuple[tuple[int, datetime], ...]
    business_hours: bool
    calendar: str | None
    traceparent: str | None
    updates: tuple[tuple[int, datetime], ...] = ()
    """(index in the policy's ``update_customer``, instant) of the status updates to come."""

    @property
    def used(self) -> timedelta:
        return timedelta(seconds=self.used_seconds)

    @property
    def within(self) -> timedelta:
        return timedelta(seconds=self.within_seconds)

    def spent(self, at: datetime, calendar: BusinessCalendar | None) -> timedelta:
        """Time this clock has counted up to ``at`` (business time when it counts that)."""
        if self.status != "running":
            return self.used
        if self.business_hours and calendar is not None:
            return self.used + calendar.between(self.segment_start, at)
        return self.used + (at - self.segment_start)

    def remaining(self, at: datetime, calendar: BusinessCalendar | None) -> timedelta:
        """Time left before the deadline, counted the way the clock counts (negative after);
        a paused clock keeps what it had left when it paused."""
        if self.status == "paused":
            return self.within - self.used
        if self.business_hours and calendar is not None:
            return calendar.between(at, self.deadline)
        return self.deadline - at

    def deadline_at(self, at: datetime, calendar: BusinessCalendar | None) -> datetime:
        """The deadline as seen at ``at``. A paused clock spends nothing, so the deadline it
        had before the pause means nothing now: its deadline is where it would end if it
        resumed at ``at``."""
        if self.status != "paused":
            return self.deadline
        counted = calendar if self.business_hours else None
        return due_after(at, max(self.within - self.used, timedelta(0)), counted)

    def explanation(self, calendar: BusinessCalendar | None) -> str:
        """Why the deadline is where it is (rebuilt from the stored inputs, never stored)."""
        if self.status == "paused":
            return explain_paused(self.within, self.used)
        counted = calendar if self.business_hours else None
        return explain_window(self.within, self.used, self.segment_start, self.deadline, counted)

    def points(self) -> list[tuple[Step, datetime]]:
        """The clock's timer points: its warnings and status updates, then the breach."""
        found = [(Step(StepKind.WARNING, index), at) for index, at in self.warnings]
        found += [(Step(StepKind.UPDATE, index), at) for index, at in self.updates]
        return [*found, (BREACH, self.deadline)]


class _Record(msgspec.Struct, array_like=True, frozen=True):
    """The stored form of a clock; ``queue`` must stay first (the Lua script reads it)."""

    queue: str
    status: str
    reference: str
    channel: Channel
    thread_key: str
    partition: int
    policy: str
    generation: int
    started: int
    segment_start: int | None  # None: the same as ``started``
    used: int
    within: int  # milliseconds: windows are whole seconds at least, and this packs smaller
    deadline: int
    warnings: tuple[tuple[int, int], ...]
    calendar: str | None  # None: counted in plain time
    traceparent: str | None  # packed by ``_pack_traceparent``


class _UpdatingRecord(_Record, array_like=True, frozen=True):
    """A clock with status-update points: the record with one more element; decoding reads
    both forms (a missing trailing element is its default)."""

    updates: tuple[tuple[int, int], ...] = ()


def _us(instant: datetime) -> int:
    return round(instant.timestamp() * 1_000_000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _seconds_us(seconds: float) -> int:
    return round(seconds * 1_000_000)


_PACKED_TRACEPARENT = 34


def _pack_traceparent(value: str | None) -> str | None:
    """A version-00 ``traceparent`` (55 characters) as the base64 of its 25 bytes (34), kept
    a string because the Lua script's msgpack reader has no binary type."""
    parts = value.split("-") if value is not None else []
    if len(parts) != 4 or parts[0] != "00" or len(value or "") != 55:
        return value
    raw = bytes.fromhex("".join(parts[1:]))
    return base64.b64encode(raw).decode().rstrip("=")


def _unpack_traceparent(value: str | None) -> str | None:
    if value is None or len(value) != _PACKED_TRACEPARENT:
        return value
    raw = base64.b64decode(value + "==").hex()
    return f"00-{raw[:32]}-{raw[32:48]}-{raw[48:]}"


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_UpdatingRecord)


def encode_clock(clock: Clock) -> bytes:
    started = _us(clock.started_at)
    segment = _us(clock.segment_start)
    record = _Record(
        queue=clock.queue,
        status=_STATUS_CODES[clock.status],
        reference=clock.reference,
        channel=clock.channel,
        thread_key=clock.thread_key,
        partition=clock.partition,
        policy=clock.policy,
        generation=clock.generation,
        started=started,
        segment_start=None if segment == started else segment,
        used=_seconds_us(clock.used_seconds),
        within=round(clock.within_seconds * 1000),
        deadline=_us(clock.deadline),
        warnings=tuple((index, _us(at)) for index, at in clock.warnings),
        calendar=clock.calendar if clock.business_hours else None,
        traceparent=_pack_traceparent(clock.traceparent),
    )
    if not clock.updates:
        return _encoder.encode(record)
    updates = tuple((index, _us(at)) for index, at in clock.updates)
    return _encoder.encode((*msgspec.structs.astuple(record), updates))


def decode_clock(conversation_id: str, metric: SlaMetric, raw: bytes | str) -> Clock:
    """The clock from its stored record (redis-py types replies as ``bytes | str``)."""
    record = _decoder.decode(raw.encode() if isinstance(raw, str) else raw)
    return Clock(
        conversation_id=conversation_id,
        reference=record.reference,
        queue=record.queue,
        channel=record.channel,
        thread_key=record.thread_key,
        partition=record.partition,
        policy=record.policy,
        metric=metric,
        generation=record.generation,
        status=_STATUSES[record.status],
        started_at=_instant(record.started),
        segment_start=_instant(
            record.segment_start if record.segment_start is not None else record.started
        ),
        used_seconds=record.used / 1_000_000,
        within_seconds=record.within / 1000,
        deadline=_instant(record.deadline),
        warnings=tuple((index, _instant(at)) for index, at in record.warnings),
        business_hours=record.calendar is not None,
        calendar=record.calendar,
        traceparent=_unpack_traceparent(record.traceparent),
        updates=tuple((index, _instant(at)) for index, at in record.updates),
    )


def clock_field(conversation_id: str, metric: SlaMetric) -> str:
    return f"{conversation_id}|{METRIC_CODES[metric]}"


def bucket_of(conversation_id: str) -> int:
    return zlib.crc32(conversation_id.encode()) % BUCKETS


class ClockStore:
    """The clocks of every partition; a clock is looked up by the partition its conversation's
    records arrive on (every topic has the same partition count, so that is the partition of
    any of its records)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._put = redis.register_script(load_script("services.sla", "put_clock.lua"))
        self._entered: set[int] = set()

    def transaction(self) -> Pipeline:
        """A MULTI/EXEC pipeline on the store's Redis, to stage one partition's clocks and
        timers together (their keys share the partition's slot)."""
        return transaction(self._redis)

    async def get(self, partition: int, conversation_id: str, metric: SlaMetric) -> Clock | None:
        return (await self.get_all(partition, conversation_id, (metric,))).get(metric)

    async def get_open(
        self, partition: int, conversation_id: str, metric: SlaMetric
    ) -> Clock | None:
        """The clock if it is running or paused (what a firing timer needs), in one call."""
        raw = await self._redis.hget(
            self._open_hash(partition, conversation_id), clock_field(conversation_id, metric)
        )
        return decode_clock(conversation_id, metric, raw) if raw is not None else None

    async def get_open_many(
        self, partition: int, wanted: list[tuple[str, SlaMetric]]
    ) -> list[Clock | None]:
        """Open clocks of a partition by conversation and metric, in one round trip (a batch
        of timers): one HMGET per bucket hash rather than one HGET per clock, since each
        command costs the client more than the fields it names."""
        by_hash: dict[str, list[int]] = {}
        for n, (conversation_id, _) in enumerate(wanted):
            by_hash.setdefault(self._open_hash(partition, conversation_id), []).append(n)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, indexes in by_hash.items():
                pipe.hmget(key, [clock_field(*wanted[n]) for n in indexes])
            replies = await pipe.execute()
        raws: list[bytes | None] = [None] * len(wanted)
        for indexes, values in zip(by_hash.values(), replies, strict=True):
            for n, raw in zip(indexes, values, strict=True):
                raws[n] = raw
        return [
            decode_clock(conversation_id, metric, raw) if raw is not None else None
            for (conversation_id, metric), raw in zip(wanted, raws, strict=True)
        ]

    async def get_all(
        self, partition: int, conversation_id: str, metrics: Iterable[SlaMetric]
    ) -> dict[SlaMetric, Clock]:
        """The conversation's clocks, open or closed, in one round trip."""
        wanted = list(metrics)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(
                self._open_hash(partition, conversation_id),
                [clock_field(conversation_id, m) for m in wanted],
            )
            for metric in wanted:
                pipe.get(self._keys.sla_clock(partition, conversation_id, metric))
            [open_raws, *closed_raws] = await pipe.execute()
        found: dict[SlaMetric, Clock] = {}
        for metric, open_raw, closed_raw in zip(wanted, open_raws, closed_raws, strict=True):
            raw = open_raw if open_raw is not None else closed_raw
            if raw is not None:
                found[metric] = decode_clock(conversation_id, metric, raw)
        return found

    async def stage(self, pipe: Pipeline, clock: Clock) -> None:
        """Queue the write of ``clock`` (and the open-count change) on a pipeline; the first
        write of a partition in this process enters it in the list the gauge sums."""
        if clock.partition not in self._entered:
            await self._redis.sadd(self._keys.sla_partitions(), clock.partition)
            self._entered.add(clock.partition)
        queue_script(
            pipe,
            self._put,
            [
                self._open_hash(clock.partition, clock.conversation_id),
                self._keys.sla_clock(clock.partition, clock.conversation_id, clock.metric),
                self._keys.sla_open_counts(clock.partition),
            ],
            [
                clock_field(clock.conversation_id, clock.metric),
                encode_clock(clock),
                clock.queue if clock.status in OPEN else "",
                CLOCK_TTL,
            ],
        )

    async def open_clocks(self) -> AsyncIterator[Clock]:
        """Every open clock, partition by partition and bucket by bucket (for recomputing after
        a configuration change)."""
        for partition in await self.partitions():
            for bucket in range(BUCKETS):
                key = self._keys.sla_clocks(partition, bucket)
                async for field, raw in self._redis.hscan_iter(key):
                    conversation_id, _, code = field.decode().rpartition("|")
                    yield decode_clock(conversation_id, METRICS_BY_CODE[code], raw)

    async def partitions(self) -> list[int]:
        """The partitions clocks were ever written to, in order."""
        return sorted(int(p) for p in await self._redis.smembers(self._keys.sla_partitions()))

    async def open_counts(self, queues: Iterable[str]) -> dict[str, int]:
        """Open clocks per queue, summed over the partitions' counts."""
        names = list(queues)
        if not names:
            return {}
        totals = dict.fromkeys(names, 0)
        partitions = await self.partitions()
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.hmget(self._keys.sla_open_counts(partition), names)
            for counts in await pipe.execute():
                for queue, count in zip(names, counts, strict=True):
                    totals[queue] += int(count or 0)
        return totals

    def _open_hash(self, partition: int, conversation_id: str) -> str:
        return self._keys.sla_clocks(partition, bucket_of(conversation_id))


class ConversationLocks:
    """One lock per conversation in this process, so the consumer's changes and the timer
    scheduler's firing of the same clock never interleave (a partition has one owner)."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def hold_all(self, conversation_ids: Iterable[str]) -> HeldLocks:
        """Hold several conversations' locks, taken in sorted order: whoever holds more than
        one takes them in that order, so two holders never wait for each other."""
        return HeldLocks([self._lock(c) for c in sorted(set(conversation_ids))])

    def _lock(self, conversation_id: str) -> asyncio.Lock:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[conversation_id] = lock
        return lock


class HeldLocks:
    """Locks taken in order on entry and released on exit; if taking one fails or is
    cancelled, those already taken are released. A plain class rather than a stack of context
    managers: the timer scheduler holds a thousand at a time, and the stack cost a tenth of its
    CPU."""

    __slots__ = ("_locks", "_taken")

    def __init__(self, locks: list[asyncio.Lock]) -> None:
        self._locks = locks  # strong references: the registry's are weak
        self._taken = 0

    async def __aenter__(self) -> None:
        try:
            for lock in self._locks:
                await lock.acquire()
                self._taken += 1
        except BaseException:
            self._release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        for lock in self._locks[: self._taken]:
            lock.release()
        self._taken = 0
