"""A client that stops reading is cut off with its own close code once its buffer is full;
a fast client on the same queue meanwhile receives every event, and the slow one resumes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aiohttp

from libs.common import metrics
from libs.common.clock import system_clock
from libs.common.events import SlaEvent
from libs.contracts.agent_access import WS_PATH
from services.hub.protocol import CLOSE_SLOW_CONSUMER
from services.hub.sessions import Limits
from tests.integration.hub.conftest import QUEUE, MakeHub, until_closed
from tests.support.deadline import patience
from tests.support.kafka import wait_until
from tooling.hubclient import HubClient

MAX_EVENTS = 3000


def small_receive_buffer(addr_info: Any) -> socket.socket:
    """A client socket whose kernel takes little before the sender has to wait."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def test_a_slow_consumer_is_cut_off_while_a_fast_one_gets_every_event(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(limits=Limits(send_buffer=32, socket_send_buffer=4096))
    slow_http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(socket_factory=small_receive_buffer)
    )
    token = hub.tokens.issue("slow", [QUEUE])
    slow = HubClient(hub.url + WS_PATH, token, session=slow_http)
    fast = hub.client(QUEUE, agent="fast")
    try:
        await slow.connect()
        await fast.connect()
        await slow.subscribe([QUEUE])
        await fast.subscribe([QUEUE])
        assert (await slow.next())["type"] == "snapshot"
        assert (await fast.next())["type"] == "snapshot"
        received: list[str] = []

        async def read_fast() -> None:
            async for event in fast.events(timeout=patience(60)):
                received.append(event["id"])

        reader = asyncio.create_task(read_fast())
        routed = await hub.open_conversation(QUEUE)
        cut_before = metrics.hub_slow_consumer_disconnects._value.get()
        published = 0
        now = system_clock()

        def fast_caught_up_or_slow_cut(expected: int) -> Callable[[], bool]:
            return lambda: (
                len(received) >= expected
                or metrics.hub_slow_consumer_disconnects._value.get() > cut_before
            )

        while metrics.hub_slow_consumer_disconnects._value.get() == cut_before:
            assert published < MAX_EVENTS, "the slow client was never cut off"
            for _ in range(20):
                await hub.publish(
                    hub.isolation.topics.sla_events,
                    routed.thread_key,
                    SlaEvent(
                        kind="warning",
                        conversation_id=routed.conversation_id,
                        reference=routed.reference,
                        queue=QUEUE,
                        policy="blink",
                        metric="first_response",
                        started_at=now,
                        deadline=now + timedelta(minutes=5),
                        remaining_seconds=300,
                        business_hours=False,
                        explanation="x" * 4000,  # fills buffers with fewer events
                    ),
                )
            published += 20
            await wait_until(
                fast_caught_up_or_slow_cut(published + 1),
                timeout=60,
                message="the fast client to keep up",
            )
        final = await hub.open_conversation(QUEUE)
        await wait_until(lambda: len(received) >= published + 2, timeout=60)
        stream = await hub.stream(QUEUE)
        assert received == stream  # every event, in order, none twice
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)

        # The slow client reads what reached it, then the close with the slow-consumer code.
        closed, got = await until_closed(slow)
        assert closed.code == CLOSE_SLOW_CONSUMER
        assert got == stream[: len(got)]
        assert len(got) < len(stream)
        # It resumes from its last id and gets the rest, exactly.
        await slow.connect()
        await slow.subscribe([QUEUE])
        assert (await slow.next())["type"] == "subscribed"
        rest = [(await _event(slow))["id"] for _ in range(len(stream) - len(got))]
        assert got + rest == stream
        assert rest[-1] == stream[-1]
        assert final.conversation_id
    finally:
        await slow.close()
        await fast.close()
        await slow_http.close()


async def _event(client: HubClient) -> dict[str, Any]:
    while True:
        message = await client.next(timeout=patience(30))
        if message["type"] == "event":
            return message
