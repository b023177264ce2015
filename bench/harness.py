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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

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


async def output_rate(bootstrap: str, topic: str, expected: int, timeout: float) -> Rate:
    """Wait for ``expected`` records on ``topic``; the rate between the first and the last
    record's timestamps (set by the producer that wrote them)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    stamps: list[int] = []
    try:
        deadline = time.monotonic() + timeout
        while len(stamps) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(stamps)} of {expected} records after {timeout}s")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batch.values():
                stamps.extend(r.timestamp for r in records)
    finally:
        await consumer.stop()
    return Rate(records=len(stamps) - 1, seconds=(max(stamps) - min(stamps)) / 1000)


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
