"""What the acknowledgement promises is the instant the first-response clock enforces, for
every rule, channel and template language of the sample configuration, at any second."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from libs.common.config import build_calendars, load_config
from libs.common.events import ConversationRouted, CustomerIdentity, RoutingExplanation
from libs.domain.deadlines import compute_deadline, describe_promise
from services.outbound.templates import HTML_SUFFIX, Templates
from services.sla.lifecycle import new_clock
from services.sla.runtime import SlaRuntime

STORE = Path(__file__).parents[2] / "config" / "store.yaml"
CONFIG = load_config(STORE)
CALENDARS = build_calendars(CONFIG)
TEMPLATES = Templates(CONFIG)
START = datetime(2026, 11, 23, 0, 0, 7, tzinfo=UTC)  # a Monday; odd seconds from here on
STEP = timedelta(minutes=47, seconds=13)
INSTANTS = [START + n * STEP for n in range(8 * 24 * 60 // 47)]  # more than a week
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400}
WITHIN = re.compile(r"within (\d+) (second|minute|hour|day)s?\b")
BY = re.compile(r"by (\d\d):(\d\d) (today|tomorrow|on \w+(?: \d+ \w+)?), ([\w ]+?) time")
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

ACKNOWLEDGED = [
    (rule.name, rule.then.sla_policy, rule.then.queue)
    for rule in CONFIG.rules
    if rule.then.auto_reply == "ack" and rule.then.sla_policy is not None
]
VARIANTS = [
    (channel, language)
    for channel, by_language in CONFIG.templates["ack"].items()
    for language in by_language
    if not language.endswith(HTML_SUFFIX)
]


def promised_instant(text: str, now: datetime, zone: ZoneInfo) -> datetime:
    """The instant a rendered acknowledgement promises, read back as a customer reads it."""
    if match := WITHIN.search(text):
        return now + timedelta(seconds=int(match[1]) * UNITS[match[2]])
    match = BY.search(text)
    assert match is not None, text
    assert zone.key.endswith(match[4].replace(" ", "_")), text
    today = now.astimezone(zone).date()
    day = match[3]
    if day == "today":
        on = today
    elif day == "tomorrow":
        on = today + timedelta(days=1)
    else:
        weekday = WEEKDAYS.index(day.split()[1])
        on = next(
            today + timedelta(days=n)
            for n in range(2, 60)
            if (today + timedelta(days=n)).weekday() == weekday
            and (len(day.split()) == 2 or (today + timedelta(days=n)).day == int(day.split()[2]))
        )
    return datetime.combine(on, datetime.min.time(), zone).replace(
        hour=int(match[1]), minute=int(match[2])
    )


def routed(policy: str, queue: str, channel: str, at: datetime) -> ConversationRouted:
    return ConversationRouted(
        conversation_id="c",
        reference="SB-PROMISE",
        thread_key="t",
        channel="email" if channel == "email" else "sms" if channel == "sms" else "chat",
        queue=queue,
        priority=3,
        sla_policy=policy,
        issue_type="unknown",
        is_new=True,
        message_id="m",
        customer=CustomerIdentity(),
        text="hello",
        received_at=at,
        explanation=RoutingExplanation(rule="r", conditions=(), issue_type="unknown", confidence=0),
    )


@pytest.mark.parametrize(
    ("rule", "policy", "queue"), ACKNOWLEDGED, ids=[r[0] for r in ACKNOWLEDGED]
)
@pytest.mark.parametrize(
    ("channel", "language"), VARIANTS, ids=[f"{c}-{lang}" for c, lang in VARIANTS]
)
def test_the_promise_is_the_deadline(
    rule: str, policy: str, queue: str, channel: str, language: str
) -> None:
    runtime = SlaRuntime(config=CONFIG, calendars=CALENDARS)
    first_response = CONFIG.sla_policies[policy].first_response
    assert first_response is not None
    calendar_name = CONFIG.policy_calendar(policy, queue)
    calendar = CALENDARS[calendar_name] if calendar_name else None
    zone = ZoneInfo(calendar.timezone if calendar else "UTC")
    for at in INSTANTS:
        # what the router tells the customer
        deadline = compute_deadline(first_response, at, calendar, explained=False)
        params = {"reference": "SB-PROMISE", "queue": queue, "subject": "Order"}
        params["promise"] = describe_promise(deadline, at, calendar)
        text = TEMPLATES.render("ack", channel, language, params)
        assert params["promise"] in text, (channel, language, text)
        # what the SLA service enforces
        clock = new_clock(runtime, routed(policy, queue, channel, at), 0, "first_response", at, 1)
        assert clock is not None
        assert promised_instant(text, at, zone) == clock.deadline, (rule, at, text)


def test_a_deadline_across_closed_time_is_a_whole_minute() -> None:
    """The issue's case: a window crossing closed time that would end at hh:mm:50 ends at the
    next minute, the one the promise names."""
    [(_, policy, queue), *_] = [a for a in ACKNOWLEDGED if a[1] == "urgent-realtime"]
    calendar = CALENDARS[CONFIG.policy_calendar(policy, queue) or ""]
    first_response = CONFIG.sla_policies[policy].first_response
    assert first_response is not None
    zone = ZoneInfo(calendar.timezone)
    friday_close = datetime.combine(date(2026, 12, 4), datetime.min.time(), zone).replace(hour=18)
    at = friday_close - timedelta(minutes=2, seconds=10)  # 2m10s today, 2m50s on Saturday
    deadline = compute_deadline(first_response, at, calendar)
    assert deadline.due == datetime(2026, 12, 5, 9, 3, tzinfo=zone)
    assert describe_promise(deadline, at, calendar) == "by 09:03 tomorrow, Los Angeles time"
