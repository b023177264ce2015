"""Typed events and their CloudEvents 1.0 envelope in Kafka binary mode.

The data of every event is a msgspec struct serialised as JSON in the record value; the
envelope attributes travel as ``ce_*`` headers beside the W3C ``traceparent``. Event ids are
deterministic from their cause (:func:`event_id`), so a redelivered input yields the same
output id and every consumer can drop duplicates.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal

import msgspec

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
_ID_NAMESPACE = uuid.UUID("7d0f8f3e-1c55-4a8e-9a65-3b2f1f0e5a11")

Channel = Literal["email", "sms", "chat", "social", "whatsapp"]
Impact = Literal["deep", "broad", "shallow"]


class InvalidEvent(Exception):
    """A record that can never be processed: it goes to the dead-letter topic, unretried."""


def event_id(*cause: str) -> str:
    """A stable id derived from what caused the event (provider id, input id + step)."""
    return str(uuid.uuid5(_ID_NAMESPACE, "\x1f".join(cause)))


class EventData(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """Base of every event payload; ``TYPE`` is its versioned CloudEvents type."""

    TYPE: ClassVar[str]


# --- ingest ---------------------------------------------------------------------------------


class CustomerIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Who sent a message, as its channel tells.

    ``verified`` says whether the channel vouches for the contact identities (email, phone,
    social id): an email's From, a Twilio number and an X account id are as proven as their
    channel gets; an address typed into the chat widget is not. Unverified identities are
    hints shown to agents only: they never find, merge or create a customer profile, so they
    carry no name, tier, history or queue of anyone. ``display_name`` is always what the
    sender calls themselves, never an identity.
    """

    display_name: str | None = None
    email: str | None = None
    phone: str | None = None
    social_handle: str | None = None
    social_id: str | None = None
    verified: bool = True


def reply_address(channel: Channel, customer: CustomerIdentity, thread_key: str) -> str | None:
    """Where an answer to a customer goes on their own channel (None: nowhere known)."""
    match channel:
        case "sms" | "whatsapp":
            return customer.phone
        case "email":
            return customer.email
        case "social":
            return customer.social_id
        case "chat":
            return thread_key


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    name: str | None
    content_type: str
    size: int | None = None
    url: str | None = None


class MessageReceived(EventData, frozen=True, kw_only=True):
    """A customer message from any channel, normalised by ingest."""

    TYPE: ClassVar[str] = "com.switchboard.message.received.v1"
    channel: Channel
    provider: str
    provider_message_id: str
    thread_key: str
    customer: CustomerIdentity
    recipient: str | None = None
    subject: str | None = None
    text: str
    language: str | None = None
    """The ISO 639-1 code of the language the text is written in: the one the channel states
    (X's ``lang``), else the one ingest detects (an email's ``Content-Language`` and the chat
    widget's browser language decide only when the text cannot); None when unsure."""
    attachments: tuple[Attachment, ...] = ()
    automated: str | None = None
    received_at: datetime
    raw_ref: str | None = None
    linked_thread_key: str | None = None
    """The thread the message named but may not join (an email from someone who is not a
    participant of it): the message starts its own thread, linked to that one."""


SurveyKind = Literal["csat", "nps"]
"""CSAT asks for 1-5 ("how did we do?"), NPS for 0-10 ("how likely are you to recommend us?")."""


class SurveyAnswered(EventData, frozen=True, kw_only=True):
    """A customer's survey score for a resolved conversation: a bare-number reply to a
    survey on SMS or chat, or a click on a survey email's link. Its id derives from the survey
    command, so a repeated answer is the same event."""

    TYPE: ClassVar[str] = "com.switchboard.survey.answered.v1"
    conversation_id: str
    channel: Channel
    score: Annotated[int, msgspec.Meta(ge=0, le=10)]
    """1-5 for CSAT, 0-10 for NPS."""
    kind: SurveyKind = "csat"
    command_id: str
    """The ``survey`` outbound command answered."""
    answered_at: datetime
    thread_key: str


# --- router ---------------------------------------------------------------------------------


SKILL_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,47}")
"""A skill an agent holds and a conversation may require (``payments``, ``senior``)."""
LANGUAGE_CODE: Final = re.compile(r"[a-z]{2}")
"""ISO 639-1, as ingest detects it on ``message.received``."""


class Requirements(msgspec.Struct, frozen=True, kw_only=True):
    """Who can answer a conversation: an agent holding every skill and speaking the language
    (push assignment relaxes them step by step when nobody such is free)."""

    skills: tuple[str, ...] = ()
    language: str | None = None


