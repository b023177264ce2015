"""Every channel's ``message.received`` carries the language of its text, through the ingest app
in this process to the real broker: a Twilio-signed SMS webhook, an SMTP session (its
``Content-Language`` a hint), a chat websocket frame (the browser's language a hint). X keeps the
``lang`` X gives (tests/integration/ingest/test_x.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from libs.common.events import MessageReceived
from services.ingest.app import build
from services.ingest.chat import SESSION_PATH, WS_PATH
from tests.integration.ingest.conftest import PUBLIC_URL, ingest_settings
from tests.support.harness import AUTH_TOKEN, OUR_NUMBER, Isolation
from tests.support.kafka import Collected, collect, wait_until
from tests.support.mail import REDIS_POOL_WARNING, SmtpClient, in_process
from tests.support.webhooks import encode_form, sign_twilio
from tooling.devstack import DevStack
from tooling.sandbox.twilio import sms_webhook_form

pytestmark = pytest.mark.filterwarnings(REDIS_POOL_WARNING)

ServeApp = Callable[[web.Application], Awaitable[str]]
SUPPORT = "support@northwind-shop.example"


@dataclass(frozen=True)
class Ingest:
    url: str
    smtp: SmtpClient


@pytest.fixture
async def ingest(stack: DevStack, isolation: Isolation, serve_app: ServeApp) -> Ingest:
    settings = ingest_settings(stack, isolation, switchboard_smtp_recipients=SUPPORT)
    url = await serve_app(in_process(build(settings)))
    return Ingest(url, SmtpClient(settings.switchboard_smtp_port, SUPPORT))


async def language_of(seen: Collected, text: str) -> str | None:
    """The language on the event of the message whose text is ``text``."""

    def found() -> list[MessageReceived]:
        return [m for m in seen.data_of(MessageReceived) if m.text == text]

    await wait_until(lambda: bool(found()), message=f"the event of {text!r}")
    return found()[0].language


@pytest.mark.parametrize(
    ("body", "language"),
    [
        ("Hola, me han cobrado dos veces el pedido y nadie me contesta", "es"),
        ("Mein Paket ist immer noch nicht angekommen", "de"),
        ("ok", None),
    ],
)
async def test_an_sms_gets_the_language_of_its_text(
    stack: DevStack,
    isolation: Isolation,
    ingest: Ingest,
    http: aiohttp.ClientSession,
    body: str,
    language: str | None,
) -> None:
    form = sms_webhook_form(sender="+14155550123", recipient=OUR_NUMBER, body=body)
    headers = sign_twilio(PUBLIC_URL + "/v1/sms/twilio", form, AUTH_TOKEN)
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        async with http.post(
            f"{ingest.url}/v1/sms/twilio", data=encode_form(form), headers=headers
        ) as response:
            assert response.status == 200
        assert await language_of(seen, body) == language


def _email(text: str, content_language: str | None, subject: str = "") -> bytes:
    message = EmailMessage()
    message["From"] = "Kunde <kunde@example.de>"
    message["To"] = SUPPORT
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@example.de>"
    message.set_content(text)  # after it: it drops every Content-* header set before
    if content_language is not None:
        message["Content-Language"] = content_language
    return message.as_bytes()


@pytest.mark.parametrize(
    ("text", "content_language", "language"),
    [
        ("Guten Tag, meine Bestellung ist nicht angekommen. Bitte helfen Sie mir.", None, "de"),
        ("Danke!", "de-DE", "de"),  # too short to tell: the client's language decides
        ("My order never arrived and I was charged twice.", "de-DE", "en"),  # the text wins
        ("👍", None, None),
    ],
)
async def test_an_email_gets_the_language_of_its_text_its_header_a_hint(
    stack: DevStack,
    isolation: Isolation,
    ingest: Ingest,
    text: str,
    content_language: str | None,
    language: str | None,
) -> None:
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        code, _ = await ingest.smtp.send(_email(text, content_language), sender="kunde@example.de")
        assert code == 250
        assert await language_of(seen, text) == language


async def _chat(http: aiohttp.ClientSession, url: str, frames: list[dict[str, Any]]) -> None:
    """One visitor's session: each frame sent and acknowledged in turn."""
    async with http.post(f"{url}{SESSION_PATH}") as response:
        assert response.status == 200
        token = (await response.json())["token"]
    async with http.ws_connect(f"{url}{WS_PATH}", params={"token": token}) as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "ready"
        for frame in frames:
            await ws.send_json({"type": "message", **frame})
            reply = await ws.receive(timeout=10)
            assert reply.type is WSMsgType.TEXT
            assert '"ack"' in reply.data, reply.data


async def test_a_chat_message_gets_its_language_the_browser_s_a_hint(
    stack: DevStack, isolation: Isolation, ingest: Ingest, http: aiohttp.ClientSession
) -> None:
    spanish = "¿Dónde está mi pedido? Llevo dos semanas esperando."
    frames = [
        {"client_id": "c-1", "text": spanish, "language": "en-US"},  # the text wins
        {"client_id": "c-2", "text": "ok", "language": "fr-FR"},  # the browser decides
        {"client_id": "c-3", "text": "merci", "language": "x" * 100},  # a junk hint: dropped
        {"client_id": "c-4", "text": "👍"},
    ]
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        await _chat(http, ingest.url, frames)
        assert [await language_of(seen, f["text"]) for f in frames] == ["es", "fr", None, None]
