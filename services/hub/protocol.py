"""The agent hub's wire protocol, version 1 (documented in docs/hub-protocol.md).

JSON text frames both ways, each an object with a ``type``. Client frames are parsed here into
msgspec structs (hostile input never reaches the handlers); server frames are built here, so
one module says what goes over the socket. Close codes are the ``CLOSE_*`` constants.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, cast

import msgspec

from libs.common.events import LANGUAGE_CODE, SKILL_NAME, AgentActionKind, Channel
from libs.common.socket_frames import FrameError, decode_object
from libs.contracts.agent_access import MAX_ATTRIBUTES
from libs.contracts.chat_mailbox import is_entry_id

VERSION: Final = 1

CLOSE_GOING_AWAY: Final = 1001  # the hub is shutting down: reconnect (to another replica)
CLOSE_TOO_BIG: Final = 1009  # a frame over the size limit (aiohttp closes with it)
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_TOKEN_INVALID: Final = 4401  # missing, malformed or badly signed token: do not retry as is
CLOSE_TOKEN_EXPIRED: Final = 4402  # expired, on connect or while connected: get a new token
CLOSE_QUEUE_FORBIDDEN: Final = 4403  # subscribed to a queue the token does not allow
CLOSE_SLOW_CONSUMER: Final = 4408  # the outgoing buffer filled up: reconnect and resume
CLOSE_UNAVAILABLE: Final = 4503  # the agent's state kept failing to read: reconnect later

MAX_TEXT_CHARS: Final = 10_000
MAX_QUEUES: Final = 64
ClientId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
QueueName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
ConversationId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]
ResumeId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")]
"""The shape of a per-queue event id; :func:`parse` also checks both parts fit 64 bits."""


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="type", frozen=True):
    """Follow queues; each maps to the last event id seen there, or null for a snapshot."""

    queues: Annotated[dict[QueueName, ResumeId | None], msgspec.Meta(max_length=MAX_QUEUES)]


IssueTypeName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class Action(msgspec.Struct, tag="action", tag_field="type", frozen=True):
    """An agent's action; ``id`` is chosen by the client and makes a resend harmless.
    ``issue_type``: what ``change_issue_type`` changes the conversation's issue type to (a
    ``transfer`` may name one too)."""

    id: ClientId
    kind: AgentActionKind
    conversation_id: ConversationId
    text: Text | None = None
    queue: QueueName | None = None
    issue_type: IssueTypeName | None = None


PresenceStatus = Literal["online", "away", "offline"]
Capacity = Annotated[int, msgspec.Meta(ge=0, le=1000)]


SkillName = Annotated[str, msgspec.Meta(pattern=rf"^{SKILL_NAME.pattern}$")]
LanguageCode = Annotated[str, msgspec.Meta(pattern=rf"^{LANGUAGE_CODE.pattern}$")]


class Presence(msgspec.Struct, tag="presence", tag_field="type", frozen=True):
    """The agent's availability for push assignment and how many conversations of each
    channel it can hold at once (a channel left out: none); ``skills`` and ``languages``
    narrow what its token grants for now (left out: all of it)."""

    status: PresenceStatus
    capacity: dict[Channel, Capacity] = msgspec.field(default_factory=dict)
    skills: Annotated[frozenset[SkillName], msgspec.Meta(max_length=MAX_ATTRIBUTES)] | None = None
    languages: (
        Annotated[frozenset[LanguageCode], msgspec.Meta(max_length=MAX_ATTRIBUTES)] | None
    ) = None


class Accept(msgspec.Struct, tag="accept", tag_field="type", frozen=True):
    """Take an offered conversation (a ``claim`` published to Kafka)."""

    offer_id: ClientId


class Decline(msgspec.Struct, tag="decline", tag_field="type", frozen=True):
    """Refuse an offered conversation: it goes to the next agent."""

    offer_id: ClientId


class Customer(msgspec.Struct, tag="customer", tag_field="type", frozen=True):
    """Ask for the profile and cross-channel history of a conversation's customer."""

    id: ClientId
    conversation_id: ConversationId


MAX_TRANSCRIPT_PAGE: Final = 200
EntryId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Transcript(msgspec.Struct, tag="transcript", tag_field="type", frozen=True):
    """Ask for a page of a conversation's transcript: the ``limit`` entries before the entry
    ``before`` (null: the newest)."""

    id: ClientId
    conversation_id: ConversationId
    before: EntryId | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_TRANSCRIPT_PAGE)] = 50


