"""X mentions and direct messages, from X's wire format to normalised events on the real broker.

The X API is the sandbox (tooling/sandbox/x.py) served over HTTPS with a throwaway
self-signed certificate; the poller reaches it through tweepy's own AsyncClient, trusting
that certificate only because it is handed the CA file (the production default is the system
store, and refuses it). Webhook payloads are built and signed here with X's documented
algorithm.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from libs.common.events import (
    Attachment,
    CustomerIdentity,
    Event,
    MessageReceived,
    encode,
    event_id,
)
from libs.common.kafka.producer import EventProducer, create_producer
from libs.common.keys import Keys
from libs.common.settings import Settings, SettingsError, load_settings
from services.ingest.accept import Acceptor, Unavailable
from services.ingest.app import build
from services.ingest.x.api import XApi
from services.ingest.x.mentions import Checkpoint, MentionsPoller
from services.ingest.x.webhook import (
    InvalidPayload,
    XWebhook,
    parse_direct_messages,
)
from tests.support.harness import Isolation, Launch
from tests.support.kafka import collect, wait_until
from tooling.devstack import DevStack, free_port
from tooling.sandbox.x import XSandbox

BEARER = "x-test-bearer-token-do-not-log"
SECRET = "x-test-consumer-secret"
OUR_ID = "1600000000000000001"  # above 2**53, like real ids
CUSTOMER_ID = "1700000000000000007"
OTHER_ID = "1800000000000000009"
ServeApp = Callable[[web.Application], Awaitable[str]]


# --- fixtures: a throwaway certificate, the HTTPS sandbox, an acceptor on this test's topics


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1, made fresh for this module's run."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "switchboard test x api")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    paths = Tls(directory / "cert.pem", directory / "key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class XFake:
    sandbox: XSandbox
    url: str
    ca: Path


@pytest.fixture
async def x_api(tls: Tls) -> AsyncIterator[XFake]:
    sandbox = XSandbox(BEARER)
    sandbox.user(CUSTOMER_ID, "parcel_pat", "Pat Parcel")
    sandbox.user(OUR_ID, "shop_help", "Shop Help")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    runner = web.AppRunner(sandbox.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    yield XFake(sandbox, f"https://127.0.0.1:{port}", tls.cert)
    await runner.cleanup()


@pytest.fixture
async def acceptor(stack: DevStack, isolation: Isolation, redis: Redis) -> AsyncIterator[Acceptor]:
    kafka = create_producer(
        Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers), client_id="test-x"
    )
    await kafka.start()
    yield Acceptor(
        producer=EventProducer(kafka),
        redis=redis,
        keys=Keys(isolation.key_prefix),
        topic=isolation.topics.inbound,
        timeout=5.0,
    )
    await kafka.stop()


@dataclass
class SteppedWait:
    """The poller's wait, driven by the test: records each delay, returns when stepped."""

    delays: list[float] = field(default_factory=list)
    _steps: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self._steps.get()

    def step(self) -> None:
        self._steps.put_nowait(None)


def make_poller(
    fake: XFake,
    acceptor: Acceptor,
    redis: Redis,
    isolation: Isolation,
    *,
    page_size: int = 100,
    clock: Callable[[], float] | None = None,
    wait: SteppedWait | None = None,
) -> tuple[MentionsPoller, XApi]:
    api = XApi(bearer_token=BEARER, base_url=fake.url, ca_bundle=fake.ca, page_size=page_size)
    extra: dict[str, Any] = {}
    if clock is not None:
        extra["clock"] = clock
    poller = MentionsPoller(
        api=api,
        acceptor=acceptor,
        checkpoint=Checkpoint(redis, Keys(isolation.key_prefix), OUR_ID),
        user_id=OUR_ID,
        interval=60.0,
        wait=wait,
        **extra,
    )
    return poller, api


def inbound_ids(events: list[Event]) -> list[str]:
    return [e.data.provider_message_id for e in events if isinstance(e.data, MessageReceived)]


