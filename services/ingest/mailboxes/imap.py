"""IMAP polling of a hosted mailbox: publish each new message once, flag it only after Kafka.

Every poll re-SELECTs the mailbox (that refreshes UIDVALIDITY and new arrivals), searches for
``UID {checkpoint+1}:* UNKEYWORD $Switchboard``, and takes the messages oldest first: fetch
with ``BODY.PEEK[]`` (nothing is marked seen by reading), publish through the
:class:`~services.ingest.accept.Acceptor`, then ``STORE +FLAGS (\\Seen $Switchboard)``, then
move the checkpoint (``imap:checkpoint:...``: UIDVALIDITY and UID) to that message. The first
failure stops the poll with the checkpoint on the last finished message, so a broker outage
leaves the rest unflagged and unskipped, and a crash between Kafka and the flag is repaired by
the next poll (the acceptor recognises the message, the flag and checkpoint follow).

A changed UIDVALIDITY (the mailbox was recreated) resets the checkpoint: the keyword keeps
flagged messages from being fetched again and the acceptor drops any other repeat. A message
the parser refuses gets ``$SwitchboardInvalid`` (and no event) so it cannot block the mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import aioimaplib
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.common.backoff import Backoff, Jitter
from libs.common.keys import Keys
from libs.common.logs import get_logger
from libs.common.redis_client import load_script
from services.ingest.accept import Acceptance, Acceptor, Unavailable
from services.ingest.mail import InvalidEmail
from services.ingest.mailboxes.normalise import (
    ThreadIndex,
    normalise,
    parse,
    provider_message_id,
    sender_address,
)

log = get_logger(__name__)

KEYWORD: Final = "$Switchboard"
INVALID_KEYWORD: Final = "$SwitchboardInvalid"
MAX_BACKOFF: Final = 300.0
MAX_PER_POLL: Final = 500  # the rest waits for the next poll, which comes at once
COMMAND_TIMEOUT: Final = 30.0
MAX_MESSAGE_BYTES: Final = 32 * 1024 * 1024
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d{1,10})\]")
_FETCH_UID = re.compile(rb"\bUID (\d{1,10})\b")


class ImapError(Exception):
    """The server refused a command or answered with something we cannot use."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    name: str = "INBOX"
    use_ssl: bool = True

    @property
    def label(self) -> str:
        """Who and where, without the password (checkpoint key and logs)."""
        return f"{self.user}@{self.host}:{self.port}/{self.name}"


class UidCheckpoint:
    """The highest UID on Kafka and flagged, for one UIDVALIDITY of one mailbox."""

    def __init__(self, redis: Redis, keys: Keys, mailbox: Mailbox) -> None:
        self._redis = redis
        self.key = keys.imap_checkpoint(mailbox.label)
        self._advance = redis.register_script(
            load_script("services.ingest.mailboxes", "advance_imap_checkpoint.lua")
        )

    async def get(self, uidvalidity: int) -> int:
        """The checkpoint, or 0 when none is stored or it belongs to another UIDVALIDITY."""
        stored: Any = await self._redis.hmget(self.key, ["uidvalidity", "uid"])
        validity, uid = stored
        if validity is None or int(validity) != uidvalidity:
            return 0
        return int(uid or 0)

    async def advance(self, uidvalidity: int, uid: int) -> None:
        await self._advance(keys=[self.key], args=[uidvalidity, uid])


