"""An X API v2 sandbox: the user-mentions timeline, in X's wire format, for tweepy to call.

``GET /2/users/{id}/mentions`` answers like X does: bearer auth, ``since_id``/``until_id``/
``start_time``, ``max_results`` (5-100, default 10), ``pagination_token``, the ``expansions``
``tweet.fields`` and ``user.fields`` a client asks for, ``meta`` with ``newest_id``/
``oldest_id``/``result_count``/``next_token``, and ``x-rate-limit-*`` headers. Rate limiting
can be scripted (:meth:`XSandbox.rate_limit` or ``POST /sandbox/failures``
``{"status": 429, "count": 1, "reset": <epoch seconds>}``) to exercise back-off.

Mentions are added with :meth:`XSandbox.mention` (or ``POST /sandbox/mentions``
``{"author_id", "text", ...}``); ``GET /sandbox/requests`` lists the query of every timeline
request. Serving it over HTTPS is the caller's choice (``web.TCPSite(..., ssl_context=)``).

Writes, as outbound makes them with a user-context token (``user_token``; the app-only
bearer token is refused with 403 as X does): ``POST /2/tweets`` (``text``, optional
``reply.in_reply_to_tweet_id``; 201 ``{"data": {"id", "text", "edit_history_tweet_ids"}}``; a
text over 280 weighted characters is a 400 and the same text twice a 403 duplicate) and
``POST /2/dm_conversations/with/{participant_id}/messages`` (201 ``{"data":
{"dm_conversation_id", "dm_event_id"}}``). What was written is in :attr:`XSandbox.posted` and
:attr:`XSandbox.direct_messages`, ``GET /sandbox/posted`` and ``GET /sandbox/dms``; failures
of writes are scripted with :meth:`XSandbox.fail_writes`.
Page tokens are opaque offsets into the matching list, so a mention added while a client
pages shifts the pages, and the client sees one tweet twice, as it can on X.
"""

from __future__ import annotations

import base64
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

FIRST_ID = 1_900_000_000_000_000_000  # above 2**53, as real ids are
RATE_LIMIT = 450
WINDOW_SECONDS = 900
DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
DEFAULT_USER_FIELDS = ("id", "name", "username")


@dataclass
class ScriptedRateLimit:
    remaining: int
    reset: int


@dataclass
class ScriptedWriteFailure:
    status: int
    remaining: int
    reset: int | None = None


