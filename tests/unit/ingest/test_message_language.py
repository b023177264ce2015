"""The language every accepted message leaves with, and the chat frame's browser language."""

from __future__ import annotations

from datetime import UTC, datetime

from libs.common.events import CustomerIdentity, MessageReceived
from services.ingest.accept import with_language
from services.ingest.chat.frames import MAX_LANGUAGE_CHARS, parse

AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _message(
    text: str, *, subject: str | None = None, language: str | None = None
) -> MessageReceived:
    return MessageReceived(
        channel="social",
        provider="x",
        provider_message_id="1",
        thread_key="x:1",
        customer=CustomerIdentity(social_id="42"),
        subject=subject,
        text=text,
        language=language,
        received_at=AT,
    )


def test_a_language_the_connector_was_told_is_kept() -> None:
    told = _message("where is my order, I have waited two weeks", language="pt")
    assert with_language(told, hint="de") is told


def test_the_text_decides_then_the_hint() -> None:
    assert with_language(_message("¿Dónde está mi pedido?")).language == "es"
    assert with_language(_message("ok"), hint="nl-BE").language == "nl"
    assert with_language(_message("ok")).language is None


def test_an_email_subject_counts_with_its_text() -> None:
    message = _message("Danke.", subject="Meine Bestellung ist nicht angekommen")
    assert with_language(message).language == "de"


def test_a_chat_frame_carries_the_browser_language_as_a_hint() -> None:
    frame = '{"type": "message", "client_id": "c-1", "text": "ok", "language": "fr-CA"}'
    assert parse(frame).language == "fr-CA"
    assert parse('{"type": "message", "client_id": "c-1", "text": "ok"}').language is None


def test_a_junk_browser_language_is_dropped_not_the_message() -> None:
    for junk in ('"' + "x" * (MAX_LANGUAGE_CHARS + 1) + '"', "42", "[]"):
        frame = f'{{"type": "message", "client_id": "c-1", "text": "ok", "language": {junk}}}'
        message = parse(frame)
        assert (message.text, message.language) == ("ok", None)
