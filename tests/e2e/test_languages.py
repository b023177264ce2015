"""Customers reach agents who speak their language: ingest and router as separate processes on
the sample configuration (config/store.yaml), a Twilio-signed SMS in Spanish and an email in
German over SMTP, each routed to its language's queue; a Spanish message the English examples
would type gets no English type."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import pytest

from libs.common.events import ConversationRouted, MessageReceived
from tests.support.harness import AUTH_TOKEN, OUR_NUMBER, Isolation, Launch
from tests.support.kafka import Collected, collect, wait_until
from tests.support.mail import SmtpClient
from tests.support.webhooks import encode_form, sign_twilio
from tooling.devstack import DevStack, free_port
from tooling.sandbox.twilio import sms_webhook_form

pytestmark = pytest.mark.e2e
STORE = Path(__file__).parents[2] / "config" / "store.yaml"
SUPPORT = "support@northwind-shop.example"


async def routed(seen: Collected, text: str) -> tuple[MessageReceived, ConversationRouted]:
    """The received and routed events of the message with ``text``."""

    def found() -> tuple[list[MessageReceived], list[ConversationRouted]]:
        return (
            [m for m in seen.data_of(MessageReceived) if m.text == text],
            [r for r in seen.data_of(ConversationRouted) if r.text == text],
        )

    await wait_until(lambda: all(found()), timeout=60, message=f"{text!r} routed")
    (received, *_), (routed_, *_) = found()
    return received, routed_


async def test_spanish_sms_and_german_email_reach_the_desks_that_speak_them(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    http: aiohttp.ClientSession,
) -> None:
    smtp_port = free_port()
    env = {
        **service_env,
        "SWITCHBOARD_CONFIG": str(STORE),
        "SWITCHBOARD_SMTP_PORT": str(smtp_port),
        "SWITCHBOARD_SMTP_RECIPIENTS": SUPPORT,
    }
    await launch(["ingest", "router"], env)
    spanish = "Hola, me habéis cobrado dos veces el pedido y nadie me contesta"
    loanword = "necesito el invoice de mi compra"
    german = "Guten Tag, mein Paket ist immer noch nicht angekommen. Bitte helfen Sie mir."
    url = f"{env['SWITCHBOARD_PUBLIC_URL']}/v1/sms/twilio"
    topics = isolation.topics
    async with collect(stack.broker.bootstrap_servers, topics.inbound, topics.routed) as seen:
        for body in (spanish, loanword):
            form = sms_webhook_form(sender="+14155550123", recipient=OUR_NUMBER, body=body)
            headers = sign_twilio(url, form, AUTH_TOKEN)
            async with http.post(url, data=encode_form(form), headers=headers) as response:
                assert response.status == 200
        email = (
            f"From: Kunde <kunde@example.de>\r\nTo: {SUPPORT}\r\nSubject: Bestellung NW-4471\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.de>\r\nContent-Language: de-DE\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{german}\r\n"
        ).encode()
        code, _ = await SmtpClient(smtp_port, SUPPORT).send(email, sender="kunde@example.de")
        assert code == 250

        sms_in, sms_routed = await routed(seen, spanish)
        loan_in, loan_routed = await routed(seen, loanword)
        mail_in, mail_routed = await routed(seen, german)

    assert (sms_in.channel, sms_in.language) == ("sms", "es")
    assert (sms_routed.queue, sms_routed.explanation.rule) == ("spanish", "spanish")
    assert "language=es" in sms_routed.explanation.conditions
    assert sms_routed.issue_type == "payment_issue"  # from the Spanish examples
    # The English examples would call it check_invoice; no Spanish example covers invoices.
    assert (loan_in.language, loan_routed.queue, loan_routed.issue_type) == (
        "es",
        "spanish",
        "unknown",
    )
    assert (mail_in.channel, mail_in.language) == ("email", "de")
    assert (mail_routed.queue, mail_routed.explanation.rule) == ("german", "german")
