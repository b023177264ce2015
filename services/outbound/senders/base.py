"""What every channel sender promises: send one message, or say how it failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class TemporaryFailure(Exception):
    """The provider refused for now (rate limit, 5xx, connection refused): try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentFailure(Exception):
    """The provider will never accept this message (bad number, opted out, 4xx)."""


class OutcomeUnknown(Exception):
    """The call was interrupted after it may have reached the provider (timeout mid-call)."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    command_id: str
    recipient: str
    sender: str | None
    subject: str | None
    text: str
    in_reply_to: str | None
    html: str | None = None
    """An HTML alternative of ``text`` (email only), already escaped."""
    references: tuple[str, ...] = ()
    """Message-IDs of the thread so far, oldest first (email threading)."""
    automatic: bool = False
    """Sent without a human (acknowledgement, status update): mail says ``Auto-Submitted``."""
    thread_key: str | None = None
    """The conversation's thread key (``x-dm:…`` says a social message came as a DM)."""
    conversation_id: str | None = None
    """The conversation answered: Twilio's status callbacks name it (read receipts)."""
    content_sid: str | None = None
    """WhatsApp after the customer-service window: the approved template sent instead of
    ``text`` (Twilio Content API), with ``content_variables`` (JSON) filling it."""
    content_variables: str | None = None


class Sender(Protocol):
    async def send(self, message: OutgoingMessage) -> str:
        """Send and return the provider's message id."""
        ...
