"""Public mentions of our X account: polled, normalised, published once, checkpointed.

Each poll asks for the mentions newer than the checkpoint (``since_id``), follows
``next_token`` through every page, then publishes them oldest first through the
:class:`~services.ingest.accept.Acceptor`. Only when every one of them is on Kafka does the
checkpoint move to the newest id seen, so a crash, a 429 or a broker outage in the middle
means the next poll asks again from the old checkpoint: nothing is skipped, and what was
already published is recognised by the acceptor (its id comes from the tweet id) and not
published twice.

Without a checkpoint (the first start) the poll looks back :data:`FIRST_POLL_LOOKBACK`
only, so turning X on does not file weeks of old mentions as new conversations.

Ids are decimal strings throughout (X ids exceed 2**53 and must not pass through floats);
the checkpoint compares them by length, then digits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

import aiohttp
import msgspec
import tweepy
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.backoff import Backoff, Jitter
from libs.common.events import MessageReceived
from libs.common.keys import Keys
from libs.common.logs import get_logger
from libs.common.redis_client import load_script
from services.ingest.accept import Acceptance, Acceptor, Unavailable
from services.ingest.x.api import XApi
from services.ingest.x.received import XAuthor, x_message

log = get_logger(__name__)

FIRST_POLL_LOOKBACK: Final = timedelta(hours=24)
MAX_PAGES: Final = 20  # X serves at most the 800 most recent mentions: 8 pages of 100
RATE_LIMIT_MARGIN: Final = 1.0
MAX_BACKOFF: Final = 900.0  # X's rate-limit windows are 15 minutes

XId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,19}$")]
PageToken = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_=-]{1,256}$")]


class InvalidResponse(ValueError):
    """The X API answered 2xx with something that is not a mentions page."""


class _User(msgspec.Struct, frozen=True):
    id: XId
    username: str | None = None
    name: str | None = None


class _Tweet(msgspec.Struct, frozen=True):
    id: XId
    text: str = ""
    author_id: XId | None = None
    created_at: datetime | None = None
    conversation_id: XId | None = None
    in_reply_to_user_id: XId | None = None
    lang: str | None = None


class _Includes(msgspec.Struct, frozen=True):
    users: tuple[_User, ...] = ()


class _Meta(msgspec.Struct, frozen=True):
    result_count: int = 0
    newest_id: XId | None = None
    oldest_id: XId | None = None
    next_token: PageToken | None = None


class _Page(msgspec.Struct, frozen=True):
    data: tuple[_Tweet, ...] = ()
    includes: _Includes = msgspec.field(default_factory=_Includes)
    meta: _Meta = msgspec.field(default_factory=_Meta)


@dataclass(frozen=True, slots=True)
class Mention:
    """One tweet mentioning us, its author joined from ``includes.users``."""

    id: str
    text: str
    author_id: str | None
    author_username: str | None
    author_name: str | None
    created_at: datetime | None
    conversation_id: str | None
    in_reply_to_user_id: str | None
    lang: str | None


@dataclass(frozen=True, slots=True)
class MentionsPage:
    mentions: tuple[Mention, ...]
    newest_id: str | None
    oldest_id: str | None
    result_count: int
    next_token: str | None


def parse_mentions_page(payload: object) -> MentionsPage:
    """A decoded ``GET /2/users/{id}/mentions`` response, checked, authors joined.

    Raises :class:`InvalidResponse` for anything that is not one (ids that are not decimal
    strings, wrong types, a page token with odd characters).
    """
    try:
        page = msgspec.convert(payload, _Page)
    except (msgspec.ValidationError, RecursionError) as exc:
        raise InvalidResponse(f"not a mentions page: {exc}") from None
    users = {user.id: user for user in page.includes.users}
    mentions = []
    for tweet in page.data:
        author = users.get(tweet.author_id) if tweet.author_id else None
        mentions.append(
            Mention(
                id=tweet.id,
                text=tweet.text,
                author_id=tweet.author_id,
                author_username=author.username if author else None,
                author_name=author.name if author else None,
                created_at=tweet.created_at,
                conversation_id=tweet.conversation_id,
                in_reply_to_user_id=tweet.in_reply_to_user_id,
                lang=tweet.lang,
            )
        )
    return MentionsPage(
        mentions=tuple(mentions),
        newest_id=page.meta.newest_id,
        oldest_id=page.meta.oldest_id,
        result_count=page.meta.result_count,
        next_token=page.meta.next_token,
    )


def _language(lang: str | None) -> str | None:
    """X's ``lang`` as a language tag, without its pseudo-codes (``und``, ``zxx``, ``qme``...)."""
    if not lang or lang in {"und", "zxx"} or (len(lang) == 3 and lang.startswith("q")):
        return None
    return lang


