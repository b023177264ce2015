"""One message per channel through the four services and the hub, each in one trace annotated
at every hop.

SMS (a Twilio-signed webhook), email (an SMTP session), chat (websocket frames) and an X direct
message (a signed Account Activity webhook) go in; each is routed, clocked and acknowledged
on its own channel (Twilio sandbox, an SMTP relay, the chat mailbox, the X sandbox). The test
reads back the spans from an OTLP receiver: one trace per message, spans of every service (the
hub's fan-out included) in it, and the hops carry the conversation id, channel, queue and rule.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import pytest

from libs.common.events import (
    ConversationRouted,
    MessageReceived,
    OutboundCommand,
    OutboundReceipt,
    SlaEvent,
    decode,
)
from libs.common.tracing import traceparent_of
from tests.conftest import ServeApp
from tests.e2e.test_chat_flow import KEY as CHAT_KEY
from tests.e2e.test_chat_flow import connect, frame, session
from tests.e2e.test_sms_flow import post_sms
from tests.integration.ingest.test_x import CUSTOMER_ID, OUR_ID, SECRET, dm, dm_payload
from tests.support.harness import OUR_NUMBER, Isolation, Launch, OtlpFake
from tests.support.kafka import collect, wait_until
from tests.support.mail import SmtpClient
from tests.support.metrics import scraped_names
from tests.support.webhooks import sign_x
from tests.unit.test_metrics_doc import exposed_names
from tooling.devstack import SERVICES, DevStack, free_port
from tooling.sandbox.smtp import smtp_sandbox
from tooling.sandbox.twilio import sms_webhook_form
from tooling.sandbox.x import XSandbox

pytestmark = pytest.mark.e2e

CONFIG = """
version: 1
queues:
  sms-desk: {}
  email-desk: {}
  chat-desk: {}
  social-desk: {}
sla_policies:
  hour:
    first_response: {within: 1h, business_hours: false, warn_before: [15m]}
rules:
  - name: texts
    when: {channel: [sms]}
    then: {queue: sms-desk, sla_policy: hour, auto_reply: ack}
  - name: mail
    when: {channel: [email]}
    then: {queue: email-desk, sla_policy: hour, auto_reply: ack}
  - name: live
    when: {channel: [chat]}
    then: {queue: chat-desk, sla_policy: hour, auto_reply: ack}
  - name: social
    then: {queue: social-desk, sla_policy: hour, auto_reply: ack}
templates:
  ack:
    sms: {en: "Thanks! Reference {{ reference }}."}
    email: {en: "Hello, your reference is {{ reference }}."}
    chat: {en: "Thanks! Reference {{ reference }}."}
    social: {en: "Thanks! Reference {{ reference }}."}
"""
SUPPORT = "help@shop.example"
AGENT_KEY = "trace-test-agent-token-key-0123456789abcdef"
EVERY_SERVICE = (*SERVICES, "hub")
OPS = ("send", "process")
SMS_PATH = "/v1/sms/twilio"
X_PATH = "/v1/social/x/webhook"
HTTP_DURATION = "http.server.duration"
"""The aiohttp instrumentation's request-duration histogram (its default, pre-stable name)."""
CHANNELS = {"sms": "sms-desk", "email": "email-desk", "chat": "chat-desk", "social": "social-desk"}
MAIL = (
    b"From: Ana Lima <ana@example.org>\r\nTo: help@shop.example\r\n"
    b"Subject: Parcel missing\r\nMessage-ID: <trace-1@example.org>\r\n"
    b"Date: Wed, 25 Nov 2026 09:00:00 +0000\r\n\r\nMy parcel never arrived.\r\n"
)


