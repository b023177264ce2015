"""Shared pieces of the benchmarks: the stack, feeding a topic, counting what comes out.

Every benchmark measures Switchboard next to a ceiling measured in the same run on the same
broker (raw aiokafka, raw Redis), and reports the ratio; results go to ``bench/results/`` as
JSON (:func:`report`). Rates come from the records' own timestamps (first to last output), so
start-up and shutdown are not part of the rate. A benchmark runs in :func:`bench_stack` and
starts the service it measures with :func:`running_service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from libs.common.events import Event, encode
from tooling.devstack import DevStack, ServiceProcess, free_port

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Rate:
    records: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


@contextlib.asynccontextmanager
async def bench_stack(name: str) -> AsyncIterator[tuple[DevStack, Path]]:
    """The embedded broker and Redis, and a scratch folder for configurations and service logs;
    both removed afterwards."""
    stack = DevStack()
    await stack.start()
    workdir = Path(tempfile.mkdtemp(prefix=f"sb-bench-{name}-"))
    try:
        yield stack, workdir
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_service(
    stack: DevStack,
    name: str,
    prefix: str,
    log_path: Path,
    *,
    ready_timeout: float,
    environment: dict[str, str] | None = None,
    port: int | None = None,
) -> AsyncIterator[ServiceProcess]:
    """``python -m services.{name}`` on ``stack`` under ``prefix`` (topics and keys), quiet and
    untraced, once ready; the tail of its log is printed when the measurement fails."""
    service = ServiceProcess(
        name,
        {
            **stack.environment(prefix),
            "SWITCHBOARD_KEY_PREFIX": prefix,
            "LOG_LEVEL": "WARNING",
            "OTEL_TRACES_EXPORTER": "none",
            **(environment or {}),
        },
        port=free_port() if port is None else port,
        log_path=log_path,
    )
    service.start()
    try:
        await service.wait_ready(timeout=ready_timeout)
        yield service
    except BaseException:
        print(_tail(log_path))
        raise
    finally:
        service.stop()


async def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> Rate:
    """Write (key, value, headers) records as fast as the producer batches them (acks=all);
    how fast the broker acknowledged them."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in records
        ]
        await asyncio.gather(*futures)
        return Rate(len(futures), time.perf_counter() - started)
    finally:
        await producer.stop()


async def fill(bootstrap: str, topic: str, events: Iterable[tuple[str, Event]]) -> Rate:
    """Write (key, event) pairs, encoded as the services encode them."""
    return await produce(
        bootstrap, topic, ((key.encode(), *encode(event)) for key, event in events)
    )


async def fill_raw(bootstrap: str, topic: str, count: int, size: int) -> Rate:
    """Write ``count`` records of ``size`` bytes: the producer's ceiling, nothing encoded."""
    value = b"x" * size
    return await produce(bootstrap, topic, ((str(n).encode(), value, []) for n in range(count)))


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


async def wait_for_group(bootstrap: str, group: str, members: int, timeout: float) -> None:
    """Wait until ``group`` is stable with ``members`` members: processes started together
    then share the partitions from the first record on."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            (described,) = await admin.describe_consumer_groups([group])
            (_, _, state, _, _, found) = described.groups[0]
            if state == "Stable" and len(found) == members:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group}: {state} with {len(found)} of {members}")
            await asyncio.sleep(0.2)  # the broker's group state has no change notification
    finally:
        await admin.close()


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


READY = "ready"
"""What a bench's helper process prints once it can be measured against (:func:`ready_process`)."""


def say_ready() -> None:
    print(READY, flush=True)


async def ready_process(module: str, *args: str) -> asyncio.subprocess.Process:
    """``python -m module args`` (a bench's own helper: a relay, a provider's sandbox), its
    stdout piped, once it said it is ready (:func:`say_ready`); killed if it says otherwise."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    if (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip() != READY:
        process.kill()
        await process.wait()
        raise RuntimeError(f"python -m {module} {' '.join(args)} did not start")
    return process


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU time a process has used so far."""
    times = process.cpu_times()
    return float(times.user + times.system)


def report(name: str, result: dict[str, Any]) -> None:
    """Write ``result`` to ``bench/results/{name}.json`` and print it."""
    print(write_result(name, result).read_text())


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
    return len(os.sched_getaffinity(0))
