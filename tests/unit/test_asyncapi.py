"""docs/events/asyncapi.yaml: what the code generates, valid AsyncAPI 3.0, true to the code.

The document is validated against the official AsyncAPI 3.0.0 JSON Schema (vendored in
tests/fixtures/asyncapi), and the messages it describes against what the code really sends:
every event type on the topic that carries it, the consumer loop's dead-letter headers, and the
frames the hub's protocol module builds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import jsonschema
import pytest

from libs.common import openapi
from libs.common.events import EVENT_TYPES, InvalidEvent
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from libs.common.topics import Topics
from services.hub import protocol
from tests.support.kafka import wait_until
from tests.unit.kafka.test_consumer_loop import (
    DLQ,
    P0,
    SETTLE,
    FakeConsumer,
    FakeKafkaProducer,
    make_loop,
    record,
    running,
)
from tooling import asyncapi

ROOT: Final = Path(__file__).parents[2]
SPEC: Final = ROOT / "tests" / "fixtures" / "asyncapi" / "asyncapi-3.0.0.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi.build()


def resolve(document: dict[str, Any], reference: dict[str, str]) -> Any:
    """The object a local ``$ref`` ("#/a/b") points at."""
    found: Any = document
    for part in reference["$ref"].removeprefix("#/").split("/"):
        found = found[part]
    return found


def schema_of(document: dict[str, Any], message: dict[str, Any], part: str) -> dict[str, Any]:
    """A message's ``payload`` or ``headers`` schema, its references resolvable in place."""
    return {**message[part], "components": document["components"]}


def test_the_checked_in_document_is_what_the_code_generates(document: dict[str, Any]) -> None:
    checked_in = (ROOT / asyncapi.DEFAULT_PATH).read_text(encoding="utf-8")
    assert checked_in == openapi.render(document), "run `make schema`"


def test_the_document_is_valid_asyncapi_3(document: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SPEC.read_text()))
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]
    assert errors == []


def test_every_topic_is_a_channel_carrying_exactly_its_event_types(
    document: dict[str, Any],
) -> None:
    topics = Topics.with_prefix()
    kafka = {
        channel["address"]: channel
        for channel in document["channels"].values()
        if channel["servers"] == [{"$ref": "#/servers/kafka"}]
    }
    assert set(kafka) == set(topics.all())
    for topic, types in topics.events().items():
        messages = [resolve(document, m) for m in kafka[topic]["messages"].values()]
        assert {m["name"] for m in messages} == {t.TYPE for t in types}, topic
    carried = [t.TYPE for types in topics.events().values() for t in types]
    assert sorted(carried) == sorted(EVENT_TYPES)  # each type on exactly one topic


def test_every_operation_sends_or_receives_messages_of_its_own_channel(
    document: dict[str, Any],
) -> None:
    for name, operation in document["operations"].items():
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), name
            resolve(document, message)


async def test_a_dead_letter_carries_the_documented_headers(document: dict[str, Any]) -> None:
    async def reject(consumed: Consumed) -> Sequence[Outgoing]:
        raise InvalidEvent("never valid")

    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(record(P0, 0, "k"))
    async with running(make_loop(consumer, producer, reject)):
        await wait_until(lambda: bool(producer.to(DLQ)), timeout=SETTLE, message="a dead letter")
    [letter] = producer.to(DLQ)
    added = {name for name in letter.headers if name.startswith("dlq_")}
    headers = document["components"]["messages"]["deadLetter"]["headers"]
    assert set(headers["properties"]) == set(headers["required"]) == added


def test_the_hub_channel_receives_every_client_frame_of_the_protocol(
    document: dict[str, Any],
) -> None:
    assert document["channels"]["agentHub"]["address"] == "/v1/agents/ws"
    received = document["operations"]["receiveAgentFrames"]["messages"]
    names = {resolve(document, resolve(document, m))["name"] for m in received}
    assert names == set(protocol.CLIENT_TYPES)


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        (
            "hub.hello",
            protocol.hello(
                "ada", frozenset({"sms-desk"}), 1_800_000_000.0, frozenset({"payment_issue"})
            ),
        ),
        ("hub.error", protocol.error("invalid_frame", "no", "c-1", retry=False)),
        ("hub.error", protocol.error("unavailable", "try again", None, retry=True)),
        (
            "hub.event",
            protocol.event("sms-desk", "1-0", b'{"kind":"routed","conversation_id":"c","data":{}}'),
        ),
        ("hub.offer", protocol.offer("o-1", "sms-desk", 1.5, {"conversation_id": "c"})),
        ("hub.presence", protocol.presence("online", None)),
        ("hub.offerRevoked", protocol.offer_revoked("o-1", "expired")),
        ("hub.customer", protocol.customer("c-1", "c", {"profile": None, "history": []})),
        (
            "hub.transcript",
            protocol.transcript("t-1", "c", [{"id": "in:1", "kind": "inbound"}], True),
        ),
        ("hub.ack", protocol.offer_ack("o-1")),
    ],
)
def test_frames_the_hub_builds_match_their_documented_schema(
    document: dict[str, Any], name: str, frame: str
) -> None:
    message = document["components"]["messages"][name]
    jsonschema.validate(json.loads(frame), schema_of(document, message, "payload"))


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "subscribe", "queues": {"sms-desk": None}},
        {"type": "action", "id": "c-1", "kind": "reply", "conversation_id": "c", "text": "Hi"},
        {"type": "presence", "status": "online", "capacity": {"chat": 2}},
        {"type": "accept", "offer_id": "o-1"},
        {"type": "decline", "offer_id": "o-1"},
        {"type": "customer", "id": "c-1", "conversation_id": "c"},
        {"type": "transcript", "id": "t-1", "conversation_id": "c", "before": None, "limit": 50},
    ],
)
def test_frames_the_hub_accepts_match_their_documented_schema(
    document: dict[str, Any], frame: dict[str, Any]
) -> None:
    protocol.parse(json.dumps(frame))  # the hub takes it
    message = document["components"]["messages"][f"agent.{frame['type']}"]
    jsonschema.validate(frame, schema_of(document, message, "payload"))
