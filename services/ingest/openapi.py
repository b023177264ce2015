"""The OpenAPI document of ingest: provider webhooks, the chat endpoints, health (see
:mod:`libs.common.openapi`; regenerate with ``switchboard openapi``)."""

from __future__ import annotations

from typing import Any

from libs.common.openapi import (
    BODY_LIMIT,
    ERROR_SCHEMA,
    OPENAPI_VERSION,
    RETRY_AFTER,
    Document,
    error_response,
    health_paths,
    unavailable,
)
from libs.contracts.chat_mailbox import ENTRY_ID, START
from libs.contracts.socket_tokens import PROTOCOL, TOKEN_PREFIX
from libs.contracts.surveys import MAX_TOKEN_CHARS as MAX_SURVEY_TOKEN_CHARS
from libs.contracts.surveys import SCORES
from services.ingest import sms, survey_answers
from services.ingest.chat import DEMO_PATH, WIDGET_PATH, frames
from services.ingest.chat import endpoint as chat
from services.ingest.chat.session import MAX_TOKEN_CHARS
from services.ingest.x import webhook as x


def _twilio_form(required: list[str], fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        BODY_LIMIT: sms.MAX_BODY_BYTES,
        "description": f"Twilio's form, signed; at most {sms.MAX_BODY_BYTES} bytes.",
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": required,
                    "properties": {name: {"type": "string", **s} for name, s in fields.items()},
                    # Twilio adds fields (FromCity, ToCountry, ...) without notice.
                    "additionalProperties": {"type": "string"},
                }
            }
        },
    }


def _twilio_operation(
    summary: str, body: dict[str, Any], ok: dict[str, Any], bad: str
) -> dict[str, Any]:
    return {
        "post": {
            "tags": ["sms"],
            "summary": summary,
            "parameters": [{"$ref": "#/components/parameters/TwilioSignature"}],
            "requestBody": body,
            "responses": {
                "200": ok,
                "400": error_response(bad),
                "403": error_response("The signature does not hold (or no auth token is set)."),
                "413": error_response(f"The body is over {sms.MAX_BODY_BYTES} bytes."),
                "415": error_response("Not application/x-www-form-urlencoded."),
                "503": unavailable("Kafka or Redis did not acknowledge in time"),
            },
        }
    }


def _account_sid() -> dict[str, Any]:
    """A fresh schema each time: a shared one would be a YAML alias in the document."""
    return {
        "anyOf": [{"pattern": sms.ACCOUNT_SID_PATTERN}, {"const": ""}],
        "description": "Ours when TWILIO_ACCOUNT_SID is set.",
    }


def _sms_paths() -> dict[str, Any]:
    media = {
        **{f"MediaUrl{i}": {"format": "uri"} for i in range(sms.MAX_MEDIA)},
        **{f"MediaContentType{i}": {} for i in range(sms.MAX_MEDIA)},
    }
    inbound = _twilio_form(
        ["MessageSid", "From", "To"],
        {
            "MessageSid": {
                "pattern": sms.MESSAGE_SID_PATTERN,
                "description": "Twilio's message SID (or SmsMessageSid).",
            },
            "SmsMessageSid": {},
            "AccountSid": _account_sid(),
            "From": {
                "description": "The customer's number (E.164, short code or alphanumeric); "
                "``whatsapp:+E164`` makes the message a WhatsApp one."
            },
            "To": {"description": "Our number (``whatsapp:+E164`` on WhatsApp)."},
            "Body": {"description": "The text; consent keywords (STOP, START, HELP) included."},
            "ProfileName": {"description": "WhatsApp: the name the customer gave WhatsApp."},
            "WaId": {"description": "WhatsApp: the customer's WhatsApp id (their number)."},
            "ButtonText": {"description": "WhatsApp: the quick-reply button the customer chose."},
            "Latitude": {"description": "WhatsApp: a shared location (with Longitude)."},
            "Longitude": {},
            "Address": {},
            "Label": {},
            "NumMedia": {
                "pattern": "^[0-9]+$",
                "description": f"Attachments; at most {sms.MAX_MEDIA} are read.",
            },
            **media,
        },
    )
    status = _twilio_form(
        ["MessageSid", "MessageStatus"],
        {
            "MessageSid": {"pattern": "^[A-Z]{2}[0-9a-f]{32}$"},
            "SmsSid": {},
            "MessageStatus": {"pattern": "^[a-z_-]{1,32}$"},
            "SmsStatus": {},
            "ErrorCode": {"pattern": "^[0-9]{1,10}$"},
            "AccountSid": _account_sid(),
            "From": {},
            "To": {},
        },
    )
    return {
        sms.PATH: _twilio_operation(
            "Inbound SMS/MMS and WhatsApp (Twilio messaging webhook).",
            inbound,
            {
                "description": "On Kafka (or already was): empty TwiML, so Twilio sends nothing.",
                "content": {"text/xml": {"schema": {"type": "string", "const": sms.TWIML_EMPTY}}},
            },
            "MessageSid, From or To missing, a SID not of Twilio's shape, NumMedia not a "
            "number, or the form not UTF-8.",
        ),
        sms.STATUS_PATH: _twilio_operation(
            "Delivery status callback of an SMS or WhatsApp message we sent (``read`` included); "
            "the ``conversation`` query parameter outbound sets names its conversation.",
            status,
            {"description": "Recorded and published, or older than the status stored."},
            "MessageSid, MessageStatus, ErrorCode or AccountSid malformed, or the form not UTF-8.",
        ),
    }


