"""Chat pieces without a network: session tokens, the rate limit, frames, mailbox naming."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from libs.common.clock import fixed_clock
from libs.common.keys import Keys
from libs.common.settings import Settings
from libs.common.socket_frames import FrameError
from libs.contracts.chat_mailbox import entry_order, is_entry_id, thread_key, visitor_of
from services.ingest.chat.frames import TokenBucket, parse
from services.ingest.chat.session import InvalidSession, SessionTokens

KEY = "unit-chat-key-0123456789abcdef0123456789"
CLAIMS = {"sub": "a" * 32, "aud": "switchboard-chat", "iat": 0, "exp": 2**40}
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_token_names_its_visitor_and_renewal_keeps_it() -> None:
    tokens = SessionTokens(KEY, 60, clock=fixed_clock(NOW))
    session = tokens.issue()
    assert session.expires_at == NOW + timedelta(seconds=60)
    assert tokens.verify(session.token) == session.visitor_id
    assert tokens.issue(session.visitor_id).visitor_id == session.visitor_id
    assert session.visitor_id != tokens.issue().visitor_id
    assert tokens.verify(jwt.encode(CLAIMS, KEY)) == "a" * 32  # the cases below vary this


@pytest.mark.parametrize(
    "token",
    [
        SessionTokens(KEY, 60, clock=fixed_clock(NOW - timedelta(seconds=61))).issue().token,
        SessionTokens("other-key-0123456789abcdef0123456789ab", 60, fixed_clock(NOW)).issue().token,
        jwt.encode({**CLAIMS, "aud": "elsewhere"}, KEY),
        jwt.encode({**CLAIMS, "sub": "../../etc"}, KEY),
        jwt.encode({k: v for k, v in CLAIMS.items() if k != "exp"}, KEY),
        jwt.encode(CLAIMS, "", "none"),
    ],
    ids=["expired", "forged", "audience", "bad-subject", "no-expiry", "alg-none"],
)
def test_invalid_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidSession):
        SessionTokens(KEY, 60, clock=fixed_clock(NOW)).verify(token)


def test_short_session_keys_fail_the_start() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Settings(chat_session_key="too-short")


def test_bucket_allows_the_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take() == 0.0
    assert bucket.take() > 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"type":"message","client_id":"a","text":"   "}', "empty_text"),
        ('{"type":"message","client_id":"a","text":"hi","email":"not-mail"}', "invalid_email"),
        ('{"type":"message","client_id":"a b","text":"hi"}', "invalid_frame"),
        ('{"type":"typing","client_id":"a"}', "unknown_type"),
        ('{"type":"message","client_id":"a","text":7}', "invalid_frame"),
        ("[" * 5000, "invalid_json"),
        ("[" * 3000 + "]" * 3000, "invalid_json"),  # too deep: RecursionError in the decoder
    ],
)
def test_frames_are_refused_with_a_code(raw: str, code: str) -> None:
    with pytest.raises(FrameError) as refused:
        parse(raw)
    assert refused.value.code == code


def test_frame_fields_are_tidied() -> None:
    message = parse(
        '{"type":"message","client_id":"c-1","text":" a\\u0000b\\n ","name":" Ada \\t L ",'
        '"email":" a@b.co ","extra":1}'
    )
    assert (message.text, message.name, message.email) == ("ab", "Ada L", "a@b.co")


def test_thread_keys_and_stream_ids() -> None:
    visitor = "0123456789abcdef0123456789abcdef"
    assert visitor_of(thread_key(visitor)) == visitor
    assert visitor_of("chat:not-a-visitor") is None
    assert visitor_of("sms:+1:+2") is None
    assert entry_order("10-2") > entry_order("9-30") > entry_order("9-4")
    assert Keys("t[1]*:").chat_notify_pattern() == "t\\[1\\]\\*:chat:notify:*"


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("0-0", True),
        ("1732512000000-3", True),
        ("18446744073709551615-18446744073709551615", True),
        ("18446744073709551616-0", False),
        ("0-18446744073709551616", False),
        ("99999999999999999999-1", False),
        ("1732512000000", False),
        ("-1-0", False),
        ("1-2-3", False),
        ("\uff11-0", False),  # a fullwidth digit: int() reads it, Redis does not
    ],
)
def test_a_stream_id_is_two_unsigned_64_bit_integers(text: str, accepted: bool) -> None:
    assert is_entry_id(text) is accepted
