"""Every hand-written email in tests/fixtures/email/ against its expected result.

Each ``NAME.eml`` is a realistic message to an online store's support address (replies from
Gmail, Outlook, Apple Mail, Thunderbird, Yahoo and Samsung clients, HTML-only mail, several
charsets, attachments and inline images, an auto-reply, a bounce, list mail) and
``NAME.expected.json`` says, field by field, what ``parse_email`` must return. The expectations
were written from what each message says, not copied from the parser's output; every field of
ParsedEmail is asserted, so a new field fails here until each fixture states its value.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.ingest.mail import ParsedEmail, parse_email

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email"
EMLS = sorted(FIXTURES.glob("*.eml"))
FIELDS = set(ParsedEmail.__struct_fields__)


def test_corpus_is_complete() -> None:
    assert len(EMLS) >= 30
    for eml in EMLS:
        assert eml.with_suffix(".expected.json").exists(), eml.name
    assert len(list(FIXTURES.glob("*.expected.json"))) == len(EMLS)


@pytest.mark.parametrize("eml", EMLS, ids=[eml.name for eml in EMLS])
def test_fixture(eml: Path) -> None:
    raw = eml.read_bytes()
    expected: dict[str, Any] = json.loads(
        eml.with_suffix(".expected.json").read_text(encoding="utf-8")
    )
    assert expected.pop("description")
    parsed = parse_email(raw)
    actual = json.loads(msgspec.json.encode(parsed))

    # The size is the raw size, the one field a fixture cannot state by hand.
    assert actual.pop("size") == len(raw)
    assert set(expected) == FIELDS - {"size"}, "the fixture must state every field"

    wanted_date = expected.pop("date")
    if wanted_date is None:
        assert parsed.date is None
    else:
        wanted = datetime.fromisoformat(wanted_date)
        assert parsed.date == wanted
        assert parsed.date is not None
        assert parsed.date.utcoffset() == wanted.utcoffset()
    actual.pop("date")

    for field in sorted(expected):
        assert actual[field] == expected[field], field