@dataclass
class XSandbox:
    bearer_token: str
    user_token: str = "sandbox-user-token"
    posted: list[dict[str, Any]] = field(default_factory=list)
    direct_messages: list[dict[str, Any]] = field(default_factory=list)
    write_failures: list[ScriptedWriteFailure] = field(default_factory=list)
    write_requests: int = 0
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    tweets: list[dict[str, Any]] = field(default_factory=list)
    failures: list[ScriptedRateLimit] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(FIRST_ID, 7919))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/2/users/{id}/mentions", self._mentions)
        app.router.add_post("/sandbox/mentions", self._add_mention)
        app.router.add_get("/sandbox/requests", self._list_requests)
        app.router.add_post("/sandbox/failures", self._script_failure)
        app.router.add_post("/2/tweets", self._create_tweet)
        app.router.add_post("/2/dm_conversations/with/{participant_id}/messages", self._create_dm)
        app.router.add_get("/sandbox/posted", self._list_posted)
        app.router.add_get("/sandbox/dms", self._list_dms)
        return app

    def fail_writes(self, status: int, *, count: int = 1, reset: int | None = None) -> None:
        """Answer the next ``count`` writes with ``status`` (429 with ``x-rate-limit-reset``)."""
        self.write_failures.append(ScriptedWriteFailure(status, count, reset))

    async def _write_refused(self, request: web.Request) -> web.Response | None:
        self.write_requests += 1
        auth = request.headers.get("Authorization")
        if auth == f"Bearer {self.bearer_token}":
            return _problem(
                403,
                "Unsupported Authentication",
                "Application-Only is forbidden for this endpoint.",
            )
        if auth != f"Bearer {self.user_token}":
            return _problem(401, "Unauthorized", "Unauthorized")
        if self.write_failures:
            failure = self.write_failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                self.write_failures.pop(0)
            headers = {}
            if failure.reset is not None:
                headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(failure.reset)}
            return _problem(failure.status, "Scripted failure", "scripted failure", headers)
        return None

    async def _create_tweet(self, request: web.Request) -> web.Response:
        refused = await self._write_refused(request)
        if refused is not None:
            return refused
        body = await request.json()
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return _invalid_request("text is required")
        if weighted_length(text) > 280:
            return _invalid_request("Your Tweet text is too long.")
        if any(t["text"] == text for t in self.posted):
            return _problem(
                403, "Forbidden", "You are not allowed to create a Tweet with duplicate content."
            )
        tweet_id = str(next(self._ids))
        reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        self.posted.append({"id": tweet_id, "text": text, "in_reply_to_tweet_id": reply_to})
        data = {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}
        return web.json_response({"data": data}, status=201)

    async def _create_dm(self, request: web.Request) -> web.Response:
        refused = await self._write_refused(request)
        if refused is not None:
            return refused
        body = await request.json()
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return _invalid_request("text is required")
        participant = request.match_info["participant_id"]
        event_id = str(next(self._ids))
        conversation = f"{min(participant, 'me')}-{max(participant, 'me')}"
        self.direct_messages.append({"dm_event_id": event_id, "to": participant, "text": text})
        data = {"dm_conversation_id": conversation, "dm_event_id": event_id}
        return web.json_response({"data": data}, status=201)

    async def _list_posted(self, _: web.Request) -> web.Response:
        return web.json_response(self.posted)

    async def _list_dms(self, _: web.Request) -> web.Response:
        return web.json_response(self.direct_messages)

    def user(self, user_id: str, username: str, name: str) -> dict[str, Any]:
        self.users[user_id] = {"id": user_id, "username": username, "name": name}
        return self.users[user_id]

    def mention(
        self,
        *,
        mentioned: str,
        author_id: str,
        text: str,
        created_at: datetime | None = None,
        conversation_id: str | None = None,
        in_reply_to_user_id: str | None = None,
        lang: str = "en",
    ) -> dict[str, Any]:
        """A new tweet by ``author_id`` mentioning user ``mentioned``; the newest id yet."""
        tweet_id = str(next(self._ids))
        tweet = {
            "id": tweet_id,
            "text": text,
            "edit_history_tweet_ids": [tweet_id],
            "author_id": author_id,
            "created_at": _iso(created_at or datetime.now(UTC)),
            "conversation_id": conversation_id or tweet_id,
            "lang": lang,
            "_mentions": [mentioned],
        }
        if in_reply_to_user_id:
            tweet["in_reply_to_user_id"] = in_reply_to_user_id
        self.tweets.append(tweet)
        return tweet

    def rate_limit(self, *, reset: int, count: int = 1) -> None:
        """Answer the next ``count`` timeline requests 429 with ``x-rate-limit-reset: reset``."""
        self.failures.append(ScriptedRateLimit(count, reset))

    async def _mentions(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.requests.append(query)
        if request.headers.get("Authorization") != f"Bearer {self.bearer_token}":
            return _problem(401, "Unauthorized", "Unauthorized")
        now = int(time.time())
        if self.failures:
            failure = self.failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                self.failures.pop(0)
            return _problem(
                429,
                "Too Many Requests",
                "Too Many Requests",
                {
                    "x-rate-limit-limit": str(RATE_LIMIT),
                    "x-rate-limit-remaining": "0",
                    "x-rate-limit-reset": str(failure.reset),
                },
            )
        try:
            page_size = int(query.get("max_results", "10"))
            offset = _offset(query.get("pagination_token"))
            since_id = _id_or_none(query.get("since_id"))
            until_id = _id_or_none(query.get("until_id"))
            start_time = _time_or_none(query.get("start_time"))
        except ValueError as exc:
            return _invalid_request(str(exc))
        if not 5 <= page_size <= 100:
            return _invalid_request("max_results must be between 5 and 100")
        user_id = request.match_info["id"]
        matching = sorted(
            (
                t
                for t in self.tweets
                if user_id in t["_mentions"]
                and (since_id is None or int(t["id"]) > since_id)
                and (until_id is None or int(t["id"]) < until_id)
                and (start_time is None or t["created_at"] >= _iso(start_time))
            ),
            key=lambda t: int(t["id"]),
            reverse=True,
        )
        page = matching[offset : offset + page_size]
        body: dict[str, Any] = {"meta": {"result_count": len(page)}}
        if page:
            tweet_fields = {*DEFAULT_TWEET_FIELDS, *_list(query.get("tweet.fields"))}
            expansions = _list(query.get("expansions"))
            if "author_id" in expansions:
                tweet_fields.add("author_id")
            body["data"] = [{k: v for k, v in t.items() if k in tweet_fields} for t in page]
            body["meta"].update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
            if "author_id" in expansions:
                user_fields = {*DEFAULT_USER_FIELDS, *_list(query.get("user.fields"))}
                authors = dict.fromkeys(t["author_id"] for t in page)
                body["includes"] = {
                    "users": [
                        {k: v for k, v in self.users[a].items() if k in user_fields}
                        for a in authors
                        if a in self.users
                    ]
                }
        if offset + page_size < len(matching):
            body["meta"]["next_token"] = _token(offset + page_size)
        return web.json_response(
            body,
            headers={
                "x-rate-limit-limit": str(RATE_LIMIT),
                "x-rate-limit-remaining": str(RATE_LIMIT - 1),
                "x-rate-limit-reset": str(now + WINDOW_SECONDS),
            },
        )

    async def _add_mention(self, request: web.Request) -> web.Response:
        spec = await request.json()
        if spec.get("author_username"):
            self.user(
                str(spec["author_id"]),
                str(spec["author_username"]),
                str(spec.get("author_name") or spec["author_username"]),
            )
        tweet = self.mention(
            mentioned=str(spec["mentioned"]),
            author_id=str(spec["author_id"]),
            text=str(spec["text"]),
            conversation_id=spec.get("conversation_id"),
            in_reply_to_user_id=spec.get("in_reply_to_user_id"),
        )
        return web.json_response({k: v for k, v in tweet.items() if not k.startswith("_")})

    async def _list_requests(self, _: web.Request) -> web.Response:
        return web.json_response(self.requests)

    async def _script_failure(self, request: web.Request) -> web.Response:
        spec = await request.json()
        if int(spec.get("status", 429)) != 429:
            return web.json_response({"error": "only 429 can be scripted"}, status=400)
        self.rate_limit(reset=int(spec["reset"]), count=int(spec.get("count", 1)))
        return web.json_response({"scripted": len(self.failures)})


def weighted_length(text: str) -> int:
    """X's length of a post: most Latin-script characters count 1, others (CJK, emoji) 2
    (twitter-text v3 ranges; URLs, which X counts as 23, are not special-cased here)."""
    return sum(1 if _light(ord(c)) else 2 for c in text)


def _light(code: int) -> bool:
    return (
        code <= 0x10FF
        or 0x2000 <= code <= 0x200D
        or 0x2010 <= code <= 0x201F
        or 0x2032 <= code <= 0x2037
    )


def _iso(instant: datetime) -> str:
    """X's timestamp format: UTC, milliseconds, ``Z``."""
    return (
        instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{instant.microsecond // 1000:03d}Z"
    )


def _list(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part]


def _id_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise ValueError(f"invalid id {value!r}")
    return int(value)


def _time_or_none(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _token(offset: int) -> str:
    return base64.b32encode(f"offset:{offset}".encode()).decode().rstrip("=").lower()


def _offset(token: str | None) -> int:
    if token is None:
        return 0
    try:
        padded = token.upper() + "=" * (-len(token) % 8)
        kind, _, value = base64.b32decode(padded).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid pagination_token") from None
    if kind != "offset" or not value.isdigit():
        raise ValueError("invalid pagination_token")
    return int(value)


def _problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"title": title, "detail": detail, "type": "about:blank", "status": status},
        status=status,
        headers=headers,
    )


def _invalid_request(message: str) -> web.Response:
    return web.json_response(
        {
            "errors": [{"message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        },
        status=400,
    )
