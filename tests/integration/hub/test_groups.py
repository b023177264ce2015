"""Assignment groups (issue 22): each group's push assignment in its own Redis slot, agents
taking offers in one group, and conversations moved between groups by repeatable steps."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from libs.common.config import load_config
from libs.common.config.schema import DEFAULT_ASSIGNMENT_GROUP
from libs.common.events import AgentAction, Event, EventData
from libs.common.kafka.consumer import Consumed
from libs.common.keys import Keys
from libs.common.redis_client import as_text
from services.hub.assignment import Assigner, AssignmentPolicy
from services.hub.fanout import FanOut
from services.hub.figures import Figures
from services.hub.groups import AssignmentGroups
from services.hub.incidents import Incidents
from services.hub.open_conversations import OpenConversations
from services.hub.streams import QueueStreams
from services.hub.transcript import Transcripts
from tests.integration.hub.conftest import OTHER, QUEUE, MakeHub, routed_event
from tests.support.crashes import CallCounter, CountedScripts, Crash
from tests.support.deadline import patience
from tests.support.harness import FIXTURES, Isolation
from tests.support.kafka import wait_until_async
from tooling.hubclient import ActionFailed

pytestmark = pytest.mark.cluster  # also on a Redis Cluster (tests/conftest.py)

CONFIG = FIXTURES / "config" / "groups.yaml"
MAIL = "mail"  # email-desk's group; sms-desk is in the default one
LONG = 3600.0


async def test_an_agent_takes_offers_in_one_group_only(make_hub: MakeHub) -> None:
    hub = await make_hub(config=CONFIG)
    async with hub.client(QUEUE, OTHER) as both:
        with pytest.raises(ActionFailed) as refused:
            await both.presence("online", {"sms": 1})
    assert refused.value.code == "forbidden"
    assert "assignment groups (default, mail)" in refused.value.frame["message"]
    async with hub.client(OTHER, agent="bo") as bo:
        assert (await bo.presence("online", {"email": 1}))["status"] == "online"
    assert await hub.redis.hget(hub.keys.hub_agent(MAIL, "bo"), "status") == b"online"
    assert not await hub.redis.exists(hub.keys.hub_agent(DEFAULT_ASSIGNMENT_GROUP, "bo"))


async def test_a_transfer_to_another_group_is_offered_to_that_groups_agents(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(config=CONFIG, hub_offer_seconds=LONG)
    routed = await hub.open_conversation(QUEUE, channel="email")
    conversation = routed.conversation_id
    async with hub.client(QUEUE) as ada, hub.client(OTHER, agent="bo") as bo:
        await ada.presence("online", {"email": 1})
        offer = await ada.next_of("offer", timeout=patience(20))
        assert offer["conversation"]["conversation_id"] == conversation
        await ada.accept(offer["offer_id"])
        await ada.act("transfer", conversation, queue=OTHER)
        await bo.presence("online", {"email": 1})
        moved = await bo.next_of("offer", timeout=patience(20))
        assert moved["conversation"]["conversation_id"] == conversation
        assert moved["queue"] == OTHER
        assert moved["conversation"]["last_text"] == routed.text  # the summary came along

    keys = hub.keys

    async def moved_to_mail() -> bool:  # the offer can come before the move's last step
        return await hub.redis.get(keys.hub_group_of(conversation)) == MAIL.encode()

    await wait_until_async(moved_to_mail)
    assert not await hub.redis.exists(keys.hub_conversation(DEFAULT_ASSIGNMENT_GROUP, conversation))
    assert not await hub.redis.zscore(keys.hub_open(DEFAULT_ASSIGNMENT_GROUP, QUEUE), conversation)
    assert not await hub.redis.hlen(keys.hub_assigned(DEFAULT_ASSIGNMENT_GROUP, "ada"))
    assert await hub.redis.zscore(keys.hub_open(MAIL, OTHER), conversation) is not None


# --- a move between groups, crashed after every step ---------------------------------------


def consumed(data: EventData, event_id: str) -> Consumed:
    event = Event(id=event_id, source="/test", subject="t", time=datetime.now(UTC), data=data)
    return Consumed(event=event, topic="t", partition=0, offset=0, key="t")


class FanOutRun:
    """A hub's fan-out in this process on its own key prefix, its Redis calls counted."""

    def __init__(self, redis: Redis, prefix: str, counter: CallCounter) -> None:
        config = load_config(CONFIG)
        self.keys = keys = Keys(prefix)
        scripts = CountedScripts(redis, counter)
        groups = AssignmentGroups(lambda: config.queues)
        conversations = OpenConversations(redis, keys, groups, scripts=scripts)
        streams = QueueStreams(redis, keys, maxlen=1000, max_age=86_400.0, scripts=scripts)
        transcripts = Transcripts(redis, keys, scripts=scripts)
        self.conversations = conversations
        self.assigner = Assigner(
            redis,
            keys,
            conversations,
            AssignmentPolicy(offer_seconds=LONG, misses=5, grace=LONG),
            queues=lambda: frozenset(config.queues),
            transcripts=transcripts,
            streams=streams,
        )
        self.fanout = FanOut(
            streams,
            conversations,
            self.assigner,
            transcripts,
            Figures(redis, keys, conversations),
            Incidents(redis, keys, groups),
        )


