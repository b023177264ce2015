"""The X API v2 calls ingest makes, through tweepy's ``AsyncClient`` pointed at
``X_API_BASE_URL`` (see :mod:`libs.common.xclient`). TLS is verified against the system store,
or only against ``X_CA_BUNDLE`` when it is set (a local sandbox with its own certificate).
"""

from __future__ import annotations

import ssl
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import aiohttp

from libs.common.xclient import TWEEPY_BASE, x_client

REQUEST_TIMEOUT: Final = 30.0
PAGE_SIZE: Final = 100  # X's maximum; 5 is its minimum
TWEET_FIELDS: Final = ("created_at", "conversation_id", "in_reply_to_user_id", "author_id", "lang")
USER_FIELDS: Final = ("username", "name")


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
        context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        self._client = x_client(bearer_token, self._session, base_url)
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
