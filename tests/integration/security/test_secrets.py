"""Secrets never reach the logs: ingest as its own process, at DEBUG, fed signed requests.

Every secret is a fresh random value, so finding it in the log can only mean it was logged.
The requests carry what an attacker or a log reader could learn something from: the auth
token's signatures, X's body signature, a chat session token, and forged signatures.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import aiohttp

from services.ingest import sms
from services.ingest.chat import SESSION_PATH, WS_PATH
from services.ingest.x import webhook as x
from tests.support.harness import OUR_NUMBER, Launch
from tests.support.webhooks import encode_form, sign_twilio, sign_x
from tooling.devstack import free_port
from tooling.sandbox.twilio import sms_webhook_form

X_USER_ID = "1600000000000000001"
CUSTOMER_ID = "1700000000000000007"


async def test_tokens_keys_and_signatures_never_appear_in_the_log(
    launch: Launch, service_env: dict[str, str], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    token = "twilio-" + secrets.token_hex(16)
    x_secret = "x-" + secrets.token_hex(16)
    chat_key = secrets.token_hex(32)
    env = {
        **service_env,
        "TWILIO_AUTH_TOKEN": token,
        "X_CONSUMER_SECRET": x_secret,
        "X_USER_ID": X_USER_ID,
        "CHAT_SESSION_KEY": chat_key,
        "SWITCHBOARD_SMTP_PORT": str(free_port()),  # SMTP starts with ingest
        "LOG_LEVEL": "DEBUG",
        "PYTHONUNBUFFERED": "1",
    }
    (ingest,) = await launch(["ingest"], env)
    public = env["SWITCHBOARD_PUBLIC_URL"]
    seen: list[str] = [token, x_secret, chat_key]

    form = sms_webhook_form(sender="+15551230001", recipient=OUR_NUMBER, body="STOP")
    headers = sign_twilio(public + sms.PATH, form, token)
    seen.append(headers["X-Twilio-Signature"])
    async with http.post(ingest.url + sms.PATH, data=encode_form(form), headers=headers) as r:
        assert r.status == 200
    forged = {**headers, "X-Twilio-Signature": secrets.token_urlsafe(20)}
    seen.append(forged["X-Twilio-Signature"])
    async with http.post(ingest.url + sms.PATH, data=encode_form(form), headers=forged) as r:
        assert r.status == 403

    body = json.dumps(
        {
            "for_user_id": X_USER_ID,
            "direct_message_events": [
                {
                    "type": "message_create",
                    "id": "1900000000000000001",
                    "created_timestamp": "1795599015123",
                    "message_create": {
                        "target": {"recipient_id": X_USER_ID},
                        "sender_id": CUSTOMER_ID,
                        "message_data": {"text": "where is my order?"},
                    },
                }
            ],
        }
    ).encode()
    x_headers = sign_x(body, x_secret)
    seen.append(x_headers[x.SIGNATURE_HEADER])
    async with http.post(ingest.url + x.PATH, data=body, headers=x_headers) as r:
        assert r.status == 200
    async with http.post(ingest.url + x.PATH, data=body + b" ", headers=x_headers) as r:
        assert r.status == 403
    crc = secrets.token_hex(8)
    async with http.get(ingest.url + x.PATH, params={"crc_token": crc}) as r:
        seen.append((await r.json())["response_token"])

    async with http.post(ingest.url + SESSION_PATH) as r:
        session_token = (await r.json())["token"]
    seen.append(session_token)
    async with http.ws_connect(f"{ingest.url}{WS_PATH}?token={session_token}") as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "ready"
    async with http.ws_connect(f"{ingest.url}{WS_PATH}?token={session_token}x") as ws:
        await ws.receive(timeout=10)  # refused (a forged token): logged with its reason only

    assert await asyncio.to_thread(ingest.stop) == 0
    log = (tmp_path / "ingest.log").read_text(encoding="utf-8", errors="replace")
    assert "service started" in log, "the log was not captured"
    assert "sms consent keyword" in log, "the signed request was not logged about at all"
    assert "chat socket refused" in log
    leaked = [value for value in seen if value in log]
    assert leaked == [], f"secrets in the log: {leaked}"
