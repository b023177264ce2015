"""A Twilio Messages API (2010-04-01) sandbox: records every SMS the twilio client sends.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` answers like Twilio does (201 and the
message resource as JSON); ``GET /sandbox/messages`` lists what was received. Failures can be
scripted with ``POST /sandbox/failures`` (``{"status": 429, "count": 3, "retry_after": 1}``)
to exercise retries and rate limits. :func:`sms_webhook_form` is the other direction: the form
Twilio posts to our webhook for an inbound SMS.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

API_VERSION = "2010-04-01"


def sms_webhook_form(
    *, sender: str, recipient: str, body: str, sid: str | None = None, account_sid: str = ""
) -> dict[str, str]:
    """The form Twilio posts to a webhook for an inbound SMS (unsigned)."""
    sid = sid or "SM" + uuid.uuid4().hex
    return {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": sender,
        "To": recipient,
        "Body": body,
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }


@dataclass
class ScriptedFailure:
    status: int
    remaining: int
    retry_after: float | None = None


@dataclass
class TwilioSandbox:
    account_sid: str
    auth_token: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    failures: list[ScriptedFailure] = field(default_factory=list)
    requests: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(f"/{API_VERSION}/Accounts/{{sid}}/Messages.json", self._create)
        app.router.add_get("/sandbox/messages", self._list)
        app.router.add_post("/sandbox/failures", self._script_failure)
        return app

    def _authorised(self, request: web.Request, sid: str) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == sid == self.account_sid and password == self.auth_token

    async def _create(self, request: web.Request) -> web.Response:
        self.requests += 1
        sid = request.match_info["sid"]
        if not self._authorised(request, sid):
            return _error(401, 20003, "Authenticate")
        if self.failures:
            failure = self.failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                self.failures.pop(0)
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            code = 20429 if failure.status == 429 else 21211
            return _error(failure.status, code, "scripted failure", headers)
        form = await request.post()
        to, sender, body = form.get("To"), form.get("From"), form.get("Body")
        if not to or not body:
            return _error(400, 21604, "A 'To' phone number and a 'Body' are required.")
        now = format_datetime(datetime.now(UTC))
        message_sid = "SM" + secrets.token_hex(16)
        resource = {
            "account_sid": sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": message_sid,
            "status": "queued",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{sid}/Messages/{message_sid}/Media.json"
            },
            "to": to,
            "uri": f"/{API_VERSION}/Accounts/{sid}/Messages/{message_sid}.json",
        }
        self.messages.append({**resource, "status_callback": form.get("StatusCallback")})
        return web.json_response(resource, status=201)

    async def _list(self, _: web.Request) -> web.Response:
        return web.json_response(self.messages)

    async def _script_failure(self, request: web.Request) -> web.Response:
        spec = await request.json()
        self.failures.append(
            ScriptedFailure(int(spec["status"]), int(spec.get("count", 1)), spec.get("retry_after"))
        )
        return web.json_response({"scripted": len(self.failures)})


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
        headers=headers,
    )