# --- mentions ---------------------------------------------------------------------------------


async def test_mentions_reach_kafka_normalised_with_every_field(
    stack: DevStack,
    isolation: Isolation,
    redis: Redis,
    x_api: XFake,
    acceptor: Acceptor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="tweepy")  # tweepy logs request headers at DEBUG
    sandbox = x_api.sandbox
    posted = datetime.now(UTC).replace(microsecond=123000) - dt.timedelta(minutes=5)
    root = sandbox.mention(
        mentioned=OUR_ID,
        author_id=CUSTOMER_ID,
        text="@shop_help my parcel never arrived 😞",
        created_at=posted,
    )
    ours = sandbox.mention(mentioned=OUR_ID, author_id=OUR_ID, text="@shop_help note to self")
    fillers = [
        sandbox.mention(mentioned=OUR_ID, author_id=CUSTOMER_ID, text=f"@shop_help hello {n}")
        for n in range(4)
    ]
    reply = sandbox.mention(
        mentioned=OUR_ID,
        author_id=CUSTOMER_ID,
        text="@shop_help still nothing, order 5521",
        conversation_id=root["id"],
        in_reply_to_user_id=OUR_ID,
        lang="und",
    )
    sandbox.mention(mentioned=OTHER_ID, author_id=CUSTOMER_ID, text="@someone_else hi")
    poller, api = make_poller(x_api, acceptor, redis, isolation, page_size=5)
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        try:
            assert await poller.poll_once() == 6
        finally:
            await api.close()
        await wait_until(lambda: len(seen.events) >= 6, message="six mentions on Kafka")

    expected = [root["id"], *(t["id"] for t in fillers), reply["id"]]
    assert sorted(inbound_ids(seen.events)) == sorted(expected)  # our own tweet dropped
    assert ours["id"] not in inbound_ids(seen.events)
    by_id = {
        e.data.provider_message_id: (e, r)
        for e, r in zip(seen.events, seen.records, strict=True)
        if isinstance(e.data, MessageReceived)
    }
    first, record = by_id[root["id"]]
    assert first.id == event_id("social", "x", "tweet", root["id"])
    assert first.subject == f"x:{root['id']}"
    assert record.key == f"x:{root['id']}".encode()
    assert by_id[reply["id"]][1].partition == record.partition
    assert by_id[reply["id"]][1].offset > record.offset  # oldest first within the thread
    assert first.data == MessageReceived(
        channel="social",
        provider="x",
        provider_message_id=root["id"],
        thread_key=f"x:{root['id']}",
        customer=CustomerIdentity(
            display_name="Pat Parcel", social_handle="parcel_pat", social_id=CUSTOMER_ID
        ),
        recipient=OUR_ID,
        text="@shop_help my parcel never arrived 😞",
        language="en",
        received_at=posted,
        raw_ref=f"x:tweet:{root['id']}",
    )
    last = by_id[reply["id"]][0].data
    assert isinstance(last, MessageReceived)
    assert last.thread_key == f"x:{root['id']}"  # a reply joins its conversation
    assert last.language == "en"  # X said "und": detected from the text

    # Two pages (page size 5), the checkpoint at the newest id X returned.
    requests = sandbox.requests
    assert len(requests) == 2
    assert "start_time" in requests[0]
    assert "since_id" not in requests[0]
    assert "pagination_token" in requests[1]
    assert requests[0]["expansions"] == "author_id"
    assert set(requests[0]["tweet.fields"].split(",")) >= {
        "created_at",
        "conversation_id",
        "in_reply_to_user_id",
    }
    assert set(requests[0]["user.fields"].split(",")) == {"username", "name"}
    assert await redis.get(Keys(isolation.key_prefix).x_since_id(OUR_ID)) == reply["id"].encode()
    assert BEARER not in caplog.text


