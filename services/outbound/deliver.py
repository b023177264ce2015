"""Delivering one outbound command: render, send at most once, retry what is temporary,
and end every command with exactly one final receipt on ``outbound.status``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from libs.common import metrics
from libs.common.backoff import Backoff
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
from libs.common.tracing import annotate
from services.outbound.acknowledgements import AcknowledgementLimits
from services.outbound.policy import ACKNOWLEDGEMENT_KINDS, AUTOMATIC_KINDS, refusal
from services.outbound.runtime import OutboundRuntime
from services.outbound.segments import count_segments
from services.outbound.senders.base import (
    OutcomeUnknown,
    OutgoingMessage,
    PermanentFailure,
    Sender,
    TemporaryFailure,
)
from services.outbound.sends import SendRecords
from services.outbound.survey_sends import SurveyPreparer
from services.outbound.templates import TemplateMissing, text_to_html
from services.outbound.whatsapp_window import CustomerServiceWindow, window_closed_error

log = get_logger(__name__)
SOURCE = "/outbound"
MAX_SEND_ATTEMPTS = 5
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
RETRY_AFTER_MAX = 300.0
REFERENCES_PARAM = "references"
"""Command param: the Message-IDs of the email thread so far, space-separated, oldest first."""


SleepFn = Callable[[float], Awaitable[None]]
OptOutCheck = Callable[[OutboundCommand], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: ReceiptStatus
    provider_id: str | None = None
    error: str | None = None
    attempts: int = 0
    text: str | None = None


class Deliverer:
    """``sleep`` and ``jitter`` are injectable so back-off is tested without waiting."""

    def __init__(
        self,
        *,
        live: LiveConfig[OutboundRuntime],
        senders: dict[str, Sender],
        sends: SendRecords,
        topics: Topics,
        sms_opted_out: OptOutCheck | None = None,
        surveys: SurveyPreparer | None = None,
        acknowledgements: AcknowledgementLimits | None = None,
        whatsapp_window: CustomerServiceWindow | None = None,
        max_attempts: int = MAX_SEND_ATTEMPTS,
        sleep: SleepFn = asyncio.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._live = live
        self._senders = senders
        self._sends = sends
        self._topics = topics
        self._sms_opted_out = sms_opted_out
        self._surveys = surveys
        self._acknowledgements = acknowledgements
        self._whatsapp_window = whatsapp_window
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._backoff = Backoff(base=BACKOFF_BASE, cap=BACKOFF_MAX, uniform=jitter)

    async def handle(self, consumed: Consumed) -> list[Outgoing]:
        command = consumed.event.data
        if not isinstance(command, OutboundCommand):
            raise InvalidEvent(f"outbound expects outbound.command, got {consumed.event.type}")
        annotate(
            conversation_id=command.conversation_id,
            channel=command.channel,
            command_kind=command.kind,
        )
        outcome = await self._deliver(command, consumed.key, consumed.event.time)
        metrics.outbound_sends.labels(command.channel, outcome.status).inc()
        receipt = OutboundReceipt(
            command_id=command.command_id,
            conversation_id=command.conversation_id,
            channel=command.channel,
            status=outcome.status,
            provider_message_id=outcome.provider_id,
            error=outcome.error,
            attempts=outcome.attempts,
            kind=command.kind,
            text=outcome.text,
        )
        event = Event(
            id=event_id(command.command_id, "receipt"),
            source=SOURCE,
            subject=consumed.event.subject,
            time=consumed.event.time,
            data=receipt,
        )
        outputs = [Outgoing(self._topics.outbound_status, consumed.key, event)]
        if outcome.status == "dead-lettered":
            # The command itself, unchanged (same event id), for ops to inspect and replay.
            outputs.insert(0, Outgoing(self._topics.deadletter, consumed.key, consumed.event))
        return outputs

    async def _deliver(
        self, command: OutboundCommand, thread_key: str, commanded_at: datetime
    ) -> Outcome:
        """The steps of one delivery, in order; each either hands the next step what it needs
        or ends the command with its final outcome."""
        recorded = await self._recorded_outcome(command.command_id)
        if recorded is not None:
            return recorded
        admitted = await self._admit(command, thread_key, commanded_at)
        if isinstance(admitted, str):
            return await self._suppress(command.command_id, admitted)
        sender = self._senders.get(admitted.channel)
        if sender is None:
            return Outcome("failed", None, f"no sender for channel {admitted.channel}", 0)
        template = await self._outside_window(admitted, thread_key)
        if isinstance(template, Outcome):
            return template
        message = template or await self._message(admitted, thread_key)
        if isinstance(message, Outcome):
            return message
        return await self._send_with_retries(sender, message, admitted.channel)

    async def _recorded_outcome(self, command_id: str) -> Outcome | None:
        """What a redelivered command already came to: a final record is answered again as it
        was, whatever changed since, and a send interrupted mid-call is never resent blindly
        (it may have gone out). ``None``: nothing final yet, deliver it."""
        record = await self._sends.get(command_id)
        if record is None:
            return None
        if record.state == "sent":
            return Outcome("sent", record.provider_message_id, None, record.attempts, record.text)
        if record.state == "failed":
            return Outcome("failed", None, record.error, record.attempts, record.text)
        if record.state == "suppressed":
            return Outcome("suppressed", None, record.error, record.attempts)
        if record.state == "dead-lettered":
            return Outcome("dead-lettered", None, record.error, record.attempts)
        if record.state == "window_closed":
            return Outcome("window_closed", None, record.error, record.attempts)
        if record.state == "in_flight":
            log.warning("command was interrupted mid-send; not resending", command_id=command_id)
            return Outcome("unknown", None, "interrupted during the provider call", record.attempts)
        if record.attempts >= self._max_attempts:  # crashed between the last retry and here
            return await self._dead_letter(command_id, record.error, record.attempts)
        return None

    async def _admit(
        self, command: OutboundCommand, thread_key: str, commanded_at: datetime
    ) -> OutboundCommand | str:
        """The command as it will be sent, or why it must not be. The order matters: the policy
        and an SMS opt-out first; then a survey gets its link (recording a pending survey, so
        only for a command nothing else refused); the acknowledgement limit last, so a command
        refused for another reason uses up no acknowledgement."""
        reason = refusal(command, self._live.current.config.outbound, thread_key)
        if reason is not None:
            return reason
        opted_out = self._sms_opted_out if command.channel in ("sms", "whatsapp") else None
        if opted_out is not None and await opted_out(command):
            return f"the customer opted out of {command.channel} (STOP)"
        if command.kind == "survey" and self._surveys is not None:
            prepared = await self._surveys.prepare(
                command,
                thread_key,
                settings=self._live.current.config.surveys,
                sent_at=commanded_at,
            )
            if isinstance(prepared, str):
                return prepared
            command = prepared
        if command.kind in ACKNOWLEDGEMENT_KINDS and self._acknowledgements is not None:
            reason = await self._acknowledgements.refusal(command, commanded_at)
            if reason is not None:
                return reason
        return command

    async def _suppress(self, command_id: str, reason: str) -> Outcome:
        """Recorded as final, so a redelivery is refused the same way even if the policy or
        the opt-out changed since."""
        log.info("outbound command suppressed", command_id=command_id, reason=reason)
        await self._sends.finish(command_id, "suppressed", error=reason)
        return Outcome("suppressed", None, reason, 0)

    async def _outside_window(
        self, command: OutboundCommand, thread_key: str
    ) -> OutgoingMessage | Outcome | None:
        """WhatsApp after the customer-service window: the approved template of the command's
        kind, or a final ``window_closed`` (recorded: a redelivery is refused the same way);
        ``None``: free-form may go out (inside the window, or another channel)."""
        if command.channel != "whatsapp" or self._whatsapp_window is None:
            return None
        try:
            fit = await self._whatsapp_window.fit(command, self._live.current.config.whatsapp)
        except TemplateMissing as exc:
            await self._sends.finish(command.command_id, "failed", error=str(exc))
            return Outcome("failed", None, str(exc), 0)
        if fit == "free_form":
            return None
        if fit == "window_closed":
            error = window_closed_error(command)
            log.info("whatsapp window closed; not sent", command_id=command.command_id)
            await self._sends.finish(command.command_id, "window_closed", error=error)
            return Outcome("window_closed", None, error, 0)
        return fit.message(command, thread_key)

    async def _message(
        self, command: OutboundCommand, thread_key: str
    ) -> OutgoingMessage | Outcome:
        """The message for the provider; a missing template is a permanent failure (recorded,
        never retried). An SMS logs what it costs in segments."""
        try:
            message = self._compose(command, thread_key)
        except TemplateMissing as exc:
            await self._sends.finish(command.command_id, "failed", error=str(exc))
            return Outcome("failed", None, str(exc), 0)
        if command.channel == "sms":
            cost = count_segments(message.text)
            log.info(
                "sms segments",
                command_id=command.command_id,
                encoding=cost.encoding,
                units=cost.units,
                segments=cost.segments,
            )
        return message

    async def _send_with_retries(
        self, sender: Sender, message: OutgoingMessage, channel: str
    ) -> Outcome:
        """Every attempt is counted and marked in flight before the provider call (a crash
        mid-call then reads ``unknown``, never a second send) and finished after it; a
        temporary refusal waits with back-off and tries again until the budget is spent."""
        command_id = message.command_id
        while True:
            attempts = await self._sends.begin(command_id)
            try:
                with metrics.outbound_provider_seconds.labels(channel).time():
                    provider_id = await sender.send(message)
            except TemporaryFailure as exc:
                if attempts >= self._max_attempts:
                    return await self._dead_letter(command_id, str(exc), attempts)
                await self._wait_to_retry(command_id, attempts, exc)
                continue
            except PermanentFailure as exc:
                log.warning(
                    "provider refused for good; not retrying",
                    command_id=command_id,
                    channel=channel,
                    error=str(exc),
                )
                await self._sends.finish(command_id, "failed", error=str(exc), text=message.text)
                return Outcome("failed", None, str(exc), attempts, message.text)
            except OutcomeUnknown as exc:
                return Outcome("unknown", None, str(exc), attempts)
            await self._sends.finish(
                command_id, "sent", provider_message_id=provider_id, text=message.text
            )
            return Outcome("sent", provider_id, None, attempts, message.text)

    async def _wait_to_retry(self, command_id: str, attempts: int, exc: TemporaryFailure) -> None:
        """Recorded as ``retry`` first, so a crash during the wait resumes with the attempts
        already spent instead of reading the send as interrupted."""
        await self._sends.finish(command_id, "retry", error=str(exc))
        # Never sooner than the provider asked (a Retry-After beyond RETRY_AFTER_MAX is capped:
        # the record holds its partition).
        delay = max(self._backoff.delay(attempts), min(exc.retry_after or 0.0, RETRY_AFTER_MAX))
        log.info(
            "provider refused for now; retrying",
            command_id=command_id,
            attempt=attempts,
            delay=round(delay, 3),
            error=str(exc),
        )
        await self._sleep(delay)

    async def _dead_letter(self, command_id: str, error: str | None, attempts: int) -> Outcome:
        log.warning("retry budget spent; dead-lettered", command_id=command_id, attempts=attempts)
        await self._sends.finish(command_id, "dead-lettered", error=error)
        return Outcome("dead-lettered", None, error, attempts)

    def _compose(self, command: OutboundCommand, thread_key: str) -> OutgoingMessage:
        templates = self._live.current.templates
        language = command.params.get("language")
        html: str | None = None
        if command.text is not None:
            text = command.text
            if command.channel == "email":
                html = text_to_html(text)
        elif command.template is not None:
            text = templates.render(command.template, command.channel, language, command.params)
            if command.channel == "email":
                html = templates.render_html(
                    command.template, command.channel, language, command.params
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
            html=html,
            references=tuple(command.params.get(REFERENCES_PARAM, "").split()),
            automatic=command.kind in AUTOMATIC_KINDS,
            thread_key=thread_key,
            conversation_id=command.conversation_id,
        )
