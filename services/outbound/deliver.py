"""Delivering one outbound command: render, send at most once, retry what is temporary,
and end every command with exactly one final receipt on ``outbound.status``."""

from __future__ import annotations

import asyncio
import random
import time

from libs.common import metrics
from libs.common.config import LiveConfig
from libs.common.events import (
    Event,
    InvalidEvent,
    OutboundCommand,
    OutboundReceipt,
    ReceiptStatus,
    event_id,
)
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from libs.common.logs import get_logger
from libs.common.topics import Topics
from services.outbound.runtime import OutboundRuntime
from services.outbound.senders.base import (
    OutcomeUnknown,
    OutgoingMessage,
    PermanentFailure,
    Sender,
    TemporaryFailure,
)
from services.outbound.sends import SendRecords
from services.outbound.templates import TemplateMissing

log = get_logger(__name__)
SOURCE = "/outbound"
MAX_SEND_ATTEMPTS = 5
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0


class Deliverer:
    def __init__(
        self,
        *,
        live: LiveConfig[OutboundRuntime],
        senders: dict[str, Sender],
        sends: SendRecords,
        topics: Topics,
    ) -> None:
        self._live = live
        self._senders = senders
        self._sends = sends
        self._topics = topics

    async def handle(self, consumed: Consumed) -> list[Outgoing]:
        command = consumed.event.data
        if not isinstance(command, OutboundCommand):
            raise InvalidEvent(f"outbound expects outbound.command, got {consumed.event.type}")
        status, provider_id, error, attempts = await self._deliver(command)
        metrics.outbound_sends.labels(command.channel, status).inc()
        receipt = OutboundReceipt(
            command_id=command.command_id,
            conversation_id=command.conversation_id,
            channel=command.channel,
            status=status,
            provider_message_id=provider_id,
            error=error,
            attempts=attempts,
        )
        event = Event(
            id=event_id(command.command_id, "receipt"),
            source=SOURCE,
            subject=consumed.event.subject,
            time=consumed.event.time,
            data=receipt,
        )
        return [Outgoing(self._topics.outbound_status, consumed.key, event)]

    async def _deliver(
        self, command: OutboundCommand
    ) -> tuple[ReceiptStatus, str | None, str | None, int]:
        record = await self._sends.get(command.command_id)
        if record is not None:
            if record.state == "sent":
                return "sent", record.provider_message_id, None, record.attempts
            if record.state == "failed":
                return "failed", None, record.error, record.attempts
            if record.state == "in_flight":
                log.warning(
                    "command was interrupted mid-send; not resending", command_id=command.command_id
                )
                return "unknown", None, "interrupted during the provider call", record.attempts
        sender = self._senders.get(command.channel)
        if sender is None:
            return "failed", None, f"no sender for channel {command.channel}", 0
        try:
            message = self._compose(command)
        except TemplateMissing as exc:
            await self._sends.finish(command.command_id, "failed", error=str(exc))
            return "failed", None, str(exc), 0
        attempts = 0
        while True:
            attempts = await self._sends.begin(command.command_id)
            started = time.perf_counter()
            try:
                provider_id = await sender.send(message)
            except TemporaryFailure as exc:
                await self._sends.finish(command.command_id, "retry", error=str(exc))
                if attempts >= MAX_SEND_ATTEMPTS:
                    return "dead-lettered", None, str(exc), attempts
                await asyncio.sleep(_backoff(attempts, exc.retry_after))
                continue
            except PermanentFailure as exc:
                await self._sends.finish(command.command_id, "failed", error=str(exc))
                return "failed", None, str(exc), attempts
            except OutcomeUnknown as exc:
                return "unknown", None, str(exc), attempts
            finally:
                metrics.outbound_provider_seconds.labels(command.channel).observe(
                    time.perf_counter() - started
                )
            await self._sends.finish(command.command_id, "sent", provider_message_id=provider_id)
            return "sent", provider_id, None, attempts

    def _compose(self, command: OutboundCommand) -> OutgoingMessage:
        if command.text is not None:
            text = command.text
        elif command.template is not None:
            text = self._live.current.templates.render(
                command.template, command.channel, command.params.get("language"), command.params
            )
        else:
            raise TemplateMissing("command has neither text nor template")
        return OutgoingMessage(
            command_id=command.command_id,
            recipient=command.recipient,
            sender=command.sender,
            subject=command.params.get("subject"),
            text=text,
            in_reply_to=command.in_reply_to,
        )


def _backoff(attempt: int, retry_after: float | None) -> float:
    """Exponential back-off with full jitter, never sooner than the provider asked."""
    delay = random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1)))
    return max(delay, retry_after or 0.0)