async def test_rate_limit_waits_for_the_reset_then_delivers(
    stack: DevStack, isolation: Isolation, redis: Redis, x_api: XFake, acceptor: Acceptor
) -> None:
    now = float(int(time.time()))  # a fixed clock (the first poll looks back from it)
    x_api.sandbox.rate_limit(reset=int(now) + 90)
    tweet = x_api.sandbox.mention(mentioned=OUR_ID, author_id=CUSTOMER_ID, text="@shop_help hi")
    wait = SteppedWait()
    poller, api = make_poller(x_api, acceptor, redis, isolation, clock=lambda: now, wait=wait)
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        task = asyncio.create_task(poller.run())
        try:
            await wait_until(lambda: len(wait.delays) == 1, message="the back-off")
            assert wait.delays == [91.0]  # until x-rate-limit-reset, plus a second
            assert not seen.events
            wait.step()
            await wait_until(lambda: bool(seen.events), message="the mention after the reset")
            await wait_until(lambda: len(wait.delays) == 2, message="the next regular wait")
            assert wait.delays[1] == 60.0
        finally:
            poller.stop()
            wait.step()
            await task
            await api.close()
    assert inbound_ids(seen.events) == [tweet["id"]]
    assert len(x_api.sandbox.requests) == 2


async def test_duplicates_and_a_lost_checkpoint_give_one_event_each(
    stack: DevStack, isolation: Isolation, redis: Redis, x_api: XFake, acceptor: Acceptor
) -> None:
    sandbox = x_api.sandbox
    tweets = [
        sandbox.mention(mentioned=OUR_ID, author_id=CUSTOMER_ID, text=f"@shop_help {n}")
        for n in range(6)
    ]
    # X can hand out a tweet on two pages when new ones arrive while a client pages.
    sandbox.tweets.insert(3, dict(sandbox.tweets[2]))
    keys = Keys(isolation.key_prefix)
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        poller, api = make_poller(x_api, acceptor, redis, isolation, page_size=5)
        try:
            assert await poller.poll_once() == 6
            await redis.delete(keys.x_since_id(OUR_ID))  # checkpoint lost: everything again
            assert await poller.poll_once() == 0
            assert await poller.poll_once() == 0  # and now from the restored checkpoint
        finally:
            await api.close()
        await wait_until(lambda: len(seen.events) >= 6, message="six mentions")
    assert sorted(inbound_ids(seen.events)) == sorted(t["id"] for t in tweets)
    assert len(seen.events) == 6
    assert sandbox.requests[-1]["since_id"] == tweets[-1]["id"]


async def test_the_production_default_refuses_an_untrusted_certificate(x_api: XFake) -> None:
    api = XApi(bearer_token=BEARER, base_url=x_api.url)  # system trust store only
    try:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await api.mentions(OUR_ID)
    finally:
        await api.close()
    assert x_api.sandbox.requests == []


@pytest.mark.e2e
async def test_checkpoint_survives_a_restart_of_ingest(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    x_api: XFake,
) -> None:
    env = {
        **service_env,
        "X_BEARER_TOKEN": BEARER,
        "X_USER_ID": OUR_ID,
        "X_API_BASE_URL": x_api.url,
        "X_CA_BUNDLE": str(x_api.ca),
        "X_POLL_INTERVAL": "0.2",
    }
    sandbox = x_api.sandbox
    before = [
        sandbox.mention(mentioned=OUR_ID, author_id=CUSTOMER_ID, text=f"@shop_help a{n}")
        for n in range(3)
    ]
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        [first] = await launch(["ingest"], env)
        await wait_until(lambda: len(seen.events) >= 3, message="the first mentions")
        assert first.stop() == 0
        polled_before = len(sandbox.requests)
        after = [
            sandbox.mention(mentioned=OUR_ID, author_id=CUSTOMER_ID, text=f"@shop_help b{n}")
            for n in range(2)
        ]
        await launch(["ingest"], env)
        await wait_until(lambda: len(seen.events) >= 5, message="the later mentions")
        await wait_until(
            lambda: len(sandbox.requests) > polled_before + 2, message="more polls after them"
        )
    published = inbound_ids(seen.events)
    assert sorted(published) == sorted(t["id"] for t in before + after)  # no skip
    assert len(published) == len(set(published))  # no re-ingest
    restarted = sandbox.requests[polled_before:]
    assert restarted[0]["since_id"] == before[-1]["id"]
    assert all("since_id" in request for request in restarted)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"X_BEARER_TOKEN": "t"}, "X_USER_ID"),
        ({"X_CONSUMER_SECRET": "s"}, "X_USER_ID"),
        ({"X_USER_ID": "@shop_help"}, "X_USER_ID"),
        ({"X_API_BASE_URL": "api.twitter.com"}, "X_API_BASE_URL"),
        ({"X_CA_BUNDLE": "/nonexistent/ca.pem"}, "X_CA_BUNDLE"),
    ],
)
def test_x_settings_fail_fast_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


