"""The agent socket against hostile resume ids and a failing Redis, and where its token
travels, over real websockets to a hub served in this process (so the test can see the
server's own socket tasks, named ``hub writer <agent>``, ``hub offers <agent>`` and so on).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from libs.common.config.schema import DEFAULT_ASSIGNMENT_GROUP as GROUP
from libs.contracts.agent_access import WS_PATH
from libs.contracts.socket_tokens import PROTOCOL, offered_protocols
from services.hub.protocol import CLOSE_UNAVAILABLE
from services.hub.sessions import Limits
from tests.integration.hub.conftest import QUEUE, Hub, MakeHub, until_closed
from tests.support.kafka import wait_until, wait_until_async

ATTEMPTS = 20
OVERFLOWING = ["18446744073709551616-0", "0-18446744073709551616", "99999999999999999999-1"]


def socket_tasks(agent: str) -> list[str]:
    """Names of the server's live tasks for ``agent``'s sockets and the queue's follow task."""
    return [
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name().endswith(f" {agent}") or t.get_name() == f"hub follow {QUEUE}"
    ]


@pytest.mark.parametrize("after", OVERFLOWING)
async def test_an_overflowing_resume_id_is_refused_and_leaves_no_task(hub: Hub, after: str) -> None:
    await hub.open_conversation(QUEUE)  # a stream whose ids the bad ones are compared with
    await wait_until_async(lambda: _has_entries(hub), message="the queue's stream")
    subscribe = json.dumps({"type": "subscribe", "queues": {QUEUE: after}})
    async with hub.client(QUEUE, agent="mallory") as client:
        await client.send_raw(subscribe)
        answer = await client.next()
        assert answer["type"] == "error", answer
        assert answer["code"] == "invalid_frame"
        await client.subscribe([QUEUE])  # the socket goes on working
        assert (await client.next_of("snapshot"))["queue"] == QUEUE
    for _ in range(ATTEMPTS):
        async with hub.client(QUEUE, agent="mallory") as client:
            await client.send_raw(subscribe)
    await wait_until(
        lambda: not socket_tasks("mallory"),
        message=lambda: f"the agent's socket tasks to end: {socket_tasks('mallory')}",
    )


async def _has_entries(hub: Hub) -> bool:
    return bool(await hub.stream(QUEUE))


async def test_a_socket_whose_offers_keep_failing_is_closed_with_4503(make_hub: MakeHub) -> None:
    hub = await make_hub(limits=Limits(retry_seconds=0.05, max_read_failures=3))
    await hub.redis.set(
        hub.keys.hub_assigned(GROUP, "ada"), "not a hash"
    )  # every read of offers fails
    async with hub.client(QUEUE) as client:
        await client.presence("online", {"sms": 1})
        closed, _ = await until_closed(client)
    assert closed.code == CLOSE_UNAVAILABLE
    await wait_until(lambda: not socket_tasks("ada"), message="the closed socket's tasks to end")


async def test_the_token_is_taken_from_the_subprotocol_the_header_and_still_the_query(
    hub: Hub,
) -> None:
    token = hub.tokens.issue("ada", [QUEUE])
    url = hub.url + WS_PATH
    placements: list[dict[str, Any]] = [
        {"protocols": offered_protocols(token)},
        {"headers": {"Authorization": f"Bearer {token}"}},
        {"params": {"token": token}},
    ]
    for placement in placements:
        async with hub.http.ws_connect(url, **placement) as ws:
            hello = await ws.receive_json(timeout=10)
            assert hello["type"] == "hello", (placement, hello)
            assert hello["agent"] == "ada"
            if "protocols" in placement:
                assert ws.protocol == PROTOCOL  # the token is never echoed back