def _x_paths() -> dict[str, Any]:
    x_id = {"type": "string", "pattern": "^[0-9]{1,19}$"}
    dm_event = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "examples": ["message_create"]},
            "id": x_id,
            "created_timestamp": {"type": "string", "pattern": "^[0-9]{1,15}$"},
            "message_create": {
                "type": "object",
                "required": ["target", "sender_id"],
                "properties": {
                    "target": {
                        "type": "object",
                        "required": ["recipient_id"],
                        "properties": {"recipient_id": x_id},
                    },
                    "sender_id": x_id,
                    "message_data": {
                        "type": "object",
                        "properties": {
                            "text": {"type": "string"},
                            "attachment": {
                                "type": "object",
                                "properties": {
                                    "type": {"type": "string"},
                                    "media": {
                                        "type": "object",
                                        "properties": {
                                            "type": {"type": "string"},
                                            "media_url_https": {
                                                "type": "string",
                                                "pattern": "^https://",
                                                "maxLength": 2048,
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    }
    activity = {
        "type": "object",
        "description": "An Account Activity payload; only direct_message_events are read.",
        "properties": {
            "for_user_id": x_id,
            "direct_message_events": {"type": "array", "items": dm_event},
            "users": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "id": x_id,
                        "name": {"type": "string"},
                        "screen_name": {"type": "string"},
                    },
                },
            },
        },
    }
    return {
        x.PATH: {
            "get": {
                "tags": ["x"],
                "summary": "Challenge-response check (CRC) of X's Account Activity API.",
                "parameters": [
                    {
                        "name": "crc_token",
                        "in": "query",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": x.MAX_CRC_TOKEN,
                            "pattern": x.CRC_TOKEN_PATTERN,
                        },
                    }
                ],
                "responses": {
                    "200": {
                        "description": "sha256= + base64 HMAC-SHA256 of crc_token with the secret.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["response_token"],
                                    "properties": {
                                        "response_token": {
                                            "type": "string",
                                            "pattern": "^sha256=",
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "400": error_response(
                        f"crc_token missing or over {x.MAX_CRC_TOKEN} characters."
                    ),
                },
            },
            "post": {
                "tags": ["x"],
                "summary": "Account Activity events; direct messages become inbound messages.",
                "parameters": [{"$ref": "#/components/parameters/XSignature"}],
                "requestBody": {
                    "required": True,
                    BODY_LIMIT: x.MAX_BODY_BYTES,
                    "description": f"Signed JSON; at most {x.MAX_BODY_BYTES} bytes.",
                    "content": {"application/json": {"schema": activity}},
                },
                "responses": {
                    "200": {"description": "Every direct message is on Kafka (or already was)."},
                    "400": error_response("Signed, but not an Account Activity payload."),
                    "403": error_response("The signature does not hold."),
                    "413": error_response(f"The body is over {x.MAX_BODY_BYTES} bytes."),
                    "503": unavailable("Kafka or Redis did not acknowledge in time"),
                },
            },
        }
    }


def _chat_paths() -> dict[str, Any]:
    limits = chat.Limits()
    cors = {
        name: {"schema": {"type": "string", "const": value}} for name, value in chat.CORS.items()
    }
    session = {
        "type": "object",
        "required": ["token", "visitor_id", "expires_at"],
        "properties": {
            "token": {"type": "string", "maxLength": MAX_TOKEN_CHARS},
            "visitor_id": {"type": "string"},
            "expires_at": {"type": "string", "format": "date-time"},
        },
    }
    not_configured = error_response("CHAT_SESSION_KEY is not set: chat is off.")
    static = {
        WIDGET_PATH: ("The chat widget script.", "application/javascript"),
        DEMO_PATH: ("A demo page embedding the widget.", "text/html"),
    }
    return {
        chat.SESSION_PATH: {
            "post": {
                "tags": ["chat"],
                "summary": "A new visitor's session token, or a renewed one for the same visitor.",
                "requestBody": {
                    "required": False,
                    BODY_LIMIT: chat.MAX_SESSION_BODY,
                    "description": "Empty, or the token to renew; an invalid one starts a new "
                    f"visitor. At most {chat.MAX_SESSION_BODY} bytes.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"token": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "A token (JWT, HS256) valid for CHAT_SESSION_TTL.",
                        "headers": cors,
                        "content": {"application/json": {"schema": session}},
                    },
                    "400": error_response("The body is not JSON."),
                    "413": error_response(f"The body is over {chat.MAX_SESSION_BODY} bytes."),
                    "503": not_configured,
                },
            },
            "options": {
                "tags": ["chat"],
                "summary": "CORS preflight for the widget on other origins.",
                "responses": {"204": {"description": "CORS headers.", "headers": cors}},
            },
        },
        chat.WS_PATH: {
            "get": {
                "tags": ["chat"],
                "summary": "The visitor's websocket (see x-websocket for its frames).",
                "description": "The session token is offered as the subprotocol "
                f"`{TOKEN_PREFIX}<token>` beside `{PROTOCOL}`, which the server selects; "
                "missing, invalid or over "
                f"{MAX_TOKEN_CHARS} characters: closed with {chat.CLOSE_BAD_SESSION}.",
                "parameters": [
                    {
                        "name": "token",
                        "in": "query",
                        "required": False,
                        "description": "Session token, for compatibility only: a URL reaches "
                        "access logs, the subprotocol does not.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "Id of the last reply the widget shows; not two "
                        f"unsigned 64-bit integers: closed with {chat.CLOSE_BAD_REQUEST}.",
                        "schema": {"type": "string", "default": START},
                    },
                ],
                "responses": {
                    "101": {"description": "Switching to the websocket protocol."},
                    "400": {
                        "description": "Not a websocket handshake.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "503": not_configured,
                },
                "x-websocket": {
                    "after-pattern": f"^{ENTRY_ID.pattern}$",
                    "max-frame-bytes": limits.max_frame_bytes,
                    "heartbeat-seconds": limits.heartbeat,
                    "frames-per-second": limits.rate_per_second,
                    "burst": limits.burst,
                    "sockets-per-visitor": limits.sockets_per_visitor,
                    "visitor-frame": {
                        "type": "object",
                        "required": ["type", "client_id", "text"],
                        "properties": {
                            "type": {"const": "message"},
                            "client_id": {
                                "type": "string",
                                "pattern": f"^{frames.CLIENT_ID.pattern}$",
                            },
                            "text": {"type": "string", "maxLength": frames.MAX_TEXT_CHARS},
                            "name": {"type": "string", "maxLength": frames.MAX_NAME_CHARS},
                            "email": {"type": "string", "maxLength": frames.MAX_EMAIL_CHARS},
                            "language": {
                                "type": "string",
                                "maxLength": frames.MAX_LANGUAGE_CHARS,
                                "description": "The browser's language (navigator.language): "
                                "a hint to the text's, which decides when the text cannot.",
                            },
                        },
                    },
                    "server-frames": ["ready", "ack", "error", "reply"],
                    "close-codes": {
                        str(chat.CLOSE_BAD_SESSION): "invalid or expired session",
                        str(chat.CLOSE_BAD_REQUEST): "malformed after",
                        str(chat.CLOSE_TOO_MANY_SOCKETS): "too many sockets for the visitor or "
                        "from the address (CHAT_MAX_SOCKETS_PER_IP)",
                        "1008": "flooding (rate limit exceeded repeatedly)",
                        "1009": f"frame over {limits.max_frame_bytes} bytes",
                        "1013": "slow reader",
                        "1001": "server shutting down",
                    },
                },
            }
        },
        **{
            path: {
                "get": {
                    "tags": ["chat"],
                    "summary": summary,
                    "responses": {
                        "200": {
                            "description": summary,
                            "content": {media_type: {"schema": {"type": "string"}}},
                        }
                    },
                }
            }
            for path, (summary, media_type) in static.items()
        },
    }


def _survey_paths() -> dict[str, Any]:
    def html_page(description: str, retry: bool = False) -> dict[str, Any]:
        found: dict[str, Any] = {
            "description": description,
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
        if retry:
            found["headers"] = RETRY_AFTER
        return found

    return {
        survey_answers.PATH: {
            "get": {
                "tags": ["surveys"],
                "summary": "Record the score a customer clicked in a CSAT survey email.",
                "parameters": [
                    {
                        "name": "token",
                        "in": "path",
                        "required": True,
                        "description": "The signed survey token (JWT, HS256 with SURVEY_LINK_KEY).",
                        "schema": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9_.-]+$",  # a JWT: base64url parts and dots
                            "maxLength": MAX_SURVEY_TOKEN_CHARS,
                        },
                    },
                    {
                        "name": "score",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": [str(s) for s in SCORES["nps"]]},
                        "description": "CSAT surveys ask for 1-5, NPS surveys for 0-10.",
                    },
                ],
                "responses": {
                    "200": html_page("Recorded (or recorded before): a thank-you page."),
                    "400": html_page("The score is not on the survey's scale."),
                    "403": html_page("A token we did not sign (tampered, truncated)."),
                    "404": html_page("SURVEY_LINK_KEY is not set: survey links are off."),
                    "410": html_page("The survey's answer window is over."),
                    "503": html_page(
                        "Kafka or Redis did not acknowledge in time; retry later.", retry=True
                    ),
                },
            }
        }
    }


def document() -> Document:
    """Every HTTP endpoint of ingest with every connector on (X webhook, chat)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Switchboard ingest",
            "version": "1",
            "description": "Provider webhooks and the chat widget's endpoints. Generated by "
            "services/ingest/openapi.py from the code; do not edit by hand. Before any handler, "
            "the server answers 400 to a request line or header value over "
            "SWITCHBOARD_HTTP_MAX_LINE_SIZE / SWITCHBOARD_HTTP_MAX_FIELD_SIZE or to more than "
            "128 headers. The X webhook is served only when X_CONSUMER_SECRET is set (else 404).",
        },
        "paths": {
            **_sms_paths(),
            **_x_paths(),
            **_chat_paths(),
            **_survey_paths(),
            **health_paths(),
        },
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "parameters": {
                "TwilioSignature": {
                    "name": "X-Twilio-Signature",
                    "in": "header",
                    "required": True,
                    "description": "base64 HMAC-SHA1 (TWILIO_AUTH_TOKEN) of SWITCHBOARD_PUBLIC_URL"
                    " + path + the sorted form pairs.",
                    "schema": {"type": "string"},
                },
                "XSignature": {
                    "name": x.SIGNATURE_HEADER,
                    "in": "header",
                    "required": True,
                    "description": "sha256= + base64 HMAC-SHA256 (X_CONSUMER_SECRET) of the body.",
                    "schema": {"type": "string"},
                },
            },
        },
    }