class RoutingExplanation(msgspec.Struct, frozen=True, kw_only=True):
    rule: str
    conditions: tuple[str, ...]
    issue_type: str
    confidence: float
    notes: tuple[str, ...] = ()


class ConversationRouted(EventData, frozen=True, kw_only=True):
    """A message was placed in a conversation and the conversation in a queue."""

    TYPE: ClassVar[str] = "com.switchboard.conversation.routed.v1"
    conversation_id: str
    reference: str
    thread_key: str
    channel: Channel
    queue: str
    priority: int
    sla_policy: str | None
    issue_type: str
    tags: tuple[str, ...] = ()
    is_new: bool
    reopened: bool = False
    message_id: str
    customer: CustomerIdentity
    text: str
    received_at: datetime
    explanation: RoutingExplanation
    customer_id: str | None = None
    incident_id: str | None = None
    provider_message_id: str | None = None
    """The message's id at its provider (an email's Message-ID): what a reply refers to."""
    our_address: str | None = None
    """Our address the message was sent to (our SMS number, our mailbox): a reply's sender."""
    automated: str | None = None
    """The message's ``automated`` marker: automatic follow-ups never answer such a message."""
    linked_conversation_id: str | None = None
    """The conversation whose thread the message named but was not let into (its sender is
    not a participant): this one is separate and never changes who that one answers."""
    subject: str | None = None
    """The message's subject line (email), for the conversation's transcript."""
    reply_window_closes_at: datetime | None = None
    """WhatsApp: when the customer-service window this message opened closes; after it only
    approved templates reach the customer."""
    requires: Requirements | None = None
    """Who can answer it, as the rule asked (None: anyone in the queue)."""


class IncidentDetected(EventData, frozen=True, kw_only=True):
    """Many customers reported the same problem at once (broad impact); emitted once."""

    TYPE: ClassVar[str] = "com.switchboard.incident.detected.v1"
    incident_id: str
    key: str
    issue_type: str
    customers: int
    window_seconds: float
    detected_at: datetime
    queue: str | None
    first_conversation_id: str


# --- outbound -------------------------------------------------------------------------------

CommandKind = Literal["auto_ack", "agent_reply", "status_update", "survey", "after_hours"]
AUTOMATED_PARAM = "automated"
"""Command param: the ``automated`` marker of the message answered (outbound refuses it)."""


class OutboundCommand(EventData, frozen=True, kw_only=True):
    """Something to send to a customer on the channel the conversation came from."""

    TYPE: ClassVar[str] = "com.switchboard.outbound.command.v1"
    command_id: str
    kind: CommandKind
    channel: Channel
    conversation_id: str
    reference: str
    recipient: str
    sender: str | None = None
    template: str | None = None
    text: str | None = None
    params: dict[str, str] = {}
    in_reply_to: str | None = None


ReceiptStatus = Literal[
    "sent", "delivered", "failed", "dead-lettered", "suppressed", "unknown", "window_closed"
]
"""``window_closed``: WhatsApp's customer-service window had closed and no approved template
carries this kind of message, so nothing was sent."""


class OutboundReceipt(EventData, frozen=True, kw_only=True):
    """The outcome of one outbound command (one final receipt per command)."""

    TYPE: ClassVar[str] = "com.switchboard.outbound.status.v1"
    command_id: str
    conversation_id: str
    channel: Channel
    status: ReceiptStatus
    provider_message_id: str | None = None
    error: str | None = None
    attempts: int = 1
    kind: CommandKind | None = None
    """The command's kind (acknowledgement, agent reply, ...), for the transcript."""
    text: str | None = None
    """The text as rendered for the customer, when it was composed (None when refused
    before composing, or answered from an earlier attempt's record)."""


DeliveryStatus = Literal[
    "queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "canceled", "unknown"
]


class DeliveryReport(EventData, frozen=True, kw_only=True):
    """A provider's delivery status for a message it sent for us (Twilio status callbacks).

    Keyed by ``provider_message_id`` on the outbound status topic, not by thread key: the
    callback names only the provider's message, so consumers join it to the send record
    (``outbound:send:{command_id}`` holds the provider id). ``provider_status`` is the
    provider's word as received; a word Switchboard does not know maps to ``unknown``.
    """

    TYPE: ClassVar[str] = "com.switchboard.outbound.delivery.v1"
    channel: Channel
    provider: str
    provider_message_id: str
    status: DeliveryStatus
    provider_status: str
    error_code: str | None = None
    at: datetime
    conversation_id: str | None = None
    """The conversation the message answered, when the callback URL named it (outbound asks
    Twilio to call back with it; the URL is part of what Twilio signs)."""


# --- sla ------------------------------------------------------------------------------------

