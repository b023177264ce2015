"""Building provider requests the way the providers build them."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator


def twilio_sms_form(
    *, sender: str, recipient: str, body: str, sid: str | None = None, account_sid: str = ""
) -> dict[str, str]:
    """The form Twilio posts for an inbound SMS."""
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


def sign_twilio(url: str, form: dict[str, str], auth_token: str) -> dict[str, str]:
    """Headers of a webhook signed like Twilio signs it (HMAC-SHA1 over URL + sorted params)."""
    signature = RequestValidator(auth_token).compute_signature(url, form)
    return {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def encode_form(form: dict[str, str]) -> str:
    return urlencode(form)
