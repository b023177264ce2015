"""Hostile input at the Twilio endpoints, over HTTP to the real broker and Redis.

Hypothesis draws requests (arbitrary form fields and values, raw bytes, non-UTF-8, wrong
content types, genuine, forged, tampered and missing signatures); they are sent one at a time
to ``POST /v1/sms/twilio`` and ``POST /v1/sms/twilio/status``. For each one: a 2xx whose event
is on Kafka exactly once, or a 4xx with a JSON reason and Redis exactly as it was before.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import MultiDict
from redis.asyncio import Redis

from libs.common.events import DeliveryReport, MessageReceived, event_id
from libs.contracts.optout import classify
from services.ingest.sms import MAX_BODY_BYTES, PATH, STATUS_PATH
from tests.integration.ingest.conftest import PUBLIC_URL, Ingest, read_all, snapshot
from tests.support.harness import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, Isolation
from tests.support.webhooks import sign_twilio_pairs
from tooling.sandbox.twilio import sms_webhook_form

FORM = "application/x-www-form-urlencoded"
CUSTOMER = "+14155550123"
SIDS = ["SM" + c * 32 for c in "abc"]  # a small pool, so deliveries repeat and race statuses
# Content types and whether ingest must read them as a form (media type, any case, any params).
CONTENT_TYPES = [
    (FORM, True),
    (FORM + "; charset=utf-8", True),
    ("Application/X-WWW-Form-URLEncoded", True),
    ("application/json", False),
    ("text/plain; charset=utf-8", False),
    ("multipart/form-data; boundary=x", False),
    (None, False),  # no header at all
]


@dataclass(frozen=True)
class Delivery:
    path: str
    query: str
    body: bytes
    content_type: str | None
    signature: str | None
    genuine: bool  # the signature is Twilio's over exactly this URL and body
    chunked: bool = False

    @property
    def pairs(self) -> list[tuple[str, str]] | None:
        """The form as ingest must read it, or ``None`` when the body is not UTF-8."""
        try:
            return parse_qsl(self.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None

    @property
    def content_type_ok(self) -> bool:
        return dict(CONTENT_TYPES).get(self.content_type, False)

    def expected_rejection(self) -> int | None:
        """The 4xx that must answer this request before its fields are even looked at."""
        if not self.content_type_ok:
            return 415
        if len(self.body) > MAX_BODY_BYTES:
            return 413
        if self.pairs is None:
            return 400
        if not self.genuine:
            return 403
        return None


_names = st.sampled_from(
    [
        "MessageSid",
        "SmsMessageSid",
        "SmsSid",
        "From",
        "To",
        "Body",
        "NumMedia",
        "MediaUrl0",
        "MediaContentType0",
        "AccountSid",
        "MessageStatus",
        "SmsStatus",
        "ErrorCode",
    ]
) | st.text(max_size=10)
_values = st.sampled_from(
    [
        *SIDS,
        CUSTOMER,
        OUR_NUMBER,
        "STOP",
        " start! ",
        "HELP",
        "0",
        "-3",
        "2",
        " 3 ",
        "\u0661",  # int() reads Arabic-Indic digits
        "9" * 30,
        "sent",
        "DELIVERED",
        "read",
        "undelivered",
        "30003",
        "",
    ]
) | st.text(max_size=40)
_pairs = st.lists(st.tuples(_names, _values), max_size=10)


@st.composite
def _inbound_form(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A real inbound SMS form, some fields replaced or dropped, junk added."""
    form = sms_webhook_form(
        sender=draw(st.sampled_from([CUSTOMER, "+44 20 7946 0018", "SHOP"]) | st.text(min_size=1)),
        recipient=draw(st.sampled_from([OUR_NUMBER, "12345"]) | st.text(min_size=1, max_size=20)),
        body=draw(st.sampled_from(["where is my order?", "Stop.", "START", "help"]) | st.text()),
        sid=draw(st.sampled_from(SIDS) | st.text(min_size=1, max_size=40)),
    )
    drop = draw(st.sets(st.sampled_from(sorted(form)), max_size=2))
    return [(k, v) for k, v in form.items() if k not in drop] + draw(_pairs)


