"""Building provider requests the way the providers build them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator


def sign_twilio(url: str, form: dict[str, str], auth_token: str) -> dict[str, str]:
    """Headers of a webhook signed like Twilio signs it (HMAC-SHA1 over URL + sorted params)."""
    signature = RequestValidator(auth_token).compute_signature(url, form)
    return {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def sign_twilio_pairs(url: str, pairs: Sequence[tuple[str, str]], auth_token: str) -> str:
    """Twilio's documented signature over every pair, repeats included.

    The SDK's validator collapses identical repeated pairs; Twilio's rule (and ingest) does
    not, so forms with arbitrary repeats are signed here.
    """
    signed = url + "".join(name + value for name, value in sorted(pairs))
    mac = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def sign_x(body: bytes, consumer_secret: str) -> dict[str, str]:
    """Headers of an Account Activity POST signed like X signs it (HMAC-SHA256 of the body)."""
    digest = hmac.new(consumer_secret.encode(), body, hashlib.sha256).digest()
    return {
        "x-twitter-webhooks-signature": "sha256=" + base64.b64encode(digest).decode(),
        "Content-Type": "application/json; charset=utf-8",
    }


def encode_form(form: dict[str, str]) -> str:
    return urlencode(form)
