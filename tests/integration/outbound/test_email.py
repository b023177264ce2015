"""Email replies through a real SMTP server (aiosmtpd): threading as a mail client reads it, and
how each kind of SMTP failure is classified."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from libs.common.config import LiveConfig
from libs.common.events import Event, OutboundCommand, OutboundReceipt, event_id
from libs.common.kafka.consumer import Consumed
from libs.common.keys import Keys
from services.outbound.deliver import Deliverer
from services.outbound.runtime import OutboundRuntime
from services.outbound.senders.base import (
    OutcomeUnknown,
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
)
from services.outbound.senders.email import SmtpEmail
from services.outbound.sends import SendRecords
from tests.support.harness import Isolation
from tooling.devstack import free_port
from tooling.sandbox.smtp import Mailbox, smtp_sandbox

FROM = "Acme Support <support@acme.example>"
CUSTOMER = "ana@example.org"


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Mailbox, int]]:
    async with smtp_sandbox() as server:
        yield server


CONFIG = """
queues: {desk: {}}
rules: []
templates:
  ack:
    email:
      en: "Hello {{ name }},\\nyour reference is {{ reference }}; we will reply {{ promise }}."
"""


def sender(port: int, timeout: float = 10.0) -> SmtpEmail:
    return SmtpEmail(
        host="127.0.0.1",
        port=port,
        username="",
        password="",
        starttls=False,
        sender=FROM,
        timeout=timeout,
    )


def outgoing(**fields: Any) -> OutgoingMessage:
    base: dict[str, Any] = {
        "command_id": "cmd-1",
        "recipient": CUSTOMER,
        "sender": None,
        "subject": "Order 42",
        "text": "Hello",
        "in_reply_to": "<c2@example.org>",
    }
    return OutgoingMessage(**{**base, **fields})


async def test_auto_ack_threads_under_the_customers_mail(
    smtp: tuple[Mailbox, int], redis: Redis, isolation: Isolation, tmp_path: Path
) -> None:
    mailbox, port = smtp
    path = tmp_path / "outbound.yaml"
    path.write_text(CONFIG)
    deliverer = Deliverer(
        live=LiveConfig(path, OutboundRuntime.build),
        senders={"email": sender(port)},
        sends=SendRecords(redis, Keys(isolation.key_prefix)),
        topics=isolation.topics,
    )
    command = OutboundCommand(
        command_id="cmd-ack-1",
        kind="auto_ack",
        channel="email",
        conversation_id="conv-1",
        reference="SB-7K3Q9",
        recipient=CUSTOMER,
        template="ack",
        in_reply_to="<c2@example.org>",
        params={
            "reference": "SB-7K3Q9",
            "promise": "within 1 hour",
            "subject": "Where is <my> order?",
            "name": "Ana <b>",
            "references": "<c1@example.org> <c2@example.org>",
        },
    )
    thread = "email:<c1@example.org>"
    event = Event(
        id=event_id("cmd"), source="/t", subject=thread, time=datetime.now(UTC), data=command
    )
    outputs = await deliverer.handle(Consumed(event, "commands", 0, 0, thread))
    [receipt] = [o.event.data for o in outputs]
    assert isinstance(receipt, OutboundReceipt)
    assert receipt.status == "sent"

    [mail] = mailbox.received
    assert mail["Message-ID"] == "<cmd-ack-1@acme.example>" == receipt.provider_message_id
    assert mail["In-Reply-To"] == "<c2@example.org>"
    assert mail["References"].split() == ["<c1@example.org>", "<c2@example.org>"]
    assert mail["Subject"] == "Re: Where is <my> order?"
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["To"] == CUSTOMER
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().replace("\r\n", "\n").strip() == (
        "Hello Ana <b>,\nyour reference is SB-7K3Q9; we will reply within 1 hour."
    )
    assert html.get_content().replace("\r\n", "\n").strip() == (
        "Hello Ana &lt;b&gt;,<br>\nyour reference is SB-7K3Q9; we will reply within 1 hour."
    )


async def test_agent_reply_is_not_marked_automatic(smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    provider_id = await sender(port).send(outgoing(subject="RE: Order 42", in_reply_to="c2@x.org"))
    [mail] = mailbox.received
    assert mail["Auto-Submitted"] is None
    assert mail["Subject"] == "RE: Order 42"
    assert mail["In-Reply-To"] == mail["References"] == "<c2@x.org>"
    assert provider_id == "<cmd-1@acme.example>"


@pytest.mark.parametrize(
    ("answer", "failure"),
    [("451 4.3.0 Try again later", TemporaryFailure), ("550 5.1.1 No such user", PermanentFailure)],
)
async def test_smtp_answers_map_to_temporary_and_permanent(
    smtp: tuple[Mailbox, int], answer: str, failure: type[Exception]
) -> None:
    mailbox, port = smtp
    mailbox.answer = answer
    with pytest.raises(failure, match=answer[:3]):
        await sender(port).send(outgoing())


async def test_refused_connection_is_temporary() -> None:
    with pytest.raises(TemporaryFailure, match="unreachable"):
        await sender(free_port()).send(outgoing())


async def test_timeout_during_data_is_an_unknown_outcome(smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    mailbox.stall = True
    with pytest.raises(OutcomeUnknown):
        await sender(port, timeout=0.3).send(outgoing())


async def test_header_injection_through_the_subject_is_flattened(
    smtp: tuple[Mailbox, int],
) -> None:
    mailbox, port = smtp
    await sender(port).send(outgoing(subject="hi\r\nBcc: victim@example.org"))
    [mail] = mailbox.received
    assert mail["Bcc"] is None
    assert mail["Subject"] == "Re: hi Bcc: victim@example.org"