SlaEventKind = Literal[
    "started", "warning", "breached", "met", "paused", "resumed", "cancelled", "recomputed"
]
SlaMetric = Literal["first_response", "next_response", "resolution"]


class SlaEvent(EventData, frozen=True, kw_only=True):
    """A change of one SLA clock of one conversation."""

    TYPE: ClassVar[str] = "com.switchboard.sla.event.v1"
    kind: SlaEventKind
    conversation_id: str
    reference: str
    queue: str
    policy: str
    metric: SlaMetric
    started_at: datetime
    deadline: datetime
    remaining_seconds: float
    business_hours: bool
    explanation: str = ""


# --- agents ---------------------------------------------------------------------------------

AgentActionKind = Literal[
    "claim", "reply", "reached", "note", "waiting", "resolve", "transfer", "change_issue_type"
]
"""``reached``: the agent answered the customer outside Switchboard (a phone call), so the
response clock is met although no reply went out through it. ``change_issue_type``: the agent
says the conversation's latest message is of another issue type than the router gave it (a
correction the classifier can learn from; the conversation stays where it is)."""


class AgentAction(EventData, frozen=True, kw_only=True):
    """An agent's action on a conversation, as published by the hub."""

    TYPE: ClassVar[str] = "com.switchboard.agent.action.v1"
    action_id: str
    kind: AgentActionKind
    conversation_id: str
    agent: str
    text: str | None = None
    queue: str | None = None
    at: datetime
    issue_type: str | None = None
    """``change_issue_type`` (and a transfer that names one): the issue type the agent says the
    message is of."""
    previous_issue_type: str | None = None
    """``change_issue_type`` and ``transfer``: the issue type the conversation had when the
    agent acted (the router's, unless an agent changed it before)."""
    message_id: str | None = None
    """``change_issue_type`` and ``transfer``: the event id of the customer message that type
    was given to (its ``message.received``), so a correction names the text it corrects
    without carrying it."""


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.TYPE: cls
    for cls in (
        MessageReceived,
        SurveyAnswered,
        ConversationRouted,
        IncidentDetected,
        OutboundCommand,
        OutboundReceipt,
        DeliveryReport,
        SlaEvent,
        AgentAction,
    )
}


# --- envelope -------------------------------------------------------------------------------


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """A CloudEvent: the envelope attributes and the typed data."""

    id: str
    source: str
    subject: str
    time: datetime
    data: EventData

    @property
    def type(self) -> str:
        return self.data.TYPE


Headers = list[tuple[str, bytes]]

_encoder = msgspec.json.Encoder()
_decoders = {name: msgspec.json.Decoder(cls) for name, cls in EVENT_TYPES.items()}


def encode(event: Event) -> tuple[bytes, Headers]:
    """The record value and ``ce_*`` headers of an event (binary content mode)."""
    headers: Headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", event.id.encode()),
        ("ce_type", event.type.encode()),
        ("ce_source", event.source.encode()),
        ("ce_time", event.time.isoformat().encode()),
        ("ce_subject", event.subject.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    return _encoder.encode(event.data), headers


def decode(value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Event:
    """Rebuild an event from a record, or raise :class:`InvalidEvent` saying what is wrong."""
    attrs = {name: raw for name, raw in headers if name.startswith("ce_")}
    try:
        text = {name: raw.decode() for name, raw in attrs.items()}
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"header is not UTF-8: {exc}") from None
    if text.get("ce_specversion") != SPEC_VERSION:
        raise InvalidEvent(f"unsupported ce_specversion {text.get('ce_specversion')!r}")
    missing = [h for h in ("ce_id", "ce_type", "ce_source", "ce_time") if not text.get(h)]
    if missing:
        raise InvalidEvent(f"missing headers: {', '.join(missing)}")
    decoder = _decoders.get(text["ce_type"])
    if decoder is None:
        raise InvalidEvent(f"unknown ce_type {text['ce_type']!r}")
    if value is None:
        raise InvalidEvent("record has no value")
    try:
        data = decoder.decode(value)
        time = datetime.fromisoformat(text["ce_time"])
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:
        raise InvalidEvent(f"{text['ce_type']}: {exc}") from None
    return Event(
        id=text["ce_id"],
        source=text["ce_source"],
        subject=text.get("ce_subject", ""),
        time=time,
        data=data,
    )


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every event type's data, keyed by CloudEvents type."""
    schemas, components = msgspec.json.schema_components(
        list(EVENT_TYPES.values()), ref_template="#/$defs/{name}"
    )
    return {
        name: {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            **schema,
            "$defs": components,
        }
        for name, schema in zip(EVENT_TYPES, schemas, strict=True)
    }
