"""X (Twitter) out through tweepy's ``AsyncClient``: a short public reply to a mention, or a
direct message.

A conversation that came in as a DM (thread ``x-dm:…``), or a command without a tweet to answer,
is answered by DM to the customer's user id. A mention is answered in public under the tweet
(``in_reply_to_tweet_id``), kept within X's 280 weighted characters: a longer text is cut and
ends by asking the customer to continue by DM, because a public thread is no place for account
details. Writes need our account's user-context token (OAuth 2.0, sent as a bearer token);
the app-only bearer token that reads mentions cannot post.

tweepy builds every URL on ``https://api.twitter.com``; as in ingest, a session wrapper swaps
that prefix for ``X_API_BASE_URL`` (the dev sandbox), and tweepy's DEBUG log, which prints the
token, is kept off.
"""

from __future__ import annotations

from typing import Final

import aiohttp
import tweepy.asynchronous
import tweepy.errors

from libs.common.clock import Clock, system_clock
from libs.common.xclient import TWEEPY_BASE, is_direct_message_thread, x_client
from services.outbound.senders.base import (
    OutcomeUnknown,
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
)

REQUEST_TIMEOUT: Final = 30.0
PUBLIC_LIMIT: Final = 280
TAKE_PRIVATE: Final = "… Please send us a DM to continue."


def weighted_length(text: str) -> int:
    """X's length of a post: most Latin-script characters count 1, others (CJK, emoji) 2."""
    return sum(1 if _light(ord(c)) else 2 for c in text)


def _light(code: int) -> bool:
    return (
        code <= 0x10FF
        or 0x2000 <= code <= 0x200D
        or 0x2010 <= code <= 0x201F
        or 0x2032 <= code <= 0x2037
    )


def public_reply(text: str) -> str:
    """``text`` if it fits a post, else its longest word-bounded prefix + a pointer to DMs."""
    text = text.strip()
    if weighted_length(text) <= PUBLIC_LIMIT:
        return text
    budget = PUBLIC_LIMIT - weighted_length(TAKE_PRIVATE)
    used, end = 0, 0
    for index, char in enumerate(text):
        used += weighted_length(char)
        if used > budget:
            break
        end = index + 1
    prefix = text[:end]
    space = prefix.rfind(" ")
    if space >= end // 2:
        prefix = prefix[:space]
    return prefix.rstrip(" ,.;:") + TAKE_PRIVATE


class XReplies:
    """Owns its HTTP session (:meth:`close` it)."""

    def __init__(
        self,
        *,
        user_token: str,
        base_url: str = TWEEPY_BASE,
        timeout: float = REQUEST_TIMEOUT,
        clock: Clock = system_clock,
    ) -> None:
        self._clock = clock
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        self._client = x_client(user_token, self._session, base_url)

    async def close(self) -> None:
        await self._session.close()

    async def send(self, message: OutgoingMessage) -> str:
        private = is_direct_message_thread(message.thread_key) or not message.in_reply_to
        if private and not message.recipient.isdigit():
            raise PermanentFailure(f"not an X user id: {message.recipient[:40]!r}")
        try:
            if private:
                sent = await self._client.create_direct_message(
                    participant_id=message.recipient, text=message.text, user_auth=False
                )
                return str(sent["data"]["dm_event_id"])
            posted = await self._client.create_tweet(
                text=public_reply(message.text),
                in_reply_to_tweet_id=message.in_reply_to,
                user_auth=False,
            )
            return str(posted["data"]["id"])
        except tweepy.errors.TooManyRequests as exc:
            wait = (
                None
                if exc.reset_time is None
                else max(0.0, exc.reset_time - self._clock().timestamp())
            )
            raise TemporaryFailure("x 429: rate limited", wait) from exc
        except tweepy.errors.TwitterServerError as exc:
            raise TemporaryFailure(f"x {exc.response.status}: {exc}") from exc
        except tweepy.errors.HTTPException as exc:
            raise PermanentFailure(f"x {exc.response.status}: {exc}") from exc
        except aiohttp.ContentTypeError as exc:  # an answer that is not JSON
            if 200 <= exc.status < 300:
                raise OutcomeUnknown(f"x accepted with an unreadable answer: {exc!r}") from exc
            if exc.status == 429 or exc.status >= 500:
                raise TemporaryFailure(f"x {exc.status}") from exc
            raise PermanentFailure(f"x {exc.status}") from exc
        except aiohttp.ClientConnectorError as exc:
            raise TemporaryFailure(f"x unreachable: {exc}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise OutcomeUnknown(f"x call interrupted: {exc!r}") from exc
