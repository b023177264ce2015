"""IMAP polling against a real Dovecot: events on the real broker, flags only after Kafka,
a checkpoint that survives restarts, and a broker outage that loses and repeats nothing.

Dovecot comes from Debian's ``dovecot-imapd`` (``scripts/system-deps.sh`` installs it as
root); each module run starts a throwaway server with its own config, and each test gets its
own user and INBOX. The ingest app runs in this process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis

from libs.common.events import CustomerIdentity, MessageReceived, event_id
from libs.common.keys import Keys
from libs.common.settings import Settings, SettingsError, load_settings
from libs.common.topics import Topics
from services.ingest.app import build
from services.ingest.mailboxes import IMAP_POLLER
from services.ingest.mailboxes.imap import Mailbox
from tests.support import dovecot as dovecot_support
from tests.support.dovecot import PASSWORD, Dovecot
from tests.support.harness import FIXTURES, Isolation
from tests.support.kafka import Collected, collect, wait_until
from tests.support.mail import REDIS_POOL_WARNING, in_process
from tooling.devstack import DevStack, create_topics, free_port

pytestmark = pytest.mark.filterwarnings(REDIS_POOL_WARNING)

ROOT = Path(__file__).parents[3]
CORPUS = FIXTURES / "email"
HANDLED = {"\\Seen", "$Switchboard"}


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    if not dovecot_support.available():
        if os.geteuid() != 0:
            pytest.skip("neither Dovecot nor root is available (dovecot-imapd not installed)")
        subprocess.run(["sh", str(ROOT / "scripts" / "system-deps.sh")], check=True)
    server = Dovecot.create()
    server.start()
    yield server
    server.stop()


def corpus(name: str) -> tuple[bytes, dict[str, Any]]:
    raw = (CORPUS / f"{name}.eml").read_bytes()
    return raw, json.loads((CORPUS / f"{name}.expected.json").read_text(encoding="utf-8"))


def imap_settings(
    stack: DevStack, topic_prefix: str, key_prefix: str, server: Dovecot, user: str
) -> Settings:
    return Settings(
        kafka_bootstrap_servers=stack.broker.bootstrap_servers,
        redis_url=stack.redis.url,
        switchboard_topic_prefix=topic_prefix,
        switchboard_key_prefix=key_prefix,
        switchboard_http_host="127.0.0.1",
        switchboard_smtp_port=free_port(),
        switchboard_publish_timeout=1.0,
        imap_host="127.0.0.1",
        imap_port=server.port,
        imap_user=user,
        imap_password=PASSWORD,
        imap_ssl=False,
        imap_poll_interval=0.2,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[web.Application]:
    """Ingest started (its cleanup contexts: SMTP, the IMAP poller) until the block ends."""
    runner = web.AppRunner(in_process(build(settings)))
    await runner.setup()
    try:
        yield runner.app
    finally:
        await runner.cleanup()


async def checkpoint(redis: Redis, settings: Settings) -> dict[Any, Any]:
    mailbox = Mailbox(
        host=settings.imap_host,
        port=settings.imap_port,
        user=settings.imap_user,
        password="",
        name=settings.imap_mailbox,
        use_ssl=settings.imap_ssl,
    )
    key = Keys(settings.switchboard_key_prefix).imap_checkpoint(mailbox.label)
    return dict(await redis.hgetall(key))


def ids_of(seen: Collected) -> list[str]:
    return [e.id for e in seen.of_type(MessageReceived)]


def expected_id(expected: dict[str, Any]) -> str:
    return event_id("email", expected["from_address"].lower(), expected["message_id"])


async def test_mailbox_messages_become_events_and_are_flagged_after_kafka(
    stack: DevStack, isolation: Isolation, redis: Redis, dovecot: Dovecot
) -> None:
    user = dovecot.add_user()
    raw_a, a = corpus("encoded_words_and_photos")
    raw_b, b = corpus("auto_reply_out_of_office")
    uid_a, uid_b = dovecot.append(user, raw_a), dovecot.append(user, raw_b)
    assert dovecot.flags(user) == {uid_a: set(), uid_b: set()}
    settings = imap_settings(stack, isolation.topic_prefix, isolation.key_prefix, dovecot, user)
    async with (
        collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen,
        running(settings),
    ):
        await wait_until(lambda: len(ids_of(seen)) == 2, message="both events")
        await wait_until(
            lambda: all(f >= HANDLED for f in dovecot.flags(user).values()), message="flags"
        )
    # Two threads, so two partitions: the order in which they are read back is not defined.
    by_id = {e.id: e for e in seen.of_type(MessageReceived)}
    assert set(by_id) == {expected_id(a), expected_id(b)}
    first, second = by_id[expected_id(a)], by_id[expected_id(b)]
    message = first.data
    assert isinstance(message, MessageReceived)
    assert message == MessageReceived(
        channel="email",
        provider="imap",
        provider_message_id=a["message_id"],
        thread_key=f"email:{a['thread_root']}",
        customer=CustomerIdentity(display_name=a["from_name"], email=a["from_address"]),
        recipient=a["to"][0],
        subject=a["subject"],
        text=a["text"],
        language="fr",
        attachments=message.attachments,
        automated=None,
        received_at=message.received_at,
        raw_ref=f"imap://{user}@127.0.0.1:{dovecot.port}/INBOX;"
        f"UIDVALIDITY={(await checkpoint(redis, settings))[b'uidvalidity'].decode()}/;UID={uid_a}",
    )
    assert [(x.name, x.size) for x in message.attachments] == [
        (x["filename"], x["size"]) for x in a["attachments"]
    ]
    assert isinstance(second.data, MessageReceived)
    assert second.data.automated == "auto-reply"
    assert (await checkpoint(redis, settings))[b"uid"] == str(uid_b).encode()


async def test_the_checkpoint_survives_a_restart_without_repeating_or_skipping(
    stack: DevStack, isolation: Isolation, redis: Redis, dovecot: Dovecot
) -> None:
    user = dovecot.add_user()
    raw_a, a = corpus("gmail_top_posted_reply")
    raw_b, b = corpus("outlook_reply_in_reply_to_only")
    uid_a = dovecot.append(user, raw_a)
    settings = imap_settings(stack, isolation.topic_prefix, isolation.key_prefix, dovecot, user)
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        async with running(settings):
            await wait_until(lambda: dovecot.flags(user)[uid_a] >= HANDLED, message="flagged")
        await wait_until(lambda: bool(ids_of(seen)), message="the first event")
        assert ids_of(seen) == [expected_id(a)]
        # While ingest is down: a new message arrives, and someone marks the first unread
        # (only the checkpoint now says it was taken).
        uid_b = dovecot.append(user, raw_b)
        dovecot.remove_flags(user, uid_a, "\\Seen $Switchboard")
        async with running(settings):
            await wait_until(lambda: dovecot.flags(user)[uid_b] >= HANDLED, message="new one")
        await wait_until(lambda: len(ids_of(seen)) == 2, message="the second event")
        assert dovecot.flags(user)[uid_a] == set()  # not fetched again
        assert sorted(ids_of(seen)) == sorted([expected_id(a), expected_id(b)])
        assert len(seen.records) == 2
    assert (await checkpoint(redis, settings))[b"uid"] == str(uid_b).encode()


async def test_with_the_broker_down_messages_stay_unflagged_then_arrive_once(
    dovecot: Dovecot,
) -> None:
    own = DevStack()  # this test stops its broker, so it does not share the session's
    await own.start()
    client = Redis.from_url(own.redis.url)
    try:
        user = dovecot.add_user()
        settings = imap_settings(own, "switchboard.", "sb:", dovecot, user)
        raw, expected = corpus("german_outlook_reply")
        async with running(settings) as app:
            own.broker.stop()
            uid = dovecot.append(user, raw)
            poller = app[IMAP_POLLER]
            await wait_until(lambda: poller.failures >= 2, message="two failed polls")
            assert dovecot.flags(user)[uid] == set()
            assert await checkpoint(client, settings) == {}

            await own.broker.start()  # in-memory: comes back empty, on the same port
            topics = Topics.with_prefix("switchboard.")
            await create_topics(own.broker.bootstrap_servers, topics.all())
            async with collect(own.broker.bootstrap_servers, topics.inbound) as seen:
                await wait_until(
                    lambda: dovecot.flags(user)[uid] >= HANDLED, timeout=30, message="flagged"
                )
                await wait_until(lambda: bool(ids_of(seen)), message="the event")
                assert set(ids_of(seen)) == {expected_id(expected)}
        assert (await checkpoint(client, settings))[b"uid"] == str(uid).encode()
    finally:
        await client.aclose()
        own.stop()


def test_imap_settings_need_a_login_and_keep_the_password_out_of_reprs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMAP_HOST", "imap.example.org")
    with pytest.raises(SettingsError, match="IMAP_USER and IMAP_PASSWORD"):
        load_settings()
    monkeypatch.setenv("IMAP_USER", "support@example.org")
    monkeypatch.setenv("IMAP_PASSWORD", "hunter2-secret")
    settings = load_settings()
    mailbox = Mailbox(
        host=settings.imap_host,
        port=settings.imap_port,
        user=settings.imap_user,
        password=settings.imap_password,
    )
    assert (settings.imap_port, settings.imap_ssl, settings.imap_mailbox) == (993, True, "INBOX")
    assert "hunter2" not in repr(settings) + repr(mailbox) + mailbox.label
