"""The router's state in real Redis: conversations, reopening, customers, incidents."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from libs.common.config import LiveConfig
from libs.common.events import (
    AgentAction,
    ConversationRouted,
    CustomerIdentity,
    Event,
    EventData,
    IncidentDetected,
    MessageReceived,
    OutboundCommand,
    event_id,
)
from libs.common.kafka.consumer import Consumed
from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher
from services.router.customer_profiles import CustomerStore
from services.router.route import Router
from services.router.runtime import RouterRuntime
from tests.support.harness import Isolation

pytestmark = pytest.mark.cluster  # also on a Redis Cluster (tests/conftest.py)

CONFIG = Path(__file__).parents[2] / "fixtures" / "config" / "routing.yaml"
LA = ZoneInfo("America/Los_Angeles")
OPEN = datetime(2026, 11, 24, 10, 0, tzinfo=LA)
_numbers = itertools.count()


@pytest.fixture(scope="module")
def live() -> LiveConfig[RouterRuntime]:
    return LiveConfig(CONFIG, RouterRuntime.build)


@pytest.fixture
def router(live: LiveConfig[RouterRuntime], redis: Redis, isolation: Isolation) -> Router:
    return Router.on_redis(redis, Keys(isolation.key_prefix), live=live, topics=isolation.topics)


def consumed(data: EventData, subject: str, event_id_: str | None = None) -> Consumed:
    number = next(_numbers)
    event = Event(
        id=event_id_ or event_id("test", str(number)),
        source="/test",
        subject=subject,
        time=OPEN,
        data=data,
    )
    return Consumed(event=event, topic="t", partition=0, offset=number, key=subject)


def sms(text: str, phone: str, at: datetime = OPEN) -> MessageReceived:
    return MessageReceived(
        channel="sms",
        provider="test",
        provider_message_id=f"SM{next(_numbers)}",
        thread_key=f"sms:+15005550006:{phone}",
        customer=CustomerIdentity(phone=phone),
        recipient="+15005550006",
        text=text,
        received_at=at,
    )


def email(text: str, address: str, thread: str, at: datetime = OPEN) -> MessageReceived:
    return MessageReceived(
        channel="email",
        provider="smtp",
        provider_message_id=f"<{next(_numbers)}@x>",
        thread_key=f"email:{thread}",
        customer=CustomerIdentity(email=address),
        subject="Help",
        text=text,
        received_at=at,
    )


def routed(outputs: list) -> ConversationRouted:  # type: ignore[type-arg]
    [event] = [o.event.data for o in outputs if isinstance(o.event.data, ConversationRouted)]
    return event


async def route(router: Router, message: MessageReceived, event_id_: str | None = None) -> list:  # type: ignore[type-arg]
    return await router.handle(consumed(message, message.thread_key, event_id_))


async def test_a_redelivered_message_gets_the_same_conversation_and_ids(router: Router) -> None:
    message = sms("charged twice", "+14155550101")
    first = await route(router, message, "inbound-1")
    again = await route(router, message, "inbound-1")
    assert [o.event.id for o in first] == [o.event.id for o in again]
    assert routed(first).reference == routed(again).reference
    assert routed(again).is_new
    assert [type(o.event.data) for o in first] == [ConversationRouted, OutboundCommand]


async def test_a_sequence_set_back_by_a_failover_gives_no_reference_out_twice(
    router: Router, redis: Redis, isolation: Isolation
) -> None:
    keys = Keys(isolation.key_prefix)
    first = routed(await route(router, sms("charged twice", "+14155550111")))
    # What a failover can lose: the old primary of {seq} acknowledged the claim's INCR and SET,
    # and the replica promoted in its place never had them.
    await redis.decr(keys.conversation_sequence())
    await redis.delete(keys.conversation_reference(first.conversation_id))

    second = routed(await route(router, sms("charged twice", "+14155550112")))
    third = routed(await route(router, sms("charged twice", "+14155550113")))
    follow_up = routed(await route(router, sms("any news?", "+14155550111")))

    assert second.is_new
    assert len({first.reference, second.reference, third.reference}) == 3
    assert (follow_up.conversation_id, follow_up.reference) == (
        first.conversation_id,
        first.reference,
    )


async def test_reopen_within_the_window_and_a_new_conversation_after_it(
    router: Router, live: LiveConfig[RouterRuntime]
) -> None:
    phone = "+14155550102"
    opened = routed(await route(router, sms("charged twice", phone)))
    resolved_at = OPEN + timedelta(hours=1)
    await router.handle(
        consumed(
            AgentAction(
                action_id="r1",
                kind="resolve",
                conversation_id=opened.conversation_id,
                agent="a",
                at=resolved_at,
            ),
            opened.thread_key,
        )
    )
    window = live.config.conversations.reopen_window
    reopened_outputs = await route(router, sms("still broken", phone, resolved_at + window / 2))
    reopened = routed(reopened_outputs)
    assert reopened.conversation_id == opened.conversation_id
    assert not reopened.is_new
    assert any("reopened" in note for note in reopened.explanation.notes)
    assert "next response held to the conversation's own SLA policy" in reopened.explanation.notes
    assert not [o for o in reopened_outputs if isinstance(o.event.data, OutboundCommand)]
    await router.handle(
        consumed(
            AgentAction(
                action_id="r2",
                kind="resolve",
                conversation_id=opened.conversation_id,
                agent="a",
                at=resolved_at + window / 2,
            ),
            opened.thread_key,
        )
    )
    later = routed(await route(router, sms("new problem", phone, resolved_at + window * 2)))
    assert later.conversation_id != opened.conversation_id
    assert later.is_new
    assert later.reference != opened.reference


async def test_identities_merge_across_channels_and_the_customer_stays_in_their_queue(
    router: Router, redis: Redis, isolation: Isolation
) -> None:
    by_email = routed(
        await route(router, email("hello", "Pat@Example.com", "e1", OPEN - timedelta(hours=1)))
    )
    by_sms = routed(await route(router, sms("charged twice", "+14155550103")))
    assert by_sms.customer_id != by_email.customer_id
    chat = MessageReceived(
        channel="chat",
        provider="widget",
        provider_message_id="c1",
        thread_key="chat:s1",
        customer=CustomerIdentity(
            display_name="Pat", email="pat@example.com", phone="+14155550103"
        ),
        text="hi, any news?",
        received_at=OPEN + timedelta(minutes=5),
    )
    merged = routed(await route(router, chat))
    assert merged.customer_id in {by_sms.customer_id, by_email.customer_id}
    # kept with the most recently active open conversation
    assert merged.queue == by_sms.queue == "payments"
    assert any("open conversation" in note for note in merged.explanation.notes)
    store = CustomerStore(redis, Keys(isolation.key_prefix), ScriptBatcher(redis))
    history = await store.history(merged.customer_id or "")
    assert set(history) == {
        by_sms.conversation_id,
        by_email.conversation_id,
        merged.conversation_id,
    }
    # the other profile now resolves to the merged one through any of its identities
    again = routed(await route(router, email("and again", "pat@example.com", "e2")))
    assert again.customer_id == merged.customer_id


async def test_incident_opens_once_at_the_threshold_and_links_the_cluster(router: Router) -> None:
    outputs = []
    for n in range(5):
        outputs.append(
            await route(
                router,
                sms("my order never arrived", f"+1415555020{n}", OPEN + timedelta(minutes=n)),
            )
        )
    incidents = [
        o.event.data for out in outputs for o in out if isinstance(o.event.data, IncidentDetected)
    ]
    assert len(incidents) == 1  # threshold is 3 distinct customers, then de-bounced
    [incident] = incidents
    assert incident.customers == 3
    assert incident.issue_type == "track_order"
    linked = [routed(out) for out in outputs]
    assert [r.incident_id for r in linked] == [
        None,
        None,
        incident.incident_id,
        incident.incident_id,
        incident.incident_id,
    ]
    assert {r.queue for r in linked[2:]} == {"incidents"}
    commands = [
        o.event.data
        for out in outputs[2:]
        for o in out
        if isinstance(o.event.data, OutboundCommand)
    ]
    assert {c.template for c in commands} == {"incident-note"}
    # the same customer writing again does not count twice
    again = routed(
        await route(
            router, sms("my order never arrived", "+14155550200", OPEN + timedelta(minutes=6))
        )
    )
    assert again.incident_id == incident.incident_id


async def test_incident_window_slides(router: Router) -> None:
    for n in range(2):
        await route(
            router, sms("my order never arrived", f"+1415555030{n}", OPEN + timedelta(minutes=n))
        )
    late = routed(
        await route(
            router, sms("my order never arrived", "+14155550309", OPEN + timedelta(minutes=30))
        )
    )
    assert late.incident_id is None  # the first two fell out of the 10-minute window