def normalise_mention(
    mention: Mention, our_user_id: str, now: datetime
) -> tuple[str, MessageReceived]:
    """The event id and ``message.received`` of one mention.

    A reply's thread is its conversation (the root tweet's id); a tweet without
    ``conversation_id`` starts its own. ``received_at`` is when the tweet was posted, or ``now``
    if X did not say.
    """
    return x_message(
        "tweet",
        mention.id,
        author=XAuthor(mention.author_id, mention.author_name, mention.author_username),
        thread_key=f"x:{mention.conversation_id or mention.id}",
        recipient=our_user_id,
        text=mention.text,
        received_at=mention.created_at or now,
        language=_language(mention.lang),
    )


def _id_key(tweet_id: str) -> tuple[int, str]:
    return len(tweet_id), tweet_id


class Checkpoint:
    """The newest mention id already on Kafka (``x:since_id:{user_id}``)."""

    def __init__(self, redis: Redis, keys: Keys, user_id: str) -> None:
        self._redis = redis
        self._key = keys.x_since_id(user_id)
        self._advance = redis.register_script(
            load_script("services.ingest.x", "advance_since_id.lua")
        )

    async def get(self) -> str | None:
        value = await self._redis.get(self._key)
        if isinstance(value, bytes):
            return value.decode()
        return value

    async def advance(self, tweet_id: str) -> None:
        await self._advance(keys=[self._key], args=[tweet_id])


Wait = Callable[[float], Awaitable[None]]


class MentionsPoller:
    """Polls our mentions every ``interval`` seconds until :meth:`stop`; never raises for X's
    or the broker's failures (they are logged, counted and retried with back-off)."""

    def __init__(
        self,
        *,
        api: XApi,
        acceptor: Acceptor,
        checkpoint: Checkpoint,
        user_id: str,
        interval: float,
        clock: Callable[[], float] = time.time,
        wait: Wait | None = None,
    ) -> None:
        self._api = api
        self._acceptor = acceptor
        self._checkpoint = checkpoint
        self._user_id = user_id
        self._interval = interval
        # A failed poll waits twice the interval, doubling up to MAX_BACKOFF.
        self._backoff = Backoff(2 * interval, max(2 * interval, MAX_BACKOFF), Jitter.NONE)
        self._clock = clock
        self._stopping = asyncio.Event()
        self._wait = wait or self._wait_unless_stopped

    def stop(self) -> None:
        self._stopping.set()

    async def _wait_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await self.poll_once()
            except tweepy.TooManyRequests as exc:
                metrics.x_polls.labels("rate_limited").inc()
                delay = self.rate_limit_delay(exc.reset_time)
                log.warning("x rate limited", retry_in=delay)
            except (
                tweepy.TweepyException,
                aiohttp.ClientError,
                TimeoutError,
                ValueError,  # InvalidResponse, and JSON that does not decode
                Unavailable,
                RedisError,
            ) as exc:
                metrics.x_polls.labels("error").inc()
                failures += 1
                delay = self._backoff.delay(failures)
                log.warning("x poll failed", error=repr(exc), retry_in=delay)
            else:
                metrics.x_polls.labels("ok").inc()
                failures = 0
                delay = self._interval
            if not self._stopping.is_set():
                await self._wait(delay)

    def rate_limit_delay(self, reset_time: int | None) -> float:
        """Seconds until X's ``x-rate-limit-reset`` (epoch seconds) plus a margin, at most
        :data:`MAX_BACKOFF`; the poll interval when X did not say."""
        if reset_time is None:
            return self._interval
        return min(max(reset_time - self._clock(), 0.0) + RATE_LIMIT_MARGIN, MAX_BACKOFF)

    async def poll_once(self) -> int:
        """Fetch every page of new mentions, publish them, then advance the checkpoint.

        Returns how many were published now (not counting ones already on Kafka).
        """
        since_id = await self._checkpoint.get()
        start_time = None
        if since_id is None:
            start_time = datetime.fromtimestamp(self._clock(), UTC) - FIRST_POLL_LOOKBACK
        found: dict[str, Mention] = {}
        newest = since_id
        token: str | None = None
        for _ in range(MAX_PAGES):
            page = parse_mentions_page(
                await self._api.mentions(
                    self._user_id,
                    since_id=since_id,
                    pagination_token=token,
                    start_time=start_time,
                )
            )
            for candidate in (page.newest_id, *(m.id for m in page.mentions)):
                if candidate and (newest is None or _id_key(candidate) > _id_key(newest)):
                    newest = candidate
            found.update((m.id, m) for m in page.mentions)
            token = page.next_token
            if token is None:
                break
        else:
            raise InvalidResponse(f"more than {MAX_PAGES} pages of mentions")
        published = 0
        for mention in sorted(found.values(), key=lambda m: _id_key(m.id)):
            if mention.author_id == self._user_id:
                continue  # our own tweet naming our account
            message_id, message = normalise_mention(mention, self._user_id, self._acceptor.now())
            outcome = await self._acceptor.accept(message, event_id=message_id, source="/ingest/x")
            if outcome is Acceptance.IN_PROGRESS:
                log.info("mention being published elsewhere; checkpoint kept", event_id=message_id)
                return published
            if outcome is Acceptance.ACCEPTED:
                published += 1
        if newest is not None and newest != since_id:
            await self._checkpoint.advance(newest)
        return published
