"""The agent hub's websocket in the AsyncAPI document (:mod:`tooling.asyncapi`).

Client frames are the protocol module's msgspec structs, so their schemas are generated. The
hub's own frames are built by functions, not structs: their schemas are written here, field
for field as docs/hub-protocol.md lists them, and a test validates the frames those functions
build against them. Fields may be added to any frame (clients ignore what they do not know).
"""

from __future__ import annotations

from typing import Any, Final, get_args

import msgspec

from libs.common.openapi import SCHEMA_REF
from libs.contracts.agent_access import WS_PATH
from services.hub import protocol

CHANNEL: Final = "agentHub"
CLIENT_FRAMES: Final = (
    protocol.Subscribe,
    protocol.Action,
    protocol.Presence,
    protocol.Accept,
    protocol.Decline,
    protocol.Customer,
    protocol.Transcript,
    protocol.AnswerIncident,
    protocol.Figures,
)
"""Every member of :data:`protocol.ClientMessage`, in the order the protocol document lists."""

_text: Final = {"type": "string"}
_text_or_null: Final = {"type": ["string", "null"]}
_number: Final = {"type": "number"}
_object: Final = {"type": "object"}
_object_or_null: Final = {"type": ["object", "null"]}

SERVER_FRAMES: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "hello": (
        "First frame after a successful upgrade.",
        {
            "version": {"const": protocol.VERSION},
            "agent": _text,
            "queues": {"type": "array", "items": _text},
            "expires_at": {**_number, "description": "The token's expiry, Unix seconds."},
            "issue_types": {
                "type": "array",
                "items": _text,
                "description": "The configured issue types (for `change_issue_type`).",
            },
        },
    ),
    "subscribed": (
        "A resume is possible: the events after `after` follow.",
        {"queue": _text, "after": _text},
    ),
    "resync": (
        "The resume id is older than what the hub still holds: a snapshot follows.",
        {"queue": _text, "after": _text, "reason": _text},
    ),
    "snapshot": (
        "The queue's open conversations and open incidents as of `id`; events after `id` follow.",
        {
            "queue": _text,
            "id": _text,
            "conversations": {"type": "array", "items": _object},
            "incidents": {"type": "array", "items": _object},
        },
    ),
    "event": (
        "Something happened in a followed queue; `data` is the event's data as on Kafka "
        "(`kind` `relaxed`: the hub's own, a step of the queue's relaxation ladder).",
        {"queue": _text, "id": {**_text, "description": "The event's id in its queue."}},
    ),
    "ack": (
        "An action is on Kafka (or a decline was taken); the ack of `answer_incident` also "
        "has `incident_id`, `answered` and `already_answered`.",
        {"id": _text, "action_id": _text_or_null, "command_id": _text_or_null},
    ),
    "customer": (
        "The answer to a `customer` request.",
        {
            "id": _text,
            "conversation_id": _text,
            "profile": _object_or_null,
            "history": {"type": "array", "items": _object},
        },
    ),
    "transcript": (
        "The answer to a `transcript` request: a page of entries, oldest first.",
        {
            "id": _text,
            "conversation_id": _text,
            "entries": {"type": "array", "items": _object},
            "more": {"type": "boolean"},
        },
    ),
    "figures": (
        "The answer to a `figures` request (supervisor tokens), or (`id` null) figures the "
        "hub pushes to a supervisor when they change: one entry per queue.",
        {"id": _text_or_null, "at": _text, "queues": {"type": "array", "items": _object}},
    ),
    "error": (
        "A frame or action was refused; with `retry: true` send it again later.",
        {"code": _text, "message": _text, "id": _text_or_null, "retry": {"type": "boolean"}},
    ),
    "presence": (
        "The agent's presence, as asked or as the hub changed it.",
        {
            "status": {"enum": list(get_args(protocol.PresenceStatus))},
            "reason": _text_or_null,
        },
    ),
    "offer": (
        "A conversation offered to the agent: accept or decline it before `expires_at`.",
        {"offer_id": _text, "queue": _text, "expires_at": _number, "conversation": _object},
    ),
    "offer_revoked": (
        "An offer sent to the agent is no longer open.",
        {"offer_id": _text, "reason": _text},
    ),
}
"""Frame type -> (when it is sent, its fields); every field listed is present in the frame."""


def part() -> dict[str, Any]:
    """The hub's server, channel, operations, messages and schemas."""
    payloads, schemas = msgspec.json.schema_components(CLIENT_FRAMES, ref_template=SCHEMA_REF)
    client = {
        f"agent.{_type_of(payload, schemas)}": {
            "name": _type_of(payload, schemas),
            "payload": payload,
        }
        for payload in payloads
    }
    server = {
        f"hub.{_camel(kind)}": {"name": kind, "summary": summary, "payload": _frame(kind, fields)}
        for kind, (summary, fields) in SERVER_FRAMES.items()
    }
    return {
        "servers": {
            "hub": {
                "host": "127.0.0.1:8080",
                "protocol": "ws",
                "description": "The hub (SWITCHBOARD_HTTP_PORT); wss behind a TLS proxy.",
            }
        },
        "channels": {
            CHANNEL: {
                "address": WS_PATH,
                "title": "Agent hub, protocol version 1",
                "description": "One websocket per agent tool: JSON text frames both ways, each "
                "an object with a `type` (docs/hub-protocol.md). The token travels in the "
                "subprotocols (`switchboard.v1`, `switchboard.token.<token>`), an "
                "`Authorization: Bearer` header or the `token` query parameter.",
                "servers": [{"$ref": "#/servers/hub"}],
                "messages": {
                    name: {"$ref": f"#/components/messages/{name}"} for name in (*client, *server)
                },
                "bindings": {"ws": {"method": "GET", "bindingVersion": "0.1.0"}},
            }
        },
        "operations": {
            "receiveAgentFrames": _operation("receive", client),
            "sendHubFrames": _operation("send", server),
        },
        "messages": {**client, **server},
        "schemas": schemas,
    }


def _operation(action: str, messages: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{CHANNEL}"},
        "messages": [{"$ref": f"#/channels/{CHANNEL}/messages/{name}"} for name in messages],
    }


def _type_of(payload: dict[str, str], schemas: dict[str, Any]) -> str:
    """The ``type`` tag of a client frame, from its generated schema."""
    schema = schemas[payload["$ref"].rsplit("/", 1)[-1]]
    tag: str = schema["properties"]["type"]["enum"][0]
    return tag


def _frame(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", *fields],
        "properties": {"type": {"const": kind}, **fields},
    }


def _camel(kind: str) -> str:
    head, *rest = kind.split("_")
    return head + "".join(word.title() for word in rest)