# --- direct messages (Account Activity webhook) ----------------------------------------------


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "x-twitter-webhooks-signature": "sha256=" + base64.b64encode(digest).decode(),
        "Content-Type": "application/json; charset=utf-8",
    }


def dm_payload(*events: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "for_user_id": OUR_ID,
            "direct_message_events": list(events),
            "users": {
                CUSTOMER_ID: {"id": CUSTOMER_ID, "name": "Pat Parcel", "screen_name": "parcel_pat"},
                OUR_ID: {"id": OUR_ID, "name": "Shop Help", "screen_name": "shop_help"},
            },
        }
    ).encode()


def dm(dm_id: str, sender: str, recipient: str, text: str, **data: Any) -> dict[str, Any]:
    return {
        "type": "message_create",
        "id": dm_id,
        "created_timestamp": "1795599015123",
        "message_create": {
            "target": {"recipient_id": recipient},
            "sender_id": sender,
            "source_app_id": "268278",
            "message_data": {"text": text, "entities": {"urls": []}, **data},
        },
    }


@pytest.fixture
async def ingest_url(stack: DevStack, isolation: Isolation, serve_app: ServeApp) -> str:
    """The ingest app in this process, with the X webhook (and no poller) enabled."""
    settings = Settings(
        kafka_bootstrap_servers=stack.broker.bootstrap_servers,
        redis_url=stack.redis.url,
        switchboard_topic_prefix=isolation.topic_prefix,
        switchboard_key_prefix=isolation.key_prefix,
        x_consumer_secret=SECRET,
        x_user_id=OUR_ID,
        x_bearer_token="",
    )
    return await serve_app(build(settings)) + "/v1/social/x/webhook"


async def test_crc_challenge_is_answered(ingest_url: str, http: aiohttp.ClientSession) -> None:
    token = "9b4507b3-9040-4669-9ca3-6b94edb50553"
    async with http.get(ingest_url, params={"crc_token": token}) as response:
        assert response.status == 200
        body = await response.json()
    expected = hmac.new(SECRET.encode(), token.encode(), hashlib.sha256).digest()
    assert body == {"response_token": "sha256=" + base64.b64encode(expected).decode()}
    async with http.get(ingest_url) as response:
        assert response.status == 400
    async with http.get(ingest_url, params={"crc_token": "x" * 600}) as response:
        assert response.status == 400


