"""tweepy's ``AsyncClient`` pointed at any X API base URL (ingest reads, outbound writes).

tweepy 4.17 builds every request URL as ``"https://api.twitter.com" + route`` inside
``AsyncBaseClient.request`` and has no option to change it, but it sends through a
caller-supplied ``session`` when one is set, calling only its ``request`` method. So the client
gets a :class:`RebasedSession` that swaps that prefix for the configured base URL and forwards
to a real aiohttp session; everything else (parameters, auth header, errors, the 429 reset
time) stays tweepy's.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import aiohttp
import tweepy.asynchronous

TWEEPY_BASE: Final = "https://api.twitter.com"
DM_THREAD_PREFIX: Final = "x-dm:"
"""Thread keys of direct-message conversations (``x-dm:{lower id}:{higher id}``): private,
unlike mentions, which are answered in public."""


def is_direct_message_thread(thread_key: str | None) -> bool:
    return (thread_key or "").startswith(DM_THREAD_PREFIX)


class RebasedSession:
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


def x_client(
    token: str, session: aiohttp.ClientSession, base_url: str
) -> tweepy.asynchronous.AsyncClient:
    """An async client sending through ``session`` to ``base_url``.

    tweepy logs every request's headers at DEBUG, token included, so its logger is kept at INFO.
    """
    tweepy_log = logging.getLogger("tweepy")
    if tweepy_log.getEffectiveLevel() < logging.INFO:
        tweepy_log.setLevel(logging.INFO)
    client = tweepy.asynchronous.AsyncClient(
        bearer_token=token, return_type=dict, wait_on_rate_limit=False
    )
    client.session = RebasedSession(session, base_url)
    return client
