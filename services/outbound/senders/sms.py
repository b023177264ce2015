"""SMS out through the official twilio client (async HTTP), against any Twilio-compatible API."""

from __future__ import annotations

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from services.outbound.senders.base import (
    OutcomeUnknown,
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
)

REQUEST_TIMEOUT = 10.0


class TwilioSms:
    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        default_sender: str,
        api_base_url: str,
        status_callback: str | None,
    ) -> None:
        self._http = AsyncTwilioHttpClient(timeout=REQUEST_TIMEOUT)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._client.api.base_url = api_base_url.rstrip("/")
        self._default_sender = default_sender
        self._status_callback = status_callback

    async def close(self) -> None:
        await self._http.close()

    async def send(self, message: OutgoingMessage) -> str:
        try:
            created = await self._client.messages.create_async(
                to=message.recipient,
                from_=message.sender or self._default_sender,
                body=message.text,
                status_callback=self._status_callback,
            )
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                raise TemporaryFailure(f"twilio {exc.status}: {exc.msg}") from exc
            raise PermanentFailure(f"twilio {exc.status} ({exc.code}): {exc.msg}") from exc
        except aiohttp.ClientConnectorError as exc:
            raise TemporaryFailure(f"twilio unreachable: {exc}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise OutcomeUnknown(f"twilio call interrupted: {exc!r}") from exc
        return str(created.sid)
