"""The envelope: CloudEvents binary mode round trips, and hostile records fail cleanly."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.events import (
    EVENT_TYPES,
    Event,
    InvalidEvent,
    decode,
    encode,
    event_id,
    json_schemas,
)

EXAMPLES = Path(__file__).parents[2] / "docs" / "events" / "examples"
SCHEMAS = Path(__file__).parents[2] / "docs" / "events" / "schemas"


def test_event_ids_are_deterministic_and_distinct() -> None:
    assert event_id("sms", "twilio", "SM1") == event_id("sms", "twilio", "SM1")
    assert event_id("sms", "twilio", "SM1") != event_id("sms", "twilio", "SM2")
    assert event_id("a", "bc") != event_id("ab", "c")  # parts are separated, not concatenated


@pytest.mark.parametrize("ce_type", sorted(EVENT_TYPES))
def test_every_type_has_an_example_that_round_trips(ce_type: str) -> None:
    example = json.loads((EXAMPLES / f"{ce_type}.json").read_text())
    data = msgspec.json.decode(json.dumps(example), type=EVENT_TYPES[ce_type])
    event = Event(
        id=event_id("example", ce_type),
        source="/test",
        subject="thread-1",
        time=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        data=data,
    )
    value, headers = encode(event)
    names = dict(headers)
    assert names["ce_specversion"] == b"1.0"
    assert names["ce_type"] == ce_type.encode()
    assert names["content-type"] == b"application/json"
    assert decode(value, headers) == event


def test_published_schemas_match_the_structs() -> None:
    for ce_type, schema in json_schemas().items():
        published = json.loads((SCHEMAS / f"{ce_type}.json").read_text())
        assert published == json.loads(json.dumps(schema)), "run `switchboard schema --out ...`"


@pytest.mark.parametrize(
    ("headers", "value", "reason"),
    [
        ([], b"{}", "ce_specversion"),
        ([("ce_specversion", b"1.0")], b"{}", "missing headers"),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_type", b"x.y.v9"),
                ("ce_source", b"/s"),
                ("ce_time", b"2026-01-01T00:00:00+00:00"),
            ],
            b"{}",
            "unknown",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_type", b"com.switchboard.message.received.v1"),
                ("ce_source", b"/s"),
                ("ce_time", b"2026-01-01T00:00:00+00:00"),
            ],
            b'{"channel": "fax"}',
            "message.received",
        ),
        ([("ce_specversion", b"\xff")], b"{}", "UTF-8"),
    ],
)
def test_malformed_records_raise_invalid_event(
    headers: list[tuple[str, bytes]], value: bytes, reason: str
) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode(value, headers)


@given(
    value=st.one_of(st.none(), st.binary(max_size=200)),
    ce_type=st.sampled_from(sorted(EVENT_TYPES)),
    time=st.binary(max_size=40),
)
def test_arbitrary_values_never_escape_as_other_errors(
    value: bytes | None, ce_type: str, time: bytes
) -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"1"),
        ("ce_type", ce_type.encode()),
        ("ce_source", b"/s"),
        ("ce_time", time),
    ]
    with contextlib.suppress(InvalidEvent):
        decode(value, headers)
