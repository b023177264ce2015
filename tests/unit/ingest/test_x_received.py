"""Tweets and direct messages become ``message.received`` through one builder."""

from __future__ import annotations

from datetime import UTC, datetime

from libs.common.events import Attachment, CustomerIdentity, event_id
from services.ingest.x.received import XAuthor, x_message

AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
ADA = XAuthor(id="42", name="Ada L", handle="ada")


def test_a_tweet_is_a_social_message_from_its_author() -> None:
    message_id, message = x_message(
        "tweet",
        "1900000000000000001",
        author=ADA,
        thread_key="x:1900000000000000000",
        recipient="7",
        text="@shop where is my order?",
        received_at=AT,
        language="en",
    )
    assert message_id == event_id("social", "x", "tweet", "1900000000000000001")
    assert (message.channel, message.provider, message.provider_message_id) == (
        "social",
        "x",
        "1900000000000000001",
    )
    assert message.customer == CustomerIdentity(
        display_name="Ada L", social_handle="ada", social_id="42"
    )
    assert (message.thread_key, message.recipient, message.language) == (
        "x:1900000000000000000",
        "7",
        "en",
    )
    assert (message.received_at, message.raw_ref) == (AT, "x:tweet:1900000000000000001")


def test_a_direct_message_keeps_its_attachments() -> None:
    photo = Attachment(name=None, content_type="image/jpeg", url="https://x.test/p.jpg")
    message_id, message = x_message(
        "dm",
        "555",
        author=ADA,
        thread_key="x:dm:7:42",
        recipient="7",
        text="here is the receipt",
        received_at=AT,
        attachments=(photo,),
    )
    assert message_id == event_id("social", "x", "dm", "555")
    assert (message.raw_ref, message.attachments, message.language) == ("x:dm:555", (photo,), None)