async def test_direct_messages_signed_good_bad_and_tampered(
    stack: DevStack, isolation: Isolation, ingest_url: str, http: aiohttp.ClientSession
) -> None:
    photo = {
        "attachment": {
            "type": "media",
            "media": {"type": "photo", "media_url_https": "https://pbs.twimg.com/dm/1.jpg"},
        }
    }
    genuine = dm_payload(
        dm("1900000000000000101", CUSTOMER_ID, OUR_ID, "my order 5521 is late", **photo),
        dm("1900000000000000102", OUR_ID, CUSTOMER_ID, "sorry, looking now"),  # our echo
        {"type": "typing_indicator", "id": "1"},  # not a message
    )
    forged = dm_payload(dm("1900000000000000201", CUSTOMER_ID, OUR_ID, "refund me"))
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        async with http.post(ingest_url, data=forged, headers=sign(forged, "wrong")) as r:
            assert r.status == 403
        async with http.post(ingest_url, data=forged) as r:  # no signature at all
            assert r.status == 403
        tampered = genuine.replace(b"is late", b"is LATE")
        async with http.post(ingest_url, data=tampered, headers=sign(genuine)) as r:
            assert r.status == 403
        async with http.post(ingest_url, data=b"{not json", headers=sign(b"{not json")) as r:
            assert r.status == 400
        big = b" " * (300 * 1024)
        async with http.post(ingest_url, data=big, headers=sign(big)) as r:
            assert r.status == 413
        async with http.post(ingest_url, data=genuine, headers=sign(genuine)) as r:
            assert r.status == 200
        async with http.post(ingest_url, data=genuine, headers=sign(genuine)) as r:
            assert r.status == 200  # X retrying: answered, not published again
        await wait_until(lambda: bool(seen.events), message="the direct message")
    [event] = seen.events
    assert event.id == event_id("social", "x", "dm", "1900000000000000101")
    assert event.data == MessageReceived(
        channel="social",
        provider="x",
        provider_message_id="1900000000000000101",
        thread_key=f"x-dm:{OUR_ID}:{CUSTOMER_ID}",
        customer=CustomerIdentity(
            display_name="Pat Parcel", social_handle="parcel_pat", social_id=CUSTOMER_ID
        ),
        recipient=OUR_ID,
        text="my order 5521 is late",
        language="en",
        attachments=(
            Attachment(name=None, content_type="image/jpeg", url="https://pbs.twimg.com/dm/1.jpg"),
        ),
        received_at=datetime(2026, 11, 25, 9, 30, 15, 123000, tzinfo=UTC),
        raw_ref="x:dm:1900000000000000101",
    )


class _KafkaDown(Acceptor):
    def __init__(self) -> None:
        pass

    async def accept(
        self,
        message: MessageReceived,
        *,
        event_id: str,
        source: str,
        language_hint: str | None = None,
    ) -> Any:
        raise Unavailable("kafka: KafkaTimeoutError")


async def test_direct_message_is_refused_503_while_kafka_is_down(
    serve_app: ServeApp, http: aiohttp.ClientSession
) -> None:
    webhook = XWebhook(acceptor=_KafkaDown(), consumer_secret=SECRET, user_id=OUR_ID)
    app = web.Application()
    app.router.add_post("/hook", webhook.events)
    url = await serve_app(app) + "/hook"
    body = dm_payload(dm("1900000000000000301", CUSTOMER_ID, OUR_ID, "hello?"))
    async with http.post(url, data=body, headers=sign(body)) as response:
        assert response.status == 503
        assert response.headers["Retry-After"]