def _quote(name: str) -> str:
    """A mailbox name as an IMAP quoted string."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(response: aioimaplib.Response, what: str) -> list[Any]:
    if response.result != "OK":
        detail = b" ".join(bytes(x) for x in response.lines[-1:])[:200]
        raise ImapError(f"{what}: {response.result} {detail!r}")
    return list(response.lines)


Wait = Callable[[float], Awaitable[None]]


class ImapPoller:
    """Polls one mailbox every ``interval`` seconds until :meth:`stop`; connection errors
    and outages are logged, counted and retried with exponential back-off."""

    def __init__(
        self,
        *,
        mailbox: Mailbox,
        acceptor: Acceptor,
        threads: ThreadIndex,
        checkpoint: UidCheckpoint,
        interval: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._mailbox = mailbox
        self._acceptor = acceptor
        self._threads = threads
        self._checkpoint = checkpoint
        self._interval = interval
        self._backoff = Backoff(interval, max(interval, MAX_BACKOFF), Jitter.NONE)
        self._ssl_context = ssl_context
        self._client: aioimaplib.IMAP4 | None = None
        self._stopping = asyncio.Event()
        self._failures = 0

    @property
    def failures(self) -> int:
        """Polls in a row that failed (0 after a good one): what a probe or a test watches."""
        return self._failures

    def stop(self) -> None:
        self._stopping.set()

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    more = await self.poll_once()
                except (Unavailable, RedisError) as exc:
                    self._failures += 1
                    delay = self._backoff.delay(self._failures)
                    log.warning("imap poll deferred", error=repr(exc), retry_in=delay)
                except (aioimaplib.AioImapException, ImapError, OSError, TimeoutError) as exc:
                    self._failures += 1
                    delay = self._backoff.delay(self._failures)
                    log.warning("imap poll failed", error=repr(exc), retry_in=delay)
                    await self._disconnect()
                else:
                    self._failures = 0
                    delay = 0.0 if more else self._interval
                if not self._stopping.is_set():
                    await self._wait(delay)
        finally:
            await self._disconnect()

    async def _connect(self) -> aioimaplib.IMAP4:
        if self._client is not None:
            return self._client
        box = self._mailbox
        client: aioimaplib.IMAP4
        if box.use_ssl:
            client = aioimaplib.IMAP4_SSL(
                host=box.host, port=box.port, timeout=COMMAND_TIMEOUT, ssl_context=self._ssl_context
            )
        else:
            client = aioimaplib.IMAP4(host=box.host, port=box.port, timeout=COMMAND_TIMEOUT)
        self._client = client
        await client.wait_hello_from_server()
        _check(await client.login(box.user, box.password), "LOGIN")
        log.info("imap logged in", mailbox=box.label)
        return client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.logout(), 5.0)

    async def poll_once(self) -> bool:
        """Publish and flag the new messages; True when more are waiting than one poll takes."""
        client = await self._connect()
        lines = _check(await client.select(_quote(self._mailbox.name)), "SELECT")
        validity = next(
            (int(m.group(1)) for line in lines if (m := _UIDVALIDITY.search(bytes(line)))), None
        )
        if validity is None:
            raise ImapError("SELECT answered without UIDVALIDITY")
        after = await self._checkpoint.get(validity)
        found = _check(
            await client.uid_search(f"UID {after + 1}:* UNKEYWORD {KEYWORD}"), "UID SEARCH"
        )
        uids = sorted({int(t) for line in found[:-1] for t in bytes(line).split() if t.isdigit()})
        uids = [uid for uid in uids if uid > after]  # "n:*" always names the newest message
        for uid in uids[:MAX_PER_POLL]:
            await self._take(client, validity, uid)
        return len(uids) > MAX_PER_POLL

    async def _take(self, client: aioimaplib.IMAP4, validity: int, uid: int) -> None:
        raw = await self._fetch(client, uid)
        try:
            parsed = await parse(raw, MAX_MESSAGE_BYTES)
        except InvalidEmail as exc:
            log.warning("imap message refused", uid=uid, reason=str(exc)[:200])
            await self._flag(client, uid, INVALID_KEYWORD)
            await self._checkpoint.advance(validity, uid)
            return
        own_id = provider_message_id(parsed, raw)
        sender = sender_address(parsed, None)
        thread = await self._threads.thread(parsed, own_id, sender)
        box = self._mailbox
        message_id, message = normalise(
            parsed,
            own_id=own_id,
            thread=thread,
            provider="imap",
            recipient=parsed.to[0] if parsed.to else box.user,
            sender=sender,
            received_at=self._acceptor.now(),
            raw_ref=f"imap://{box.user}@{box.host}:{box.port}/{box.name};"
            f"UIDVALIDITY={validity}/;UID={uid}",
        )
        outcome = await self._acceptor.accept(
            message,
            event_id=message_id,
            source="/ingest/imap",
            language_hint=parsed.content_language,
        )
        if outcome is Acceptance.IN_PROGRESS:
            raise Unavailable("another delivery of this message is being published")
        await self._threads.remember(parsed, message)
        await self._flag(client, uid, f"\\Seen {KEYWORD}")
        await self._checkpoint.advance(validity, uid)

    async def _fetch(self, client: aioimaplib.IMAP4, uid: int) -> bytes:
        lines = _check(await client.uid("fetch", str(uid), "(UID BODY.PEEK[])"), "UID FETCH")
        for before, line in itertools.pairwise(lines):
            if isinstance(line, bytearray) and isinstance(before, bytes):
                match = _FETCH_UID.search(before)
                if match is None or int(match.group(1)) == uid:
                    return bytes(line)
        raise ImapError(f"UID FETCH {uid} returned no body")

    async def _flag(self, client: aioimaplib.IMAP4, uid: int, flags: str) -> None:
        _check(await client.uid("store", str(uid), f"+FLAGS.SILENT ({flags})"), "UID STORE")
