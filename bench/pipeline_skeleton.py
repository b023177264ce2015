"""The whole pipeline's Kafka traffic with no work in it: the design's ceiling on this machine.

Each service is replaced by a raw aiokafka relay in a process of its own, wired as the services
are for a message that opens a conversation: ingest writes the inbound record; the router turns
it into a routed event and an acknowledgement command; the SLA service turns the routed event
into a clock event and reads the send's receipt; outbound turns the command into a receipt; the
hub reads the routed event, the clock event and the receipt. Records keep their key and carry
1.2 KB (about a routed event). No HTTP, no Redis, no decoding, no websocket: what remains is
what every message costs in produce and fetch, in the clients and the broker, before any
service does its work. The whole pipeline cannot run faster than this on the same machine.

    python -m bench.pipeline_skeleton ROLE BOOTSTRAP PREFIX COUNT   # one relay (internal)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from typing import Final

from aiokafka import AIOKafkaConsumer

from bench.harness import fill_raw, ready_process, say_ready
from libs.common.kafka.producer import create_producer
from libs.common.settings import Settings
from tooling.devstack import create_topics

ROLES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "router": {"inbound": ("routed", "commands")},
    "sla": {"routed": ("clocks",), "receipts": ()},
    "outbound": {"commands": ("receipts",)},
    "hub": {"routed": (), "clocks": (), "receipts": ()},
}
"""Each relay's input topics and what it writes for every record of each."""
TOPICS: Final = ("inbound", "routed", "commands", "clocks", "receipts")
RECORD_BYTES: Final = 1200


async def relay(role: str, bootstrap: str, prefix: str, count: int) -> None:
    """Move ``count`` records of each input, then print when the last one was handled."""
    wiring = ROLES[role]
    consumer = AIOKafkaConsumer(
        *(prefix + topic for topic in wiring),
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    producer = create_producer(Settings(kafka_bootstrap_servers=bootstrap), client_id=role)
    await consumer.start()
    await producer.start()
    say_ready()
    seen: Counter[str] = Counter()
    try:
        while any(seen[topic] < count for topic in wiring):
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            sends = []
            for tp, records in batch.items():
                source = tp.topic.removeprefix(prefix)
                seen[source] += len(records)
                for record in records:
                    for target in wiring[source]:
                        sends.append(
                            await producer.send(prefix + target, value=record.value, key=record.key)
                        )
            await asyncio.gather(*sends)
    finally:
        await consumer.stop()
        await producer.stop()
    print(json.dumps({"done": time.time()}), flush=True)


async def skeleton_rate(bootstrap: str, count: int) -> float:
    """Messages per second through the relays, from the first inbound write to the hub's last
    read; the relays run as processes beside whatever else runs on the machine."""
    prefix = f"skeleton-{uuid.uuid4().hex[:6]}."
    await create_topics(bootstrap, [prefix + topic for topic in TOPICS])
    relays: list[asyncio.subprocess.Process] = []
    try:
        for role in ROLES:
            relays.append(
                await ready_process("bench.pipeline_skeleton", role, bootstrap, prefix, str(count))
            )
        started = time.time()
        await fill_raw(bootstrap, prefix + "inbound", count, RECORD_BYTES)
        hub = relays[list(ROLES).index("hub")]
        assert hub.stdout is not None
        done = float(json.loads(await asyncio.wait_for(hub.stdout.readline(), 600))["done"])
        for process in relays:
            await asyncio.wait_for(process.wait(), timeout=60)
        return count / (done - started)
    finally:
        for process in relays:
            if process.returncode is None:
                process.kill()
                await process.wait()


def main() -> None:
    role, bootstrap, prefix, count = sys.argv[1:5]
    asyncio.run(relay(role, bootstrap, prefix, int(count)))


if __name__ == "__main__":
    main()
