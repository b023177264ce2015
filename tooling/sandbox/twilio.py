"""A Twilio Messages API (2010-04-01) sandbox: records every SMS the twilio client sends.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` answers like Twilio does (201 and the
message resource as JSON); ``GET /sandbox/messages`` lists what was received. Failures can be
scripted with ``POST /sandbox/failures`` (``{"status": 429, "count": 3, "retry_after": 1}``)
to exercise retries and rate limits. :func:`sms_webhook_form` is the other direction: the form
Twilio posts to our webhook for an inbound SMS.

WhatsApp follows Twilio's 24-hour rule on the sandbox's own clock (``clock``, which a test
sets): :meth:`TwilioSandbox.whatsapp_webhook_form` is a customer writing (it opens the window),
a free-form send (``Body``) after the window is accepted and then fails with error 63016 as
Twilio does, and a template send (``ContentSid`` + ``ContentVariables``) always goes out.
:meth:`TwilioSandbox.report_status` (or ``POST /sandbox/messages/{sid}/status``, ``{"status":
"read"}``) posts a signed status callback as Twilio would, ``read`` included. Clients in another
process write as a WhatsApp customer through ``POST /sandbox/whatsapp/inbound``.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from libs.common.clock import Clock, system_clock
from libs.contracts import whatsapp

API_VERSION = "2010-04-01"
WHATSAPP_WINDOW = timedelta(hours=24)
OUTSIDE_WINDOW = 63016


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


def whatsapp_form(
    *, sender: str, recipient: str, body: str, profile_name: str, sid: str, account_sid: str
) -> dict[str, str]:
    """The form Twilio posts for an inbound WhatsApp message (unsigned); numbers in E.164."""
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": profile_name,
        "MessageType": "text",
        "WaId": sender.lstrip("+"),
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": whatsapp.address(sender),
        "To": whatsapp.address(recipient),
        "Body": body,
        "NumSegments": "1",
        "ApiVersion": API_VERSION,
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
    clock: Clock = system_clock
    """The sandbox's time: when a customer wrote, and whether a WhatsApp window is open."""
    whatsapp_inbound: dict[tuple[str, str], datetime] = field(default_factory=dict)
    """(our WhatsApp address, the customer's) -> when the customer last wrote."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(f"/{API_VERSION}/Accounts/{{sid}}/Messages.json", self._create)
        app.router.add_get("/sandbox/messages", self._list)
        app.router.add_post("/sandbox/failures", self._script_failure)
        app.router.add_post("/sandbox/messages/{sid}/status", self._status)
        app.router.add_post("/sandbox/whatsapp/inbound", self._whatsapp_inbound)
        return app

    def whatsapp_webhook_form(
        self, *, sender: str, recipient: str, body: str, profile_name: str = "Customer"
    ) -> dict[str, str]:
        """A customer writing on WhatsApp now (the sandbox's clock): the form Twilio posts to
        the webhook, unsigned; the customer-service window opens."""
        form = whatsapp_form(
            sender=sender,
            recipient=recipient,
            body=body,
            profile_name=profile_name,
            sid="SM" + uuid.uuid4().hex,
            account_sid=self.account_sid,
        )
        self.whatsapp_inbound[(form["To"], form["From"])] = self.clock()
        return form

    def _refusal(self, sender: str, to: str, content_sid: str) -> int:
        """Twilio's error code for a WhatsApp send it takes but cannot deliver (0: none)."""
        if not whatsapp.is_address(to) or content_sid:
            return 0
        last = self.whatsapp_inbound.get((sender, to))
        inside = last is not None and self.clock() < last + WHATSAPP_WINDOW
        return 0 if inside else OUTSIDE_WINDOW

    async def report_status(self, message_sid: str, status: str, error_code: int = 0) -> int:
        """Post the signed status callback Twilio sends when a message reaches ``status``
        (``sent``, ``delivered``, ``read``, ``failed``...); returns the webhook's HTTP status."""
        message = next(m for m in self.messages if m["sid"] == message_sid)
        url = message["status_callback"]
        if not url:
            return 0
        form = {
            "MessageSid": message_sid,
            "SmsSid": message_sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": self.account_sid,
            "From": message["from"],
            "To": message["to"],
            "ApiVersion": API_VERSION,
        }
        if whatsapp.is_address(message["to"]):
            form["ChannelPrefix"] = "whatsapp"
        if error_code:
            form["ErrorCode"] = str(error_code)
        signature = RequestValidator(self.auth_token).compute_signature(url, form)
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response,
        ):
            return response.status

    async def _whatsapp_inbound(self, request: web.Request) -> web.Response:
        """``{"from", "to", "body", "profile_name"}``: a customer writing on WhatsApp, for
        clients in another process (the simulator); answers the form to post to the webhook."""
        spec = await request.json()
        form = self.whatsapp_webhook_form(
            sender=str(spec["from"]),
            recipient=str(spec["to"]),
            body=str(spec["body"]),
            profile_name=str(spec.get("profile_name", "Customer")),
        )
        return web.json_response(form)

    async def _status(self, request: web.Request) -> web.Response:
        spec = await request.json()
        answered = await self.report_status(request.match_info["sid"], str(spec["status"]))
        return web.json_response({"webhook_status": answered})

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
        to, sender, body = str(form.get("To") or ""), str(form.get("From") or ""), form.get("Body")
        content_sid = form.get("ContentSid")
        if not to or not (body or content_sid):
            return _error(400, 21604, "A 'To' phone number and a 'Body' are required.")
        refused = self._refusal(sender, to, str(content_sid or ""))
        now = format_datetime(self.clock())
        message_sid = "SM" + secrets.token_hex(16)
        resource = {
            "account_sid": sid,
            "api_version": API_VERSION,
            "body": body or "",
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
        self.messages.append(
            {
                **resource,
                "status_callback": form.get("StatusCallback"),
                "content_sid": content_sid,
                "content_variables": form.get("ContentVariables"),
                "status": "failed" if refused else "queued",
                "error_code": refused or None,
            }
        )
        if refused:  # Twilio takes the message, then reports it failed
            await self.report_status(message_sid, "failed", refused)
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
