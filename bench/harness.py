"""Shared pieces of the benchmarks: the stack, feeding a topic, counting what comes out.

Every benchmark measures Switchboard next to a ceiling measured in the same run on the same
broker (raw aiokafka, raw Redis), and reports the ratio; results go to ``bench/results/`` as
JSON. Rates come from the records' own timestamps (first to last output), so start-up and
shutdown are not part of the rate.
"""

from __future__ import annotations

import asyncio
import json
import platform
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from libs.common.events import Event, encode

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Rate:
    records: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


async def fill(bootstrap: str, topic: str, events: Iterable[tuple[str, Event]]) -> int:
    """Write events as fast as the producer batches them; returns how many."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    count = 0
    try:
        futures = []
        for key, event in events:
            value, headers = encode(event)
            futures.append(
                await producer.send(topic, value=value, key=key.encode(), headers=headers)
            )
            count += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return count


async def read_records(
    bootstrap: str, topic: str, expected: int, timeout: float
) -> list[ConsumerRecord]:
    """The first ``expected`` records of ``topic`` (group-less, from the start), waiting for
    them up to ``timeout`` seconds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {expected} records after {timeout}s")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batch.values():
                found.extend(records)
    finally:
        await consumer.stop()
    return found


async def output_rate(bootstrap: str, topic: str, expected: int, timeout: float) -> Rate:
    """Wait for ``expected`` records on ``topic``; the rate between the first and the last
    record's timestamps (set by the producer that wrote them)."""
    stamps = [r.timestamp for r in await read_records(bootstrap, topic, expected, timeout)]
    return Rate(records=len(stamps) - 1, seconds=(max(stamps) - min(stamps)) / 1000)


async def relay(bootstrap: str, source: str, target: str, count: int) -> None:
    """Raw aiokafka consume -> produce of ``count`` records, values unchanged (acks=all),
    committing per batch: the ceiling of a service's hop."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"relay-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await consumer.start()
    await producer.start()
    moved = 0
    try:
        while moved < count:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            futures = [
                await producer.send(target, value=r.value, key=r.key, headers=list(r.headers))
                for records in batch.values()
                for r in records
            ]
            await asyncio.gather(*futures)
            await consumer.commit()
            moved += len(futures)
    finally:
        await consumer.stop()
        await producer.stop()


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU time a process has used so far."""
    times = process.cpu_times()
    return float(times.user + times.system)


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        **result,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))
