"""The ``message.received`` of anything an X account sends us: a mention or a direct message.

Both carry the author's X identity, an X id that names the message (``x:{kind}:{id}``) and
derives its event id, so a tweet polled twice or a DM delivered twice is one event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from libs.common.events import Attachment, CustomerIdentity, MessageReceived, event_id


@dataclass(frozen=True, slots=True)
class XAuthor:
    id: str | None
    name: str | None
    handle: str | None


def x_message(
    kind: Literal["tweet", "dm"],
    x_id: str,
    *,
    author: XAuthor,
    thread_key: str,
    recipient: str,
    text: str,
    received_at: datetime,
    language: str | None = None,
    attachments: tuple[Attachment, ...] = (),
) -> tuple[str, MessageReceived]:
    """The event id and ``message.received`` of the tweet or DM ``x_id`` from ``author``."""
    message = MessageReceived(
        channel="social",
        provider="x",
        provider_message_id=x_id,
        thread_key=thread_key,
        customer=CustomerIdentity(
            display_name=author.name, social_handle=author.handle, social_id=author.id
        ),
        recipient=recipient,
        text=text,
        language=language,
        attachments=attachments,
        received_at=received_at,
        raw_ref=f"x:{kind}:{x_id}",
    )
    return event_id("social", "x", kind, x_id), message
