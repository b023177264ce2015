"""A topic's history for tools: every event on it from the beginning, read without a consumer
group, so no committed offset moves and no service's group is joined (``switchboard replay``,
``switchboard corrections export``). Records that do not decode are skipped."""

from __future__ import annotations

import asyncio
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.common.events import Event, InvalidEvent, decode

IDLE_POLLS: Final = 3
"""Empty polls in a row (300 ms each) that mean the end of the topic was reached."""


async def read_history(bootstrap_servers: str, topic: str, *, timeout: float = 60.0) -> list[Event]:
    """The events of every partition of ``topic``, in offset order per partition; ValueError
    when the topic does not exist."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    events: list[Event] = []
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            raise ValueError(f"topic {topic!r} does not exist")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        idle = 0
        async with asyncio.timeout(timeout):
            while idle < IDLE_POLLS:
                batch = await consumer.getmany(timeout_ms=300)
                idle = 0 if batch else idle + 1
                for records in batch.values():
                    for record in records:
                        try:
                            events.append(decode(record.value, record.headers))
                        except InvalidEvent:
                            continue
    finally:
        await consumer.stop()
    return events