@pytest.fixture
async def runs(redis: Redis, isolation: Isolation) -> AsyncIterator[list[FanOutRun]]:
    made: list[FanOutRun] = []
    yield made
    for run in made:
        await run.assigner.stop()


async def transferred(
    run: FanOutRun, counter: CallCounter, crash_at: int | None
) -> tuple[str, int]:
    """A conversation opened in the SMS desk, then transferred to the email desk, crashing
    before the transfer's Redis call ``crash_at`` (None: no crash), then the transfer
    redelivered: its id, and the calls the first delivery of the transfer made."""
    conversation = f"c-{uuid.uuid4().hex[:8]}"
    routed = routed_event(conversation, f"sms:{conversation}", QUEUE, "my parcel never arrived")
    await run.fanout.handle(consumed(routed, f"routed-{conversation}"))
    action = AgentAction(
        action_id=f"t-{conversation}",
        kind="transfer",
        conversation_id=conversation,
        agent="ada",
        queue=OTHER,
        at=datetime.now(UTC),
    )
    delivery = consumed(action, f"transfer-{conversation}")
    start = counter.calls
    if crash_at is None:
        await run.fanout.handle(delivery)
    else:
        counter.crash_at = start + crash_at
        with pytest.raises(Crash):
            await run.fanout.handle(delivery)
    calls = counter.calls - start
    await run.fanout.handle(delivery)
    return conversation, calls


async def state(redis: Redis, keys: Keys, conversation: str) -> dict[str, Any]:
    """Where the conversation is, in both groups, with its id written as ``C``."""
    found: dict[str, Any] = {}
    for group, queue in ((DEFAULT_ASSIGNMENT_GROUP, QUEUE), (MAIL, OTHER)):
        raw: Any = await redis.hgetall(keys.hub_conversation(group, conversation))
        summary = {as_text(k): as_text(v) for k, v in raw.items()}
        for field in ("message_id", "in_reply_to", "last_at", "waiting_from", "reply_to"):
            summary.pop(field, None)  # differ from one conversation to the next
        for field in ("thread_key", "identity"):
            summary.pop(field, None)
        found[group] = {
            "summary": summary,
            "open": [
                await redis.zscore(keys.hub_open(group, q), conversation) is not None
                for q in (QUEUE, OTHER)
            ],
            "waiting": await redis.zscore(keys.hub_waiting(group, queue), conversation) is not None,
        }
    pointer = await redis.get(keys.hub_group_of(conversation))
    found["pointer"] = as_text(pointer) if pointer else None
    return found


async def test_a_move_between_groups_crashed_after_any_step_ends_as_one_run(
    redis: Redis, isolation: Isolation, runs: list[FanOutRun]
) -> None:
    counter = CallCounter()
    run = FanOutRun(redis, isolation.key_prefix, counter)
    runs.append(run)
    reference_id, steps = await transferred(run, counter, None)
    expected = await state(redis, run.keys, reference_id)
    assert expected["pointer"] == MAIL
    assert expected[DEFAULT_ASSIGNMENT_GROUP]["summary"] == {}
    assert expected[MAIL]["summary"]["queue"] == OTHER
    assert expected[MAIL]["open"] == [False, True]
    assert expected[MAIL]["waiting"]
    assert steps >= 4  # the move's copy, removal and pointer at least

    for crash_at in range(steps):
        conversation, _ = await transferred(run, counter, crash_at)
        assert await state(redis, run.keys, conversation) == expected, f"crash before {crash_at}"


async def test_a_message_routed_to_another_groups_queue_moves_the_conversation_there(
    redis: Redis, isolation: Isolation, runs: list[FanOutRun]
) -> None:
    """The router applied a transfer and routed the customer's next message to the new queue
    before the hub read the transfer (they come on different topics)."""
    run = FanOutRun(redis, isolation.key_prefix, CallCounter())
    runs.append(run)
    conversation = f"c-{uuid.uuid4().hex[:8]}"
    first = routed_event(conversation, f"sms:{conversation}", QUEUE, "my parcel never arrived")
    await run.fanout.handle(consumed(first, "first"))
    follow_up = routed_event(conversation, f"sms:{conversation}", OTHER, "any news?")
    await run.fanout.handle(consumed(follow_up, "follow-up"))

    found = await state(redis, run.keys, conversation)
    assert found["pointer"] == MAIL
    assert found[DEFAULT_ASSIGNMENT_GROUP] == {
        "summary": {},
        "open": [False, False],
        "waiting": False,
    }
    assert (found[MAIL]["summary"]["queue"], found[MAIL]["open"]) == (OTHER, [False, True])
    [summary] = await run.conversations.summaries([conversation])
    assert summary["last_text"] == "any news?"
