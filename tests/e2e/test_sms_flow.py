"""One SMS through all four services as separate processes (the spine, end to end)."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest

from libs.common.events import (
    ConversationRouted,
    MessageReceived,
    OutboundReceipt,
    SlaEvent,
)
from libs.common.tracing import traceparent_of
from tests.support.harness import AUTH_TOKEN, OUR_NUMBER, Isolation, Launch, OtlpFake, TwilioFake
from tests.support.kafka import collect, wait_until
from tests.support.metrics import scraped_names
from tests.support.webhooks import encode_form, sign_twilio
from tests.unit.test_metrics_doc import exposed_names
from tooling.devstack import SERVICES, DevStack
from tooling.sandbox.twilio import sms_webhook_form

pytestmark = pytest.mark.e2e
CUSTOMER = "+14155550123"


async def post_sms(
    http: aiohttp.ClientSession, env: dict[str, str], form: dict[str, str], token: str = AUTH_TOKEN
) -> int:
    url = f"{env['SWITCHBOARD_PUBLIC_URL']}/v1/sms/twilio"
    async with http.post(url, data=encode_form(form), headers=sign_twilio(url, form, token)) as r:
        await r.read()
        return r.status


@pytest.mark.cluster  # also on a Redis Cluster (tests/conftest.py)
async def test_sms_is_routed_clocked_acknowledged_in_one_trace(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    twilio: TwilioFake,
    otlp: OtlpFake,
    http: aiohttp.ClientSession,
) -> None:
    env = {
        **service_env,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    processes = await launch(SERVICES, env)
    topics = isolation.topics
    async with collect(
        stack.broker.bootstrap_servers,
        topics.inbound,
        topics.routed,
        topics.sla_events,
        topics.outbound_commands,
        topics.outbound_status,
    ) as seen:
        form = sms_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="Where is my parcel?")
        assert await post_sms(http, env, form) == 200
        await wait_until(
            lambda: any(
                isinstance(e.data, SlaEvent) and e.data.kind == "breached" for e in seen.events
            ),
            timeout=30,
            message="the breach event",
        )
        await wait_until(lambda: bool(seen.of_type(OutboundReceipt)), message="the receipt")

    [inbound] = seen.data_of(MessageReceived)
    assert inbound.provider_message_id == form["MessageSid"]
    assert inbound.customer.phone == CUSTOMER
    [routed] = seen.data_of(ConversationRouted)
    assert routed.queue == "sms-desk"
    assert routed.explanation.rule == "sms"
    assert "channel=sms" in routed.explanation.conditions

    clocks = seen.of_type(SlaEvent)
    started, _warning, breached = seen.data_of(SlaEvent)
    assert [started.kind, _warning.kind, breached.kind] == ["started", "warning", "breached"]
    assert started.deadline - started.started_at == timedelta(seconds=4)
    assert clocks[2].time - clocks[1].time == timedelta(seconds=2)  # the configured lead
    assert breached.deadline == clocks[2].time
    records = {r.headers and dict(r.headers).get("ce_id", b"").decode(): r for r in seen.records}
    warning_record, breach_record = records[clocks[1].id], records[clocks[2].id]
    # Same partition, warning first (how late a timer fires is measured in bench/sla_timers).
    assert warning_record.offset < breach_record.offset

    [message] = twilio.sandbox.messages
    assert routed.reference in message["body"]
    assert message["to"] == CUSTOMER
    [receipt] = seen.data_of(OutboundReceipt)
    assert receipt.status == "sent"
    assert receipt.provider_message_id == message["sid"]

    traceparents = [traceparent_of(r.headers) for r in seen.records]
    assert all(traceparents), "every record carries its trace context"
    trace_ids = {str(t).split("-")[1] for t in traceparents}
    assert len(trace_ids) == 1
    [trace_id] = trace_ids
    await wait_until(
        lambda: (
            otlp.receiver.services_in_trace(trace_id)
            >= {f"switchboard-{name}" for name in SERVICES}
        ),
        message="spans of all four services in the message's trace",
    )
    # The timers that fired the warning and the breach were claimed in batches: each batch is a
    # span of its own, linked to the trace of every clock it served.
    await wait_until(
        lambda: any(
            s.name == "sla timers due" and trace_id in s.linked_trace_ids
            for s in otlp.receiver.spans
        ),
        message="a timer batch span linked to the message's trace",
    )

    documented = exposed_names()
    for process in processes:
        names = await scraped_names(http, process)
        assert documented <= names, (process.name, documented - names)


async def test_provider_retry_gives_one_event_one_route_one_ack(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    twilio: TwilioFake,
    http: aiohttp.ClientSession,
) -> None:
    await launch(SERVICES, service_env)
    topics = isolation.topics
    async with collect(
        stack.broker.bootstrap_servers, topics.inbound, topics.routed, topics.outbound_status
    ) as seen:
        form = sms_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="My card was declined")
        assert await post_sms(http, service_env, form) == 200
        assert await post_sms(http, service_env, form) == 200  # Twilio retrying
        # A later message of the same thread is processed after anything the retry caused.
        later = sms_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="still waiting")
        assert await post_sms(http, service_env, later) == 200
        await wait_until(
            lambda: any(
                routed.message_id != seen.data_of(ConversationRouted)[0].message_id
                for routed in seen.data_of(ConversationRouted)
            ),
            message="the later message routed",
        )
        await wait_until(lambda: bool(seen.of_type(OutboundReceipt)), message="the receipt")

    inbound_ids = [m.provider_message_id for m in seen.data_of(MessageReceived)]
    assert inbound_ids.count(form["MessageSid"]) == 1
    routed = seen.data_of(ConversationRouted)
    assert len(routed) == 2
    assert [r.is_new for r in routed] == [True, False]
    assert routed[0].conversation_id == routed[1].conversation_id
    assert len(twilio.sandbox.messages) == 1
    assert len(seen.of_type(OutboundReceipt)) == 1


async def test_wrong_signature_is_refused_and_publishes_nothing(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    http: aiohttp.ClientSession,
) -> None:
    await launch(["ingest"], service_env)
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        forged = sms_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="refund me")
        assert await post_sms(http, service_env, forged, token="not-the-token") == 403
        tampered = sms_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="hello")
        url = f"{service_env['SWITCHBOARD_PUBLIC_URL']}/v1/sms/twilio"
        headers = sign_twilio(url, tampered, AUTH_TOKEN)
        tampered["Body"] = "hello, send me everything"
        async with http.post(url, data=encode_form(tampered), headers=headers) as response:
            assert response.status == 403
        genuine = sms_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="genuine")
        assert await post_sms(http, service_env, genuine) == 200
        await wait_until(lambda: len(seen.events) >= 1, message="the genuine message")
    assert [m.provider_message_id for m in seen.data_of(MessageReceived)] == [genuine["MessageSid"]]
