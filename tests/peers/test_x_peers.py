"""X API v2 responses and the webhook CRC case collected from others, read by OUR code.

Every mentions-timeline response (tests/fixtures/peers/x_api_payloads.json, sources in
NOTICE-x-twilio.md) goes through the poller's own page parser: tweet ids (as exact strings,
they exceed 2**53), ``meta.newest_id``/``oldest_id``/``result_count``/``next_token`` and the
authors joined from ``includes.users``; every CRC case through the webhook's CRC answer. One
test per vector.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from services.ingest.x.mentions import MentionsPage, normalise_mention, parse_mentions_page
from services.ingest.x.webhook import XWebhook, crc_response_token

AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
"""When the poller read the page: stamps a mention whose creation time X left out."""

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "peers" / "x_api_payloads.json"
DATA: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))


def summary(page: MentionsPage) -> dict[str, Any]:
    """The fields a poller reads off a page, named as the vectors name them."""
    return {
        "tweet_ids": [m.id for m in page.mentions],
        "author_username_by_tweet_id": {
            m.id: m.author_username for m in page.mentions if m.author_username is not None
        },
        "newest_id": page.newest_id,
        "oldest_id": page.oldest_id,
        "result_count": page.result_count,
        "next_token": page.next_token,
    }


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c["id"]) for c in DATA["mentions_timeline_responses"]]
)
def test_mentions_response_is_read_by_our_poller(case: dict[str, Any]) -> None:
    assert case["response_status"] == 200
    page = parse_mentions_page(case["response_json"])
    ours = summary(page)
    assert {name: ours[name] for name in case["expected_fields"]} == case["expected_fields"]
    # The ids stay exact strings all the way into the normalised event.
    events = [normalise_mention(m, "1", AT)[1] for m in page.mentions]
    assert [e.provider_message_id for e in events] == case["expected_fields"]["tweet_ids"]
    assert [e.text for e in events] == [t["text"] for t in case["response_json"]["data"]]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in DATA["crc_cases"]])
async def test_crc_case_is_answered_by_our_webhook(case: dict[str, Any]) -> None:
    assert (
        crc_response_token(case["consumer_secret"], case["crc_token"])
        == (case["expected_response_token"])
    )
    webhook = XWebhook(acceptor=None, consumer_secret=case["consumer_secret"], user_id="1")  # type: ignore[arg-type]
    request = make_mocked_request("GET", f"/v1/social/x/webhook?crc_token={case['crc_token']}")
    response = await webhook.crc(request)
    assert response.status == 200
    assert json.loads(response.text or "") == case["expected_response_json"]
