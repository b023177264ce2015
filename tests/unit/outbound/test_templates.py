"""Rendered replies: the promised time, escaping of customer text, SMS cost and the policy."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from libs.common.config import ClockPolicy, Config
from libs.common.events import OutboundCommand
from libs.domain.calendar import BusinessCalendar, DailyInterval
from libs.domain.deadlines import compute_deadline, describe_promise
from services.outbound.policy import refusal
from services.outbound.segments import count_segments, truncate_to_segments
from services.outbound.templates import Templates

ACK = "Thanks! Your reference is {{ reference }}. We'll reply {{ promise }}."
LA, BERLIN = "America/Los_Angeles", "Europe/Berlin"


def config(**extra: Any) -> Config:
    return Config.model_validate(
        {
            "queues": {"desk": {}},
            "rules": [],
            "templates": {
                "ack": {
                    "sms": {"en": ACK},
                    "email": {
                        "en": "Hello {{ name }},\nreference {{ reference }}.",
                        "de": "Hallo {{ name }}",
                        "de.html": "<p>Hallo <b>{{ name }}</b></p>",
                    },
                },
                "long": {"sms": {"en": "{{ body }}"}},
            },
            **extra,
        }
    )


def office(zone: str) -> BusinessCalendar:
    return BusinessCalendar(
        name="office",
        timezone=zone,
        weekly_hours={day: [DailyInterval.parse("09:00-17:00")] for day in range(5)},
        holiday_country="US" if zone == LA else "DE",
    )


def rendered_ack(zone: str, received: datetime) -> str:
    """The acknowledgement as the router parametrises it and outbound renders it."""
    calendar = office(zone)
    deadline = compute_deadline(ClockPolicy.model_validate({"within": "1h"}), received, calendar)
    params = {"reference": "SB-7K3Q9", "promise": describe_promise(deadline, received, calendar)}
    return Templates(config()).render("ack", "sms", "en", params)


@pytest.mark.parametrize(
    ("zone", "local", "promise"),
    [
        # open: the hour runs uninterrupted
        (LA, (2026, 11, 24, 10, 0), "within 1 hour"),
        (BERLIN, (2026, 11, 24, 10, 0), "within 1 hour"),
        # closing soon: 30 minutes today, 30 tomorrow morning
        (LA, (2026, 11, 24, 16, 30), "by 09:30 tomorrow, Los Angeles time"),
        (BERLIN, (2026, 11, 24, 16, 30), "by 09:30 tomorrow, Berlin time"),
        # closed: Friday night waits for Monday
        (LA, (2026, 11, 20, 20, 0), "by 10:00 on Monday, Los Angeles time"),
        (BERLIN, (2026, 11, 20, 20, 0), "by 10:00 on Monday, Berlin time"),
        # holiday: Thanksgiving (US), Christmas Day and Boxing Day (DE)
        (LA, (2026, 11, 26, 11, 0), "by 10:00 tomorrow, Los Angeles time"),
        (BERLIN, (2026, 12, 24, 16, 30), "by 09:30 on Monday, Berlin time"),
    ],
)
def test_acknowledgement_promises_the_honest_time(
    zone: str, local: tuple[int, int, int, int, int], promise: str
) -> None:
    received = datetime(*local, tzinfo=ZoneInfo(zone))
    assert rendered_ack(zone, received) == (
        f"Thanks! Your reference is SB-7K3Q9. We'll reply {promise}."
    )


def test_html_part_escapes_customer_params_and_keeps_line_breaks() -> None:
    templates = Templates(config())
    hostile = {"name": '<script>alert("x")</script> & co', "reference": "SB-1"}
    html = templates.render_html("ack", "email", "en", hostile)
    assert html == (
        "Hello &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co,<br>\nreference SB-1."
    )
    assert templates.render_html("ack", "email", "de", hostile) == (
        "<p>Hallo <b>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co</b></p>"
    )
    # the text part stays text, and the .html variant is never picked as text
    assert templates.render("ack", "email", "de", hostile).startswith("Hallo <script>")


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("", "GSM-7", 0),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # extension characters cost two septets
        ("€" * 81, "GSM-7", 2),
        ("a" * 152 + "€" + "a" * 10, "GSM-7", 2),  # the escape pair is not split
        ("a" * 152 + "€" + "a" * 153, "GSM-7", 3),
        ("ü" * 160, "GSM-7", 1),  # in the GSM alphabet
        ("ł" * 70, "UCS-2", 1),
        ("ł" * 71, "UCS-2", 2),
        ("ł" * 134, "UCS-2", 2),
        ("ł" * 135, "UCS-2", 3),
        ("a" * 69 + "😀", "UCS-2", 2),  # a surrogate pair is two code units
        ("Thanks … ", "UCS-2", 1),
    ],
)
def test_segment_counts(text: str, encoding: str, segments: int) -> None:
    cost = count_segments(text)
    assert (cost.encoding, cost.segments) == (encoding, segments)


def test_truncation_fits_the_budget_at_a_word_in_the_texts_own_encoding() -> None:
    words = "word " * 100
    cut = truncate_to_segments(words, 2)
    assert count_segments(cut).segments == 2
    assert cut.endswith("word...")
    assert words.startswith(cut[:-3])
    polish = "żółć " * 60
    cut = truncate_to_segments(polish, 1)
    assert count_segments(cut).segments == 1
    assert cut.endswith("żółć…")
    assert truncate_to_segments("short", 1) == "short"


def test_templated_sms_is_cut_at_the_configured_segments() -> None:
    templates = Templates(config(outbound={"sms_max_segments": 2}))
    text = templates.render("long", "sms", "en", {"body": "x " * 400})
    assert count_segments(text).segments == 2
    assert Templates(config()).render("long", "sms", "en", {"body": "y" * 470}).endswith("...")


def command(**fields: Any) -> OutboundCommand:
    base: dict[str, Any] = {
        "command_id": "c1",
        "kind": "auto_ack",
        "channel": "sms",
        "conversation_id": "conv",
        "reference": "SB-1",
        "recipient": "+14155550123",
    }
    return OutboundCommand(**{**base, **fields})


def test_policy_refuses_loops_and_public_social_auto_replies() -> None:
    settings = config().outbound
    mention, dm = "x:1900000000000000001", "x-dm:1001:2002"
    assert refusal(command(), settings, "sms:+14155550123") is None
    assert refusal(command(params={"automated": "auto-reply"}), settings, "email:x") is not None
    assert refusal(command(channel="social"), settings, mention) is not None
    assert refusal(command(channel="social"), settings, dm) is None  # private: not public
    assert refusal(command(channel="social", kind="agent_reply"), settings, mention) is None
    enabled = config(outbound={"social_auto_reply": True}).outbound
    assert refusal(command(channel="social"), enabled, mention) is None
