"""SMS (and, through :mod:`services.outbound.senders.whatsapp`, WhatsApp) out through the
official twilio client (async HTTP), against any Twilio-compatible API."""

from __future__ import annotations

import base64
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from libs.common.clock import Clock, system_clock
from services.outbound.senders.base import (
    OutcomeUnknown,
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
)

REQUEST_TIMEOUT = 10.0

# The twilio client raises TwilioRestException without the response headers; the HTTP client
# below drops a 429's Retry-After header into the calling task's box instead (per call, so
# concurrent sends sharing one client never see each other's).
_retry_after_box: ContextVar[list[str] | None] = ContextVar("twilio_retry_after", default=None)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), ``None`` if unusable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class _RetryAfterHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Also sends credentials as a plain header: the stock client builds ``aiohttp.BasicAuth``,
    deprecated in aiohttp 3.14 and gone in 4."""

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        auth = kwargs.pop("auth", None)
        if auth is not None:
            user, password = auth
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Authorization": f"Basic {token}"}
        response = await super().request(*args, **kwargs)
        box = _retry_after_box.get()
        if box is not None and response.status_code == 429 and response.headers is not None:
            box.append(response.headers.get("Retry-After") or "")
        return response


class TwilioSms:
    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        default_sender: str,
        api_base_url: str,
        status_callback: str | None,
        clock: Clock = system_clock,
    ) -> None:
        # The stock client logs ten INFO lines per request (headers, the full response); our own
        # log line per send is enough, so its logger only passes warnings.
        quiet = logging.getLogger("services.outbound.twilio_http")
        quiet.setLevel(logging.WARNING)
        self._http = _RetryAfterHttpClient(timeout=REQUEST_TIMEOUT, logger=quiet)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._client.api.base_url = api_base_url.rstrip("/")
        self._default_sender = default_sender
        self._status_callback = status_callback
        self._clock = clock

    @property
    def default_sender(self) -> str:
        return self._default_sender

    async def close(self) -> None:
        await self._http.close()

    def _callback_for(self, message: OutgoingMessage) -> str | None:
        """The status callback URL, naming the conversation so its receipts reach it."""
        if self._status_callback is None or message.conversation_id is None:
            return self._status_callback
        return f"{self._status_callback}?{urlencode({'conversation': message.conversation_id})}"

    async def send(self, message: OutgoingMessage) -> str:
        box: list[str] = []
        token = _retry_after_box.set(box)
        content: dict[str, Any] = (
            {"content_sid": message.content_sid, "content_variables": message.content_variables}
            if message.content_sid
            else {"body": message.text}
        )
        try:
            created = await self._client.messages.create_async(
                to=message.recipient,
                from_=message.sender or self._default_sender,
                status_callback=self._callback_for(message),
                **content,
            )
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                retry_after = parse_retry_after(box[-1], self._clock()) if box else None
                raise TemporaryFailure(f"twilio {exc.status}: {exc.msg}", retry_after) from exc
            raise PermanentFailure(f"twilio {exc.status} ({exc.code}): {exc.msg}") from exc
        except aiohttp.ClientConnectorError as exc:
            raise TemporaryFailure(f"twilio unreachable: {exc}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise OutcomeUnknown(f"twilio call interrupted: {exc!r}") from exc
        finally:
            _retry_after_box.reset(token)
        return str(created.sid)