async def test_every_channel_gives_one_trace_across_every_service(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    otlp: OtlpFake,
    serve_app: ServeApp,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    config = tmp_path / "channels.yaml"
    config.write_text(CONFIG)
    x_api = XSandbox(bearer_token="unused")
    smtp_port = free_port()
    async with smtp_sandbox() as (relay, relay_port):
        env = {
            **service_env,
            "SWITCHBOARD_CONFIG": str(config),
            "SWITCHBOARD_SMTP_PORT": str(smtp_port),
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(relay_port),
            "SMTP_STARTTLS": "false",
            "SMTP_FROM": f"Shop Help <{SUPPORT}>",
            "CHAT_SESSION_KEY": CHAT_KEY,
            "AGENT_TOKEN_KEY": AGENT_KEY,
            "X_CONSUMER_SECRET": SECRET,
            "X_USER_ID": OUR_ID,
            "X_USER_ACCESS_TOKEN": x_api.user_token,
            "X_API_BASE_URL": await serve_app(x_api.app()),
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
        }
        processes = await launch(EVERY_SERVICE, env)
        ingest = next(p for p in processes if p.name == "ingest")
        topics = isolation.topics
        async with collect(
            stack.broker.bootstrap_servers,
            topics.inbound,
            topics.routed,
            topics.sla_events,
            topics.outbound_commands,
            topics.outbound_status,
        ) as seen:
            sms = sms_webhook_form(
                sender="+14155550123", recipient=OUR_NUMBER, body="Card declined"
            )
            assert await post_sms(http, env, sms) == 200
            assert (await SmtpClient(smtp_port, SUPPORT).send(MAIL))[0] == 250
            visitor = await session(http, ingest.url)
            ws = await connect(http, ingest.url, visitor["token"])
            await ws.send_json({"type": "message", "client_id": "c-1", "text": "Order help"})
            assert (await frame(ws))["type"] == "ack"
            message = dm("1900000000000000901", CUSTOMER_ID, OUR_ID, "Where is it?")
            # Sent now: the clock starts at the DM's own time, so a fixed one would breach.
            message["created_timestamp"] = str(int(time.time() * 1000))
            direct = dm_payload(message)
            url = f"{ingest.url}{X_PATH}"
            async with http.post(url, data=direct, headers=sign_x(direct, SECRET)) as response:
                assert response.status == 200
            await wait_until(
                lambda: (
                    len(seen.of_type(OutboundReceipt)) == len(CHANNELS)
                    and len(seen.of_type(SlaEvent)) == len(CHANNELS)
                ),
                timeout=30,
                message=lambda: (
                    "an acknowledgement receipt and a started clock per channel; saw "
                    f"{Counter(type(e.data).__name__ for e in seen.events)}"
                ),
            )
            assert (await frame(ws))["type"] == "reply"  # the chat acknowledgement arrived
            await ws.close()
        assert len(relay.received) == 1
        assert len(x_api.direct_messages) == 1

    # Kafka: every record of a message carries that message's trace, and no other's.
    records_by_trace: dict[str, set[str]] = defaultdict(set)
    channel_of: dict[str, str] = {}
    for record in seen.records:
        traceparent = traceparent_of(list(record.headers))
        assert traceparent is not None, record.topic
        trace_id = traceparent.split("-")[1]
        records_by_trace[trace_id].add(record.topic)
        data = decode(record.value, record.headers).data
        if isinstance(data, MessageReceived):
            channel_of[trace_id] = data.channel
    assert sorted(channel_of.values()) == sorted(CHANNELS)
    assert set(records_by_trace) == set(channel_of)
    for trace_id, record_topics in records_by_trace.items():
        assert record_topics == set(topics.all()) - {topics.agent_actions, topics.deadletter}, (
            channel_of[trace_id]
        )
    assert len(seen.of_type(SlaEvent)) == len(CHANNELS)  # one first-response clock each
    assert len(seen.of_type(OutboundCommand)) == len(CHANNELS)

    # OTLP: each trace has spans of every service, and the hops say what they did.
    every_service = {f"switchboard-{name}" for name in EVERY_SERVICE}

    def annotating(trace_id: str) -> set[str]:
        """Services with a span in the trace that names the conversation. (A service's spans
        are exported as they end, a parent after its children: wait for these, not any.)"""
        return {
            s.service
            for s in otlp.receiver.spans
            if s.trace_id == trace_id and "switchboard.conversation_id" in s.attributes
        }

    await wait_until(
        lambda: all(
            otlp.receiver.services_in_trace(t) >= every_service
            and annotating(t) >= every_service - {"switchboard-ingest"}
            for t in channel_of
        ),
        timeout=40,
        message="spans of every service in every message's trace",
    )
    # Every hop is a "send {topic}" span of its producer and a "process {topic}" span of each
    # consumer (messaging semantic conventions); webhooks start with the HTTP server span.
    carried = set(topics.all()) - {topics.agent_actions, topics.deadletter}
    hops = {f"{operation} {topic}" for topic in carried for operation in OPS}
    http_entry = {"sms": f"POST {SMS_PATH}", "social": f"POST {X_PATH}"}

    def span_names(trace_id: str) -> set[str]:
        return {s.name for s in otlp.receiver.spans if s.trace_id == trace_id}

    await wait_until(
        lambda: all(
            span_names(t) >= hops | ({http_entry[c]} if c in http_entry else set())
            for t, c in channel_of.items()
        ),
        timeout=40,
        message=lambda: f"send and process spans of every hop: {hops}",
    )
    routed: dict[str, ConversationRouted] = {r.channel: r for r in seen.data_of(ConversationRouted)}
    for trace_id, channel in channel_of.items():
        spans = [s for s in otlp.receiver.spans if s.trace_id == trace_id]
        decision = routed[channel]
        annotated = [s.attributes for s in spans if "switchboard.conversation_id" in s.attributes]
        services = {s.service for s in spans if "switchboard.conversation_id" in s.attributes}
        # Every hop after ingest (which cannot know the conversation yet) names it.
        assert services == every_service - {"switchboard-ingest"}
        assert {a["switchboard.conversation_id"] for a in annotated} == {decision.conversation_id}
        assert {a["switchboard.channel"] for a in annotated if "switchboard.channel" in a} == {
            channel
        }
        accepted = [
            s.attributes
            for s in spans
            if s.service == "switchboard-ingest" and "switchboard.channel" in s.attributes
        ]
        assert {a["switchboard.channel"] for a in accepted} == {channel}
        placed = [a for a in annotated if "switchboard.rule" in a]
        assert placed  # the router's decision (and the SLA clock's start) name queue and rule
        assert {a["switchboard.queue"] for a in placed} == {CHANNELS[channel]}
        assert {a["switchboard.rule"] for a in placed} == {decision.explanation.rule}

    # Every process, the hub included, exposes every documented metric.
    documented = exposed_names()
    for process in processes:
        names = await scraped_names(http, process)
        assert documented <= names, (process.name, documented - names)

    # Each service's OTLP metrics arrive by its graceful stop at the latest, which flushes them
    # (under `make test-clock` the SDK's periodic export thread never wakes: see the Makefile).
    await asyncio.gather(*(asyncio.to_thread(process.stop) for process in processes))
    assert [process.name for process in processes if process.wait() != 0] == []
    exported = {(f"switchboard-{n}", HTTP_DURATION) for n in EVERY_SERVICE}
    assert exported <= otlp.receiver.metrics, exported - otlp.receiver.metrics