HOSTILE_BODIES = [
    b"",
    b"\xff\xfe\x00",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"direct_message_events": [{"type": "message_create", "id": "1", "created_timestamp": '
    b'"999999999999999", "message_create": {"target": {"recipient_id": "1"}, "sender_id": "2"}}]}',
    b'{"direct_message_events": [{"type": "message_create", "id": "1"}]}',
    b'{"direct_message_events": [{"type": "message_create", "id": 1e400}]}',
    b'{"direct_message_events": {"a": 1}}',
    b'{"users": [1, 2]}',
    b'"\\ud800"',
    b"null",
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
async def test_hostile_signed_bodies_get_400_never_500(
    ingest_url: str, http: aiohttp.ClientSession, body: bytes
) -> None:
    async with http.post(ingest_url, data=body, headers=sign(body)) as response:
        assert response.status == 400


# --- fuzzing the webhook body parser -----------------------------------------------------------

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.from_regex(r"[0-9]{1,22}", fullmatch=True),
)
_json = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_ids = st.from_regex(r"[0-9]{1,21}", fullmatch=True) | _json
_message_create = st.fixed_dictionaries(
    {},
    optional={
        "target": st.fixed_dictionaries({}, optional={"recipient_id": _ids}) | _json,
        "sender_id": st.just(OUR_ID) | _ids,
        "message_data": st.fixed_dictionaries(
            {},
            optional={
                "text": st.text(max_size=40) | _json,
                "attachment": st.fixed_dictionaries(
                    {},
                    optional={
                        "type": st.text(max_size=8),
                        "media": st.fixed_dictionaries(
                            {},
                            optional={
                                "type": st.sampled_from(["photo", "video", "x"]) | _json,
                                "media_url_https": st.text(max_size=30) | _json,
                            },
                        ),
                    },
                )
                | _json,
            },
        )
        | _json,
    },
)
_valid_id = st.from_regex(r"[1-9][0-9]{0,18}", fullmatch=True)
# Well-formed events (so the fuzzing reaches normalisation), beside mangled ones.
_valid_dm_event = st.fixed_dictionaries(
    {
        "type": st.just("message_create"),
        "id": _valid_id,
        "created_timestamp": st.from_regex(r"1[0-9]{12}", fullmatch=True),
        "message_create": st.fixed_dictionaries(
            {
                "target": st.fixed_dictionaries({"recipient_id": _valid_id}),
                "sender_id": st.just(OUR_ID) | _valid_id,
                "message_data": st.fixed_dictionaries(
                    {"text": st.text(max_size=40)},
                    optional={
                        "attachment": st.fixed_dictionaries(
                            {
                                "type": st.just("media"),
                                "media": st.fixed_dictionaries(
                                    {
                                        "type": st.sampled_from(["photo", "video", "?"]),
                                        "media_url_https": st.just("https://") | st.text(),
                                    }
                                ),
                            }
                        )
                    },
                ),
            }
        ),
    },
    optional={"extra": _json},
)
_dm_event = _valid_dm_event | st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["message_create", "other"]) | _json,
        "id": _ids,
        "created_timestamp": st.from_regex(r"[0-9]{1,18}", fullmatch=True) | _json,
        "message_create": _message_create | _json,
    },
)
_user = st.fixed_dictionaries(
    {}, optional={"id": _valid_id, "name": st.text(max_size=10), "screen_name": st.text(max_size=8)}
)
_valid_payload = st.fixed_dictionaries(
    {
        "for_user_id": _valid_id,
        "direct_message_events": st.lists(_valid_dm_event, min_size=1, max_size=3),
        "users": st.dictionaries(_valid_id, _user, max_size=3),
    }
)
_payload = _valid_payload | st.fixed_dictionaries(
    {},
    optional={
        "for_user_id": _valid_id | _ids,
        "direct_message_events": st.lists(_dm_event, min_size=1, max_size=3)
        | st.lists(_dm_event | _json, max_size=3)
        | _json,
        "users": st.dictionaries(_valid_id | st.text(max_size=4), _user | _json, max_size=3)
        | _json,
    },
)


def _parses_or_refuses(body: bytes) -> None:
    """Any body gives messages that can be published, or InvalidPayload (the 400)."""
    try:
        messages = parse_direct_messages(body, OUR_ID)
    except InvalidPayload:
        return
    for message_id, message in messages:
        assert message.customer.social_id != OUR_ID
        encode(
            Event(
                id=message_id,
                source="/fuzz",
                subject=message.thread_key,
                time=message.received_at,
                data=message,
            )
        )


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=512))
def test_fuzz_any_bytes_give_messages_or_invalid_payload(body: bytes) -> None:
    _parses_or_refuses(body)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(payload=_payload)
def test_fuzz_payload_shaped_json_gives_messages_or_invalid_payload(payload: Any) -> None:
    _parses_or_refuses(json.dumps(payload).encode())
