"""The X API v2 through tweepy's ``AsyncClient``, pointed at any base URL and trust store.

tweepy 4.17 builds every request URL as ``"https://api.twitter.com" + route`` inside
``AsyncBaseClient.request`` and has no option to change it, but it sends through a
caller-supplied ``session`` when one is set, calling only its ``request`` method. So the client
gets a :class:`_RebasedSession` that swaps that prefix for ``X_API_BASE_URL`` and forwards to a
real aiohttp session; everything else (parameters, the bearer header, errors, the 429 reset
time) stays tweepy's. TLS is verified against the system store, or only against
``X_CA_BUNDLE`` when it is set (a local sandbox with its own certificate).
"""

from __future__ import annotations

import logging
import ssl
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
import tweepy.asynchronous

TWEEPY_BASE: Final = "https://api.twitter.com"
REQUEST_TIMEOUT: Final = 30.0
PAGE_SIZE: Final = 100  # X's maximum; 5 is its minimum
TWEET_FIELDS: Final = ("created_at", "conversation_id", "in_reply_to_user_id", "author_id", "lang")
USER_FIELDS: Final = ("username", "name")


class _RebasedSession:
    """The part of an aiohttp session tweepy uses (``request``), sending to another base URL."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")

    def request(
        self, method: str, url: object, **kwargs: Any
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        target = str(url)
        if target.startswith(TWEEPY_BASE + "/"):
            target = self._base_url + target[len(TWEEPY_BASE) :]
        return self._session.request(method, target, **kwargs)


class XApi:
    """The calls Switchboard makes to X; owns its HTTP session (:meth:`close` it)."""

    def __init__(
        self,
        *,
        bearer_token: str,
        base_url: str = TWEEPY_BASE,
        ca_bundle: Path | None = None,
        timeout: float = REQUEST_TIMEOUT,
        page_size: int = PAGE_SIZE,
    ) -> None:
        # tweepy logs every request's headers at DEBUG, bearer token included.
        tweepy_log = logging.getLogger("tweepy")
        if tweepy_log.getEffectiveLevel() < logging.INFO:
            tweepy_log.setLevel(logging.INFO)
        context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        self._client = tweepy.asynchronous.AsyncClient(
            bearer_token=bearer_token, return_type=dict, wait_on_rate_limit=False
        )
        self._client.session = _RebasedSession(self._session, base_url)
        self._page_size = page_size

    async def close(self) -> None:
        await self._session.close()

    async def mentions(
        self,
        user_id: str,
        *,
        since_id: str | None = None,
        pagination_token: str | None = None,
        start_time: datetime | None = None,
    ) -> Any:
        """One page of ``GET /2/users/{id}/mentions`` as decoded JSON (newest first).

        Raises tweepy's ``TooManyRequests`` (with ``reset_time``) on 429, its other
        ``HTTPException`` subclasses on other errors, aiohttp errors on transport failures.
        """
        return await self._client.get_users_mentions(
            user_id,
            since_id=since_id,
            pagination_token=pagination_token,
            start_time=start_time,
            max_results=self._page_size,
            expansions=["author_id"],
            tweet_fields=list(TWEET_FIELDS),
            user_fields=list(USER_FIELDS),
        )
