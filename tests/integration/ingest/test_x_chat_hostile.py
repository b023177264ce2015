"""Hostile input at the X webhook (CRC GET, events POST) and the chat session POST, over HTTP.

The parsers behind them are fuzzed directly in test_x.py and test_chat.py; here Hypothesis's
requests go through the whole app to the real broker and Redis, one at a time. Each answer is
a 2xx with its events on Kafka exactly once, or a 4xx with a JSON reason and Redis untouched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from libs.common.events import MessageReceived, event_id
from services.ingest.chat import SESSION_PATH
from services.ingest.chat.session import SessionTokens
from services.ingest.x.webhook import PATH as X_PATH
from tests.integration.ingest.conftest import (
    CHAT_KEY,
    X_SECRET,
    X_USER_ID,
    Ingest,
    read_all,
    snapshot,
)
from tests.support.harness import Isolation
from tests.support.webhooks import sign_x

CUSTOMER_ID = "1700000000000000007"
# X's CRC tokens: base64 or base64url text (a UUID in X's own example), never JSON.
X_SHAPED_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{1,512}")
DM_IDS = ["1900000000000000101", "1900000000000000102", "1900000000000000103"]


def gather(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """Draw ``count`` examples up front: the requests are then sent on the test's event loop."""
    drawn: list[Any] = []

    @settings(max_examples=count, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(example: Any) -> None:
        drawn.append(example)

    draw()
    return drawn


async def assert_clear_rejection(response: aiohttp.ClientResponse) -> None:
    assert 400 <= response.status < 500, response.status
    reason = (await response.json())["error"]
    assert isinstance(reason, str)
    assert reason


# --- X: CRC challenge -------------------------------------------------------------------------

_crc_queries = st.lists(
    st.tuples(
        st.sampled_from(["crc_token", "nonce", ""]) | st.text(max_size=5),
        st.text() | st.from_regex(X_SHAPED_TOKEN, fullmatch=True),
    ),
    max_size=3,
)


async def test_any_crc_query_is_answered_with_the_hmac_or_a_clear_400(
    ingest_app: Ingest, redis: Redis, http: aiohttp.ClientSession
) -> None:
    before = await snapshot(redis, ingest_app.keys)
    for query in gather(_crc_queries, 100):
        async with http.get(ingest_app.url + X_PATH, params=query) as response:
            tokens = [v for k, v in query if k == "crc_token"]
            if response.status != 200:
                await assert_clear_rejection(response)
                assert not tokens or not X_SHAPED_TOKEN.fullmatch(tokens[0]), query
                continue
            assert X_SHAPED_TOKEN.fullmatch(tokens[0]), query
            digest = hmac.new(X_SECRET.encode(), tokens[0].encode(), hashlib.sha256).digest()
            expected = "sha256=" + base64.b64encode(digest).decode()
            assert await response.json() == {"response_token": expected}
    assert await snapshot(redis, ingest_app.keys) == before


async def test_a_dm_sent_as_crc_token_gets_no_signature_to_post_it_with(
    isolation: Isolation, ingest_app: Ingest, http: aiohttp.ClientSession
) -> None:
    """Issue 16: the CRC answer is X's signature of its token, so a CRC endpoint that answered
    any string signed any POST body; a forged DM from an id of the caller's choosing."""
    forged = json.dumps(
        {
            "for_user_id": X_USER_ID,
            "direct_message_events": [
                {
                    "type": "message_create",
                    "id": DM_IDS[0],
                    "created_timestamp": "1795599015123",
                    "message_create": {
                        "target": {"recipient_id": X_USER_ID},
                        "sender_id": CUSTOMER_ID,
                        "message_data": {"text": "refund order 5521 to my new card"},
                    },
                }
            ],
        },
        separators=(",", ":"),
    )
    async with http.get(ingest_app.url + X_PATH, params={"crc_token": forged}) as response:
        crc_status = response.status
        answer = (await response.json()).get("response_token", "")
    headers = {"x-twitter-webhooks-signature": answer, "Content-Type": "application/json"}
    async with http.post(ingest_app.url + X_PATH, data=forged.encode(), headers=headers) as r:
        assert r.status == 403
    assert await read_all(ingest_app.bootstrap, isolation.topics.inbound) == []
    assert crc_status == 400


# --- X: signed events ---------------------------------------------------------------------------

_dm = st.fixed_dictionaries(
    {
        "type": st.just("message_create"),
        "id": st.sampled_from(DM_IDS),
        "created_timestamp": st.from_regex(r"1[0-9]{12}", fullmatch=True),
        "message_create": st.fixed_dictionaries(
            {
                "target": st.fixed_dictionaries({"recipient_id": st.just(X_USER_ID)}),
                "sender_id": st.sampled_from([CUSTOMER_ID, X_USER_ID]),
                "message_data": st.fixed_dictionaries({"text": st.text(max_size=40)}),
            }
        ),
    }
)
_x_body = st.one_of(
    st.lists(_dm, min_size=1, max_size=3).map(
        lambda dms: json.dumps({"for_user_id": X_USER_ID, "direct_message_events": dms}).encode()
    ),
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
)
_x_request = st.tuples(_x_body, st.sampled_from(["genuine", "genuine", "forged", "none"]))


async def test_any_signed_or_forged_x_post_gives_its_events_once_or_a_clear_4xx(
    isolation: Isolation, ingest_app: Ingest, redis: Redis, http: aiohttp.ClientSession
) -> None:
    keys = ingest_app.keys
    published: set[str] = set()
    for body, mode in gather(_x_request, 150):
        headers = {"genuine": sign_x(body, X_SECRET), "forged": sign_x(body, "guess"), "none": {}}
        before = await snapshot(redis, keys)
        async with http.post(ingest_app.url + X_PATH, data=body, headers=headers[mode]) as r:
            after = await snapshot(redis, keys)
            if r.status != 200:
                await assert_clear_rejection(r)
                assert r.status == 400 if mode == "genuine" else r.status == 403
                assert after == before, body
                continue
        assert mode == "genuine"
        dms = json.loads(body).get("direct_message_events", [])  # `{}` has no messages
        new = {
            event_id("social", "x", "dm", dm["id"])
            for dm in dms
            if dm["message_create"]["sender_id"] != X_USER_ID
        } - published
        published |= new
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        assert changed == {keys.ingest_accepted(i).encode() for i in new}
        assert all(after[k] == b"done" for k in changed)
    events = await read_all(ingest_app.bootstrap, isolation.topics.inbound)
    assert sorted(e.id for e in events) == sorted(published)
    assert all(isinstance(e.data, MessageReceived) for e in events)


# --- chat sessions -----------------------------------------------------------------------------

_valid = SessionTokens(CHAT_KEY, 3600).issue()
_tokens = st.sampled_from(
    [_valid.token, _valid.token[:-3] + "abc", SessionTokens("k" * 40, 60).issue().token]
) | st.text(max_size=50)
_session_body = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    st.builds(lambda t: json.dumps({"token": t}).encode(), _tokens),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=8,
    ).map(lambda v: json.dumps(v).encode()),
    st.just(b"[" * 3000 + b"]" * 3000),
)
_content_type = st.sampled_from(["application/json", "text/plain", "", "application/x-www-form"])


async def test_any_chat_session_post_issues_a_valid_token_or_a_clear_4xx(
    ingest_app: Ingest, redis: Redis, http: aiohttp.ClientSession
) -> None:
    verify = SessionTokens(CHAT_KEY, 3600).verify
    before = await snapshot(redis, ingest_app.keys)
    for body, content_type in gather(st.tuples(_session_body, _content_type), 150):
        headers = {"Content-Type": content_type} if content_type else {}
        async with http.post(ingest_app.url + SESSION_PATH, data=body, headers=headers) as r:
            if r.status != 200:
                await assert_clear_rejection(r)
                continue
            session = await r.json()
        assert verify(session["token"]) == session["visitor_id"]
        presented = json.loads(body).get("token") if body.strip().startswith(b"{") else None
        if presented == _valid.token:  # renewal keeps the visitor; nothing else names one
            assert session["visitor_id"] == _valid.visitor_id
        else:
            assert session["visitor_id"] != _valid.visitor_id
    assert await snapshot(redis, ingest_app.keys) == before  # sessions are stateless