@st.composite
def _status_form(draw: st.DrawFn) -> list[tuple[str, str]]:
    sid = draw(st.sampled_from(SIDS) | st.sampled_from(SIDS) | st.text(max_size=36))
    word = draw(
        st.sampled_from(["queued", "sent", "delivered", "undelivered", "failed", "read", "Sent"])
        | st.from_regex(r"[a-z_-]{1,33}", fullmatch=True)
        | st.text(max_size=10)
    )
    form = [("MessageSid", sid), ("MessageStatus", word), ("AccountSid", "AC" + "1" * 32)]
    if draw(st.booleans()):
        form.append(("ErrorCode", draw(st.sampled_from(["30003", "0"]) | st.text(max_size=6))))
    return form + draw(st.lists(st.tuples(_names, _values), max_size=3))


_ascii = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@st.composite
def _delivery(
    draw: st.DrawFn, path: str, form: st.SearchStrategy[list[tuple[str, str]]]
) -> Delivery:
    """Half the time a well-formed request (so the fields reach the parser), else anything."""
    query = draw(st.sampled_from(["", "?tenant=1", "?a=%FF&b", "?bodySHA256=00"]))
    pairs = draw(st.one_of(form, form, form, _pairs))  # mostly near the real thing
    well_formed = draw(st.booleans())
    body = urlencode(pairs).encode()
    if not well_formed:
        body = draw(
            st.sampled_from([body, body + b"&Body=%FF%FE", body + b"&Body=\xff\xfe"])
            | st.binary(max_size=200)
        )  # %FF percent-decodes to U+FFFD; a raw \xff is not UTF-8
    content_type: str | None = FORM
    if not well_formed:
        content_type = draw(st.sampled_from([ct for ct, _ in CONTENT_TYPES]))
    url = PUBLIC_URL + path + query
    readable = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    genuine = sign_twilio_pairs(url, readable, AUTH_TOKEN)
    mode = "genuine"
    if not well_formed:
        mode = draw(st.sampled_from(["genuine", "wrong token", "loopback", "none", "junk"]))
    signature = {
        "genuine": genuine,
        "wrong token": sign_twilio_pairs(url, readable, "another-token"),
        "loopback": sign_twilio_pairs("http://127.0.0.1" + path + query, readable, AUTH_TOKEN),
        "none": None,
        "junk": draw(_ascii),
    }[mode]
    tampered = not well_formed and mode == "genuine" and draw(st.booleans())
    if tampered:  # a field added after signing
        body += b"&Body=refund+me"
    return Delivery(path, query, body, content_type, signature, mode == "genuine" and not tampered)


def gather(strategy: st.SearchStrategy[Delivery], count: int) -> list[Delivery]:
    """Draw ``count`` examples up front: the requests are then sent on the test's event loop."""
    drawn: list[Delivery] = []

    @settings(max_examples=count, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(delivery: Delivery) -> None:
        drawn.append(delivery)

    draw()
    return drawn


def oversized(path: str, form: list[tuple[str, str]]) -> list[Delivery]:
    """Genuinely signed forms over the size limit, with and without a Content-Length."""
    pairs = [*form, ("Body", "x" * MAX_BODY_BYTES)]
    signature = sign_twilio_pairs(PUBLIC_URL + path, pairs, AUTH_TOKEN)
    body = urlencode(pairs).encode()
    return [
        Delivery(path, "", body, FORM, signature, genuine=True, chunked=chunked)
        for chunked in (False, True)
    ]


async def post(http: aiohttp.ClientSession, base: str, delivery: Delivery) -> tuple[int, bytes]:
    headers = {}
    if delivery.content_type is not None:
        headers["Content-Type"] = delivery.content_type
    if delivery.signature is not None:
        headers["X-Twilio-Signature"] = delivery.signature

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(delivery.body), 8192):
            yield delivery.body[start : start + 8192]

    async with http.post(
        base + delivery.path + delivery.query,
        data=stream() if delivery.chunked else delivery.body,
        headers=headers,
        skip_auto_headers=["Content-Type"],
    ) as response:
        return response.status, await response.read()


