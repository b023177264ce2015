"""SMTP in, from a real SMTP session (aiosmtplib) to ``message.received`` on the real broker.

The ingest app runs in this process with its SMTP server on a free port; the raw messages are
files of the parser's corpus, so the expected parse is written beside each one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosmtplib
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from libs.common.events import Attachment, CustomerIdentity, Event, MessageReceived, event_id
from libs.common.keys import Keys
from libs.common.settings import Settings
from libs.common.topics import Topics
from libs.contracts.sent_mail import SentMail
from services.ingest.app import build
from services.outbound.senders.base import OutgoingMessage
from services.outbound.senders.email import SmtpEmail
from tests.support.harness import FIXTURES, Isolation
from tests.support.kafka import Collected, collect, wait_until
from tests.support.mail import REDIS_POOL_WARNING, SmtpClient, in_process
from tooling.devstack import DevStack, create_topics, free_port
from tooling.sandbox.smtp import smtp_sandbox

pytestmark = pytest.mark.filterwarnings(REDIS_POOL_WARNING)

ServeApp = Callable[[web.Application], Awaitable[str]]
CORPUS = FIXTURES / "email"
SUPPORT = "support@northwind-shop.example"
MAX_BYTES = 64 * 1024


def ingest_settings(stack: DevStack, topic_prefix: str, key_prefix: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": stack.broker.bootstrap_servers,
        "redis_url": stack.redis.url,
        "switchboard_topic_prefix": topic_prefix,
        "switchboard_key_prefix": key_prefix,
        "switchboard_http_host": "127.0.0.1",
        "switchboard_smtp_port": free_port(),
        "switchboard_smtp_max_bytes": MAX_BYTES,
        "switchboard_smtp_recipients": f"{SUPPORT}, Sales@Northwind-Shop.example",
    }
    return Settings(**(values | extra))


@pytest.fixture
async def smtp(stack: DevStack, isolation: Isolation, serve_app: ServeApp) -> SmtpClient:
    settings = ingest_settings(stack, isolation.topic_prefix, isolation.key_prefix)
    await serve_app(in_process(build(settings)))
    return SmtpClient(settings.switchboard_smtp_port, SUPPORT)


@pytest.fixture
async def inbound(stack: DevStack, isolation: Isolation) -> AsyncIterator[Collected]:
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        yield seen


def corpus(name: str) -> tuple[bytes, dict[str, Any]]:
    raw = (CORPUS / f"{name}.eml").read_bytes()
    return raw, json.loads((CORPUS / f"{name}.expected.json").read_text(encoding="utf-8"))


async def events_for(seen: Collected, count: int) -> list[Event]:
    await wait_until(lambda: len(seen.of_type(MessageReceived)) >= count, message=f"{count} events")
    return seen.of_type(MessageReceived)


@pytest.mark.parametrize(
    ("name", "language"), [("encoded_words_and_photos", "fr"), ("gmail_top_posted_reply", "en")]
)
async def test_a_delivered_message_becomes_one_normalised_event(
    smtp: SmtpClient, inbound: Collected, name: str, language: str
) -> None:
    raw, expected = corpus(name)
    before = datetime.now(UTC)
    code, _ = await smtp.send(raw, sender="bounces@mail.example")
    assert code == 250
    (event,) = await events_for(inbound, 1)
    message = event.data
    assert isinstance(message, MessageReceived)
    sender = expected["from_address"].lower()
    message_id = expected["message_id"]
    assert event.id == event_id("email", sender, message_id)
    assert event.subject == message.thread_key == f"email:{expected['thread_root']}"
    assert event.source == "/ingest/smtp"
    assert message == MessageReceived(
        channel="email",
        provider="smtp",
        provider_message_id=message_id,
        thread_key=f"email:{expected['thread_root']}",
        customer=CustomerIdentity(display_name=expected["from_name"], email=sender),
        recipient=SUPPORT,
        subject=expected["subject"],
        text=expected["text"],
        language=language,
        attachments=tuple(
            Attachment(name=a["filename"], content_type=a["content_type"], size=a["size"])
            for a in expected["attachments"]
        ),
        automated=None,
        received_at=message.received_at,
        raw_ref=message.raw_ref,
    )
    assert before <= message.received_at <= datetime.now(UTC)
    assert message.raw_ref is not None
    assert message.raw_ref.startswith("smtp:sha256:")
    (record,) = inbound.records
    assert record.key == message.thread_key.encode()


async def test_a_reply_naming_only_its_parent_joins_the_parents_thread(
    smtp: SmtpClient, inbound: Collected
) -> None:
    parent = (
        b"From: Ana <ana@example.org>\r\nTo: support@northwind-shop.example\r\n"
        b"Subject: Re: order NW-1\r\nMessage-ID: <parent@example.org>\r\n"
        b"In-Reply-To: <root@northwind-shop.example>\r\n"
        b"References: <root@northwind-shop.example>\r\n\r\nStill waiting.\r\n"
    )
    child = (
        b"From: Ana <ana@example.org>\r\nTo: support@northwind-shop.example\r\n"
        b"Subject: Re: order NW-1\r\nMessage-ID: <child@example.org>\r\n"
        b"In-Reply-To: <parent@example.org>\r\n\r\nAny news?\r\n"
    )
    assert (await smtp.send(parent))[0] == 250
    assert (await smtp.send(child))[0] == 250
    first, second = await events_for(inbound, 2)
    assert isinstance(first.data, MessageReceived)
    assert isinstance(second.data, MessageReceived)
    assert first.data.thread_key == second.data.thread_key == "email:root@northwind-shop.example"


async def test_a_stranger_naming_a_thread_gets_a_thread_of_their_own_linked_to_it(
    smtp: SmtpClient, inbound: Collected
) -> None:
    def mail(sender: str, message_id: str, cc: str = "", parent: str = "") -> bytes:
        headers = [f"From: {sender}", f"To: {SUPPORT}", "Subject: order NW-1"]
        headers += [f"Message-ID: <{message_id}>"] + ([f"Cc: {cc}"] if cc else [])
        if parent:
            headers += [f"In-Reply-To: <{parent}>", f"References: <{parent}>"]
        return ("\r\n".join(headers) + "\r\n\r\nHi.\r\n").encode()

    root = "email:root@example.org"
    sent = [
        mail("ana@example.org", "root@example.org", cc="Bo@Example.org"),
        mail("mallory@evil.example", "m1@evil.example", parent="root@example.org"),
        mail("mallory@evil.example", "root@example.org"),  # a copied Message-ID
        mail("bo@example.org", "bo1@example.org", parent="root@example.org"),  # a recipient
        mail("ana@example.org", "ana2@example.org", parent="bo1@example.org"),
    ]
    for raw in sent:
        assert (await smtp.send(raw))[0] == 250
    events = await events_for(inbound, len(sent))
    threads = {
        (e.data.customer.email, e.data.provider_message_id): (
            e.data.thread_key,
            e.data.linked_thread_key,
        )
        for e in events
        if isinstance(e.data, MessageReceived)
    }  # events of different threads come in any order (different partitions)
    stranger = (f"{root}/mallory@evil.example", root)
    assert threads == {
        ("ana@example.org", "root@example.org"): (root, None),
        ("mallory@evil.example", "m1@evil.example"): stranger,
        ("mallory@evil.example", "root@example.org"): stranger,
        ("bo@example.org", "bo1@example.org"): (root, None),
        ("ana@example.org", "ana2@example.org"): (root, None),
    }


@dataclass(frozen=True)
class ReplyToAck:
    name: str
    sender: str
    in_reply_to: bool = True
    references: tuple[str, ...] = ("ack",)
    joins: bool = True


REPLIES_TO_ACK = [
    ReplyToAck("In-Reply-To and References name only the acknowledgement", "ana@example.org"),
    ReplyToAck("only In-Reply-To, naming the acknowledgement", "ana@example.org", references=()),
    ReplyToAck("only References, naming the acknowledgement", "ana@example.org", False),
    ReplyToAck(
        "References: her message, then the acknowledgement",
        "ana@example.org",
        references=("own", "ack"),
    ),
    ReplyToAck("a stranger naming the acknowledgement", "mallory@evil.example", joins=False),
]


@pytest.mark.parametrize("case", REPLIES_TO_ACK, ids=lambda c: c.name)
async def test_a_reply_to_our_acknowledgement_joins_the_conversation(
    smtp: SmtpClient, inbound: Collected, redis: Redis, isolation: Isolation, case: ReplyToAck
) -> None:
    """Mobile clients often name only the message they answer: our acknowledgement, whose
    Message-ID outbound indexed to the thread when it sent it (not a message ingest saw)."""
    n = REPLIES_TO_ACK.index(case)
    own = f"first-{n}@example.org"
    first = f"From: ana@example.org\r\nTo: {SUPPORT}\r\nSubject: order NW-{n}\r\n"
    first += f"Message-ID: <{own}>\r\n\r\nWhere is my order?\r\n"
    assert (await smtp.send(first.encode()))[0] == 250
    (opened,) = await events_for(inbound, 1)
    assert isinstance(opened.data, MessageReceived)
    thread = opened.data.thread_key
    async with smtp_sandbox() as (_, port):
        ours = SmtpEmail(
            host="127.0.0.1",
            port=port,
            username="",
            password="",
            starttls=False,
            sender=f"Support <{SUPPORT}>",
            sent=SentMail(redis, Keys(isolation.key_prefix)),
        )
        ack = await ours.send(
            OutgoingMessage(
                command_id=f"ack-{n}",
                recipient="ana@example.org",
                sender=None,
                subject=f"order NW-{n}",
                text="Thanks! Your reference is SB-1.",
                in_reply_to=f"<{own}>",
                automatic=True,
                thread_key=thread,
            )
        )
    named = {"ack": ack, "own": f"<{own}>"}
    reply = [f"From: {case.sender}", f"To: {SUPPORT}", f"Subject: Re: order NW-{n}"]
    reply.append(f"Message-ID: <reply-{n}@example.org>")
    if case.in_reply_to:
        reply.append(f"In-Reply-To: {ack}")
    if case.references:
        reply.append("References: " + " ".join(named[r] for r in case.references))
    assert (await smtp.send(("\r\n".join(reply) + "\r\n\r\nThanks.\r\n").encode()))[0] == 250
    _, answered = await events_for(inbound, 2)
    assert isinstance(answered.data, MessageReceived)
    if case.joins:
        assert (answered.data.thread_key, answered.data.linked_thread_key) == (thread, None)
    else:
        assert answered.data.thread_key != thread
        assert answered.data.linked_thread_key == thread


async def test_the_outlook_corpus_reply_without_a_parent_we_saw_starts_from_in_reply_to(
    smtp: SmtpClient, inbound: Collected
) -> None:
    raw, expected = corpus("outlook_reply_in_reply_to_only")
    assert (await smtp.send(raw))[0] == 250
    (event,) = await events_for(inbound, 1)
    assert isinstance(event.data, MessageReceived)
    assert event.data.thread_key == f"email:{expected['in_reply_to']}"


async def test_a_duplicate_delivery_is_accepted_without_a_second_event(
    smtp: SmtpClient, inbound: Collected
) -> None:
    raw, _ = corpus("gmail_top_posted_reply")
    assert (await smtp.send(raw))[0] == 250
    assert (await smtp.send(raw))[0] == 250
    sentinel, _ = corpus("encoded_words_and_photos")
    assert (await smtp.send(sentinel))[0] == 250
    events = await events_for(inbound, 2)
    assert [e.data.provider_message_id for e in events] == [  # type: ignore[attr-defined]
        corpus("gmail_top_posted_reply")[1]["message_id"],
        corpus("encoded_words_and_photos")[1]["message_id"],
    ]


async def test_an_auto_reply_is_marked_automated(smtp: SmtpClient, inbound: Collected) -> None:
    raw, expected = corpus("auto_reply_out_of_office")
    assert expected["automated"] == "auto-reply"
    assert (await smtp.send(raw))[0] == 250
    (event,) = await events_for(inbound, 1)
    assert isinstance(event.data, MessageReceived)
    assert event.data.automated == "auto-reply"


async def test_over_the_size_limit_is_refused_with_552(
    smtp: SmtpClient, inbound: Collected
) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.port, start_tls=False)
    await client.connect()
    await client.ehlo()
    assert client.esmtp_extensions["size"] == str(MAX_BYTES)
    await client.quit()
    big = b"From: a@example.org\r\nSubject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 1000
    code, message = await smtp.send(big)
    assert (code, message.split()[0]) == (552, "5.3.4")
    assert (await smtp.send(b"From: a@example.org\r\nSubject: small\r\n\r\nok\r\n"))[0] == 250
    (event,) = await events_for(inbound, 1)
    assert isinstance(event.data, MessageReceived)
    assert event.data.subject == "small"


async def test_unparseable_mail_and_unknown_recipients_are_refused(smtp: SmtpClient) -> None:
    code, message = await smtp.send(b"just some words, no header at all\r\n")
    assert code == 554
    assert "could not be parsed" in message
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.port, start_tls=False)
    await client.connect()
    try:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await client.sendmail("a@example.org", ["nobody@northwind-shop.example"], b"x\r\n")
        assert refused.value.recipients[0].code == 550
        _, reply = await client.sendmail(
            "a@example.org", ["sales@northwind-shop.example"], b"Subject: hi\r\n\r\nhello\r\n"
        )
        assert reply.startswith("2.0.0")
    finally:
        await client.quit()


async def test_recipients_past_fifty_in_one_session_get_452_and_the_mail_goes_once(
    stack: DevStack, isolation: Isolation, serve_app: ServeApp, inbound: Collected
) -> None:
    """Issue 16: a session named 500 recipients. Past the cap each RCPT is ``452 4.5.3`` (a
    sender keeps those for another transaction); the message is still delivered, once."""
    settings = ingest_settings(
        stack, isolation.topic_prefix, isolation.key_prefix, switchboard_smtp_recipients=""
    )
    await serve_app(in_process(build(settings)))
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=settings.switchboard_smtp_port, start_tls=False
    )
    await client.connect()
    try:
        await client.ehlo()
        await client.mail("list@example.org")
        replies = [
            await client.execute_command(b"RCPT", f"TO:<desk{i}@example.com>".encode())
            for i in range(500)
        ]
        _, reply = await client.data(b"From: list@example.org\r\nSubject: hi all\r\n\r\nhi\r\n")
    finally:
        await client.quit()
    assert [r.code for r in replies] == [250] * 50 + [452] * 450
    assert {r.message.split()[0] for r in replies[50:]} == {"4.5.3"}
    assert reply.startswith("2.0.0")
    (event,) = await events_for(inbound, 1)
    assert isinstance(event.data, MessageReceived)
    assert event.data.recipient == "desk0@example.com"


async def test_arbitrary_data_gets_an_smtp_code_and_the_server_keeps_serving(
    smtp: SmtpClient, inbound: Collected
) -> None:
    examples: list[bytes] = []

    @settings(max_examples=40, database=None, suppress_health_check=list(HealthCheck))
    @given(
        raw=st.one_of(
            st.binary(max_size=2048),
            st.builds(
                lambda head, body: head + b"\r\n\r\n" + body,
                st.binary(max_size=512).map(lambda b: b"Subject: " + b),
                st.binary(max_size=1024),
            ),
        )
    )
    def gather(raw: bytes) -> None:
        examples.append(raw)

    gather()
    for raw in examples:
        code, _ = await smtp.send(raw)
        # 2xx or 5xx: the broker and Redis are up, so there is nothing to retry (no 4xx)
        assert code // 100 in {2, 5}, code
    assert (await smtp.send(b"From: a@example.org\r\nSubject: after\r\n\r\nstill here\r\n"))[
        0
    ] == 250
    await wait_until(
        lambda: any(
            isinstance(e.data, MessageReceived) and e.data.subject == "after"
            for e in inbound.events
        ),
        message="the message after the junk",
    )


async def test_451_while_the_broker_is_down_and_one_event_after_it_returns(
    serve_app: ServeApp,
) -> None:
    own = DevStack()  # this test stops its broker, so it does not share the session's
    await own.start()
    try:
        settings = ingest_settings(own, "switchboard.", "sb:", switchboard_publish_timeout=1.0)
        await serve_app(in_process(build(settings)))
        smtp = SmtpClient(settings.switchboard_smtp_port, SUPPORT)
        raw, expected = corpus("gmail_top_posted_reply")

        own.broker.stop()
        code, message = await smtp.send(raw)
        assert (code, message) == (451, "4.3.0 try again later")

        await own.broker.start()  # in-memory: comes back empty, on the same port
        topics = Topics.with_prefix("switchboard.")
        await create_topics(own.broker.bootstrap_servers, topics.all())
        async with collect(own.broker.bootstrap_servers, topics.inbound) as seen:
            codes: list[int] = []
            for _ in range(30):  # the sending server retries; each try is bounded by the timeout
                codes.append((await smtp.send(raw))[0])
                if codes[-1] == 250:
                    break
            assert codes[-1] == 250, codes
            assert set(codes) <= {250, 451}, codes
            assert (await smtp.send(raw))[0] == 250  # a late retry of the same message
            sentinel, about = corpus("encoded_words_and_photos")
            sentinel_id = event_id("email", about["from_address"], about["message_id"])
            assert (await smtp.send(sentinel))[0] == 250
            await wait_until(
                lambda: any(e.id == sentinel_id for e in seen.events), message="the sentinel"
            )
        # The try that timed out may still reach the broker once it is back (the producer
        # retries what it buffered): the same event id twice on the wire, which consumers
        # drop. What must hold is one event, never a second id for the same message.
        ids = {e.id for e in seen.of_type(MessageReceived)}
        assert ids == {
            event_id("email", expected["from_address"], expected["message_id"]),
            sentinel_id,
        }
    finally:
        own.stop()
