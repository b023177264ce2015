"""Replies on X through tweepy against the X API sandbox: public and short under a mention, by
DM in a DM thread, rate limits and refusals classified, and no automatic public replies."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis

from libs.common.config import LiveConfig
from libs.common.events import CommandKind, Event, OutboundCommand, OutboundReceipt, event_id
from libs.common.kafka.consumer import Consumed
from libs.common.keys import Keys
from services.outbound.deliver import Deliverer
from services.outbound.runtime import OutboundRuntime
from services.outbound.senders.base import OutgoingMessage, PermanentFailure, TemporaryFailure
from services.outbound.senders.x import TAKE_PRIVATE, XReplies, weighted_length
from services.outbound.sends import SendRecords
from tests.support.harness import Isolation
from tooling.sandbox.x import XSandbox

CUSTOMER_ID = "2244994945"
MENTION_ID = "1900000000000000007"
ServeApp = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def x(serve_app: ServeApp) -> AsyncIterator[tuple[XSandbox, XReplies]]:
    sandbox = XSandbox(bearer_token="app-only-token", user_token="user-token")
    replies = XReplies(user_token="user-token", base_url=await serve_app(sandbox.app()))
    yield sandbox, replies
    await replies.close()


def outgoing(**fields: Any) -> OutgoingMessage:
    base: dict[str, Any] = {
        "command_id": "cmd-1",
        "recipient": CUSTOMER_ID,
        "sender": None,
        "subject": None,
        "text": "Sorry to hear that! We are on it.",
        "in_reply_to": MENTION_ID,
        "thread_key": f"x:{MENTION_ID}",
    }
    return OutgoingMessage(**{**base, **fields})


async def test_mention_gets_a_short_public_reply_pointing_to_dms(
    x: tuple[XSandbox, XReplies],
) -> None:
    sandbox, replies = x
    long_text = "We found the problem with your order and " + "we are fixing it now " * 20
    tweet_id = await replies.send(outgoing(text=long_text))
    [posted] = sandbox.posted
    assert posted["id"] == tweet_id
    assert posted["in_reply_to_tweet_id"] == MENTION_ID
    assert weighted_length(posted["text"]) <= 280
    assert posted["text"].endswith(TAKE_PRIVATE)
    assert long_text.startswith(posted["text"].removesuffix(TAKE_PRIVATE))
    assert sandbox.direct_messages == []


async def test_dm_thread_is_answered_privately(x: tuple[XSandbox, XReplies]) -> None:
    sandbox, replies = x
    text = "Your refund reference is R-1234. " * 20  # DMs are not cut
    event = await replies.send(outgoing(thread_key=f"x-dm:1:{CUSTOMER_ID}", text=text))
    assert sandbox.direct_messages == [{"dm_event_id": event, "to": CUSTOMER_ID, "text": text}]
    assert sandbox.posted == []


async def test_rate_limit_is_temporary_until_the_reset(x: tuple[XSandbox, XReplies]) -> None:
    sandbox, replies = x
    sandbox.fail_writes(429, reset=int(time.time()) + 30)
    with pytest.raises(TemporaryFailure) as caught:
        await replies.send(outgoing())
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 30
    sandbox.fail_writes(503)
    with pytest.raises(TemporaryFailure, match="503"):
        await replies.send(outgoing())
    await replies.send(outgoing())
    assert len(sandbox.posted) == 1


async def test_refusals_are_permanent(x: tuple[XSandbox, XReplies], serve_app: ServeApp) -> None:
    sandbox, replies = x
    await replies.send(outgoing())
    with pytest.raises(PermanentFailure, match="403"):  # duplicate content
        await replies.send(outgoing(command_id="cmd-2"))
    app_only = XReplies(user_token="app-only-token", base_url=await serve_app(sandbox.app()))
    try:
        with pytest.raises(PermanentFailure, match="403"):
            await app_only.send(outgoing(text="another"))
    finally:
        await app_only.close()


async def test_no_automatic_public_reply_unless_configured(
    x: tuple[XSandbox, XReplies], redis: Redis, isolation: Isolation, tmp_path: Path
) -> None:
    sandbox, replies = x
    path = tmp_path / "outbound.yaml"
    template = '{ack: {social: {en: "Thanks, we are looking into it ({{ reference }})."}}}'
    path.write_text(f"queues: {{desk: {{}}}}\nrules: []\ntemplates: {template}\n")
    live = LiveConfig(path, OutboundRuntime.build)
    deliverer = Deliverer(
        live=live,
        senders={"social": replies},
        sends=SendRecords(redis, Keys(isolation.key_prefix)),
        topics=isolation.topics,
    )

    async def deliver(command_id: str, kind: CommandKind) -> OutboundReceipt:
        command = OutboundCommand(
            command_id=command_id,
            kind=kind,
            channel="social",
            conversation_id="conv-1",
            reference="SB-7K3Q9",
            recipient=CUSTOMER_ID,
            template="ack",
            params={"reference": command_id},  # X refuses the same text twice
            in_reply_to=MENTION_ID,
        )
        thread = f"x:{MENTION_ID}"
        event = Event(
            id=event_id(command_id),
            source="/t",
            subject=thread,
            time=datetime.now(UTC),
            data=command,
        )
        [output] = await deliverer.handle(Consumed(event, "commands", 0, 0, thread))
        assert isinstance(output.event.data, OutboundReceipt)
        return output.event.data

    assert (await deliver("ack-1", "auto_ack")).status == "suppressed"
    assert sandbox.write_requests == 0
    assert (await deliver("reply-1", "agent_reply")).status == "sent"

    path.write_text(path.read_text() + "outbound: {social_auto_reply: true}\n")
    assert await live.reload_if_changed()
    assert (await deliver("ack-2", "auto_ack")).status == "sent"
    assert [p["in_reply_to_tweet_id"] for p in sandbox.posted] == [MENTION_ID, MENTION_ID]