def changed_keys(before: dict[bytes, object], after: dict[bytes, object]) -> set[bytes]:
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


def assert_clear_rejection(status: int, body: bytes, delivery: Delivery) -> None:
    assert 400 <= status < 500, (status, body, delivery)
    reason = json.loads(body)["error"]
    assert isinstance(reason, str), (body, delivery)
    assert reason, (body, delivery)


def _is_message(form: MultiDict[str]) -> bool:
    """What every inbound webhook carries: a message SID and (if any) an account SID of
    Twilio's shape, both numbers, a readable NumMedia."""
    if not re.fullmatch(
        r"(SM|MM)[0-9a-f]{32}", form.get("MessageSid") or form.get("SmsMessageSid") or ""
    ):
        return False
    if form.get("AccountSid") and not re.fullmatch(r"AC[0-9a-f]{32}", form["AccountSid"]):
        return False
    if not form.get("From") or not form.get("To"):
        return False
    try:
        int(form.get("NumMedia", "0"))
    except ValueError:
        return False
    return True


async def test_any_request_to_the_sms_webhook_gives_its_event_once_or_a_clear_4xx(
    isolation: Isolation, ingest_app: Ingest, redis: Redis, http: aiohttp.ClientSession
) -> None:
    stop = list(sms_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="STOP").items())
    deliveries = [
        Delivery(PATH, "", urlencode(stop).encode(), FORM, sign(PATH, stop), genuine=True),
        *gather(_delivery(PATH, _inbound_form()), 200),
        *oversized(PATH, stop),
    ]
    keys = ingest_app.keys
    published: dict[str, tuple[str, str]] = {}  # event id: provider id, text
    for delivery in deliveries:
        before = await snapshot(redis, keys)
        status, body = await post(http, ingest_app.url, delivery)
        after = await snapshot(redis, keys)
        changed = changed_keys(before, after)
        rejection = delivery.expected_rejection()
        if rejection is not None:
            assert status == rejection, (status, body, delivery)
        assert delivery.pairs is None or status != 200 or _is_message(MultiDict(delivery.pairs))
        if status != 200:
            assert_clear_rejection(status, body, delivery)
            assert rejection is not None or not _is_message(MultiDict(delivery.pairs or ()))
            assert not changed, (changed, delivery)
            continue
        form = MultiDict(delivery.pairs or ())
        sid = form.get("MessageSid") or form.get("SmsMessageSid") or ""
        message_id = event_id("sms", "twilio", sid)
        if message_id in published:  # a redelivery: answered, nothing stored or sent again
            assert not changed, (changed, delivery)
            continue
        published[message_id] = (sid, form.get("Body", ""))
        marker = keys.ingest_accepted(message_id).encode()
        assert after[marker] == b"done"
        consent = classify(form.get("Body", ""))
        optouts = changed - {marker}
        if consent is None or consent[0] == "help":
            assert not optouts, (optouts, delivery)
        else:
            assert len(optouts) <= 1
            assert all(key.startswith(f"{keys.prefix}sms:optout:".encode()) for key in optouts)

    events = await read_all(ingest_app.bootstrap, isolation.topics.inbound)
    assert sorted(e.id for e in events) == sorted(published)  # each exactly once
    for event in events:
        assert isinstance(event.data, MessageReceived)
        assert (event.data.provider_message_id, event.data.text) == published[event.id]
    markers = {k: v for k, v in (await snapshot(redis, keys)).items() if b":ingest:accepted:" in k}
    assert set(markers.values()) == {b"done"}  # nothing left pending
    assert len(markers) == len(published)