class Figures(msgspec.Struct, tag="figures", tag_field="type", frozen=True):
    """Ask for the figures of the token's queues (supervisor tokens only)."""

    id: ClientId


IncidentId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class AnswerIncident(msgspec.Struct, tag="answer_incident", tag_field="type", frozen=True):
    """Send the incident's status update to every customer of its open linked conversations
    in the token's queues (each at most once, whoever asks again)."""

    id: ClientId
    incident_id: IncidentId


ClientMessage = (
    Subscribe
    | Action
    | Presence
    | Accept
    | Decline
    | Customer
    | Transcript
    | Figures
    | AnswerIncident
)
CLIENT_TYPES: Final = frozenset(
    {
        "subscribe",
        "action",
        "presence",
        "accept",
        "decline",
        "customer",
        "transcript",
        "figures",
        "answer_incident",
    }
)


def parse(raw: str | bytes) -> ClientMessage:
    """The message in one frame, or :class:`FrameError` saying what is wrong."""
    data = decode_object(raw)
    client_id = data.get("id") if isinstance(data.get("id"), str) else None
    if data.get("type") not in CLIENT_TYPES:
        raise FrameError("unknown_type", f"type must be one of {sorted(CLIENT_TYPES)}", client_id)
    try:
        message = cast(ClientMessage, msgspec.convert(data, type=ClientMessage))
    except msgspec.ValidationError as exc:
        raise FrameError("invalid_frame", str(exc), client_id) from None
    if isinstance(message, Subscribe):
        for queue, after in message.queues.items():
            if after is not None and not is_entry_id(after):
                raise FrameError("invalid_frame", f"resume id of {queue} is not a stream id")
    return message


# --- server -> client -----------------------------------------------------------------------

_encode = msgspec.json.Encoder().encode


def frame(kind: str, **fields: Any) -> str:
    return _encode({"type": kind, **fields}).decode()


def hello(
    agent: str, queues: frozenset[str], expires_at: float, issue_types: frozenset[str]
) -> str:
    """The first frame: who the token is, its queues, and the issue types an agent may give a
    conversation (``change_issue_type``)."""
    return frame(
        "hello",
        version=VERSION,
        agent=agent,
        queues=sorted(queues),
        expires_at=expires_at,
        issue_types=sorted(issue_types),
    )


def error(code: str, message: str, client_id: str | None, *, retry: bool = False) -> str:
    return frame("error", code=code, message=message, id=client_id, retry=retry)


def event(queue: str, entry_id: str, payload: bytes) -> str:
    """An ``event`` frame around a stream entry's payload (a JSON object), without re-parsing
    it: every socket of the queue sends the same bytes the fan-out encoded once."""
    head = _encode({"type": "event", "queue": queue, "id": entry_id}).decode()
    body = payload.decode()
    return head[:-1] + "," + body[1:] if body != "{}" else head


def offer(offer_id: str, queue: str, expires_at: float, conversation: dict[str, Any]) -> str:
    return frame(
        "offer", offer_id=offer_id, queue=queue, expires_at=expires_at, conversation=conversation
    )


def presence(status: str, reason: str | None) -> str:
    return frame("presence", status=status, reason=reason)


def offer_revoked(offer_id: str, reason: str) -> str:
    return frame("offer_revoked", offer_id=offer_id, reason=reason)


def customer(client_id: str, conversation_id: str, view: dict[str, Any]) -> str:
    """The answer to a ``customer`` request: ``profile`` (or null) and ``history``."""
    return frame("customer", id=client_id, conversation_id=conversation_id, **view)


def transcript(
    client_id: str, conversation_id: str, entries: list[dict[str, Any]], more: bool
) -> str:
    """The answer to a ``transcript`` request: ``entries`` oldest first; ``more`` when older
    ones remain (ask again with ``before`` = the first entry's id)."""
    return frame(
        "transcript", id=client_id, conversation_id=conversation_id, entries=entries, more=more
    )


def figures(client_id: str | None, at: datetime, queues: list[dict[str, Any]]) -> str:
    """The answer to a ``figures`` request, or (``client_id`` None) figures the hub pushes to
    a supervisor: one entry per queue, as of ``at``."""
    return frame("figures", id=client_id, at=at.isoformat(), queues=queues)


def offer_ack(offer_id: str) -> str:
    """The ``ack`` of a ``decline`` (an ``accept`` gets the ack of its claim)."""
    return frame("ack", id=offer_id, action_id=None, command_id=None)