async def test_any_request_to_the_status_callback_is_recorded_and_published_or_a_clear_4xx(
    isolation: Isolation, ingest_app: Ingest, redis: Redis, http: aiohttp.ClientSession
) -> None:
    sent = [("MessageSid", SIDS[0]), ("MessageStatus", "sent")]
    deliveries = [
        Delivery(STATUS_PATH, "", urlencode(sent).encode(), FORM, sign(STATUS_PATH, sent), True),
        *gather(_delivery(STATUS_PATH, _status_form()), 200),
        *oversized(STATUS_PATH, sent),
    ]
    keys = ingest_app.keys
    recorded: set[str] = set()  # event ids of the callbacks answered 200
    for delivery in deliveries:
        before = await snapshot(redis, keys)
        status, body = await post(http, ingest_app.url, delivery)
        changed = changed_keys(before, await snapshot(redis, keys))
        rejection = delivery.expected_rejection()
        if rejection is not None:
            assert status == rejection, (status, body, delivery)
        if status != 200:
            assert_clear_rejection(status, body, delivery)
            assert not changed, (changed, delivery)
            continue
        form = MultiDict(delivery.pairs or ())
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        word = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
        recorded.add(event_id("sms", "twilio", "status", sid, word))
        assert changed <= {keys.sms_status(sid).encode()}, (changed, delivery)

    reports = await read_all(ingest_app.bootstrap, isolation.topics.outbound_status)
    assert all(isinstance(e.data, DeliveryReport) for e in reports)
    published = {e.id for e in reports}
    assert published <= recorded  # nothing from a refused callback
    stored = {k: v for k, v in (await snapshot(redis, keys)).items() if b":sms:status:" in k}
    assert stored  # the genuine first callback at least
    for key, fields in stored.items():
        assert isinstance(fields, dict)
        sid = key.decode().rsplit(":", 1)[1]
        latest = fields[b"provider_status"].decode()
        assert event_id("sms", "twilio", "status", sid, latest) in published, key


async def test_a_captured_webhook_resplit_between_its_pairs_is_refused(
    isolation: Isolation, ingest_app: Ingest, http: aiohttp.ClientSession
) -> None:
    """Issue 16: Twilio signs ``name + value`` pairs with no separator, so moving a boundary
    keeps the signature. ``MessageSid=<sid>NumMedia0`` without ``NumMedia`` was a new SID (a
    second event); ``AccountSid`` could swallow ``ApiVersion`` the same way."""
    form = sms_webhook_form(
        sender=CUSTOMER, recipient=OUR_NUMBER, body="where is my order?", account_sid=ACCOUNT_SID
    )
    captured = list(form.items())
    signature = sign(PATH, captured)
    sid = form["MessageSid"]
    moved_sid = [(k, sid + "NumMedia0" if k == "MessageSid" else v) for k, v in captured]
    moved_account = [
        (k, v + "ApiVersion" + form["ApiVersion"] if k == "AccountSid" else v) for k, v in captured
    ]
    replays = [
        [(k, v) for k, v in moved_sid if k != "NumMedia"],
        [(k, v) for k, v in moved_account if k != "ApiVersion"],
    ]
    assert all(sign(PATH, replay) == signature for replay in replays)  # the premise
    statuses = []
    for pairs in [captured, *replays]:
        delivery = Delivery(PATH, "", urlencode(pairs).encode(), FORM, signature, genuine=True)
        status, _ = await post(http, ingest_app.url, delivery)
        statuses.append(status)
    events = await read_all(ingest_app.bootstrap, isolation.topics.inbound)
    assert [e.id for e in events] == [event_id("sms", "twilio", sid)]
    assert statuses == [200, 400, 400]


def sign(path: str, pairs: list[tuple[str, str]]) -> str:
    return sign_twilio_pairs(PUBLIC_URL + path, pairs, AUTH_TOKEN)
