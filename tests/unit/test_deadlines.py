"""Deadlines in business hours, their warnings, explanations and the promise to the customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from libs.common.config import ClockPolicy
from libs.domain.calendar import BusinessCalendar, DailyInterval
from libs.domain.deadlines import compute_deadline, describe_promise

BERLIN = ZoneInfo("Europe/Berlin")
LA = ZoneInfo("America/Los_Angeles")
NINE_TO_FIVE = [DailyInterval.parse("09:00-17:00")]


def office(zone: str, country: str | None = None) -> BusinessCalendar:
    return BusinessCalendar(
        name="office",
        timezone=zone,
        weekly_hours=dict.fromkeys(range(5), NINE_TO_FIVE),
        holiday_country=country,
    )


def clock(within: str, *warn: str | float, business_hours: bool = True) -> ClockPolicy:
    return ClockPolicy.model_validate(
        {"within": within, "warn_before": list(warn), "business_hours": business_hours}
    )


def test_friday_afternoon_hour_ends_monday_morning_and_says_why() -> None:
    friday = datetime(2026, 11, 20, 16, 30, tzinfo=BERLIN)
    deadline = compute_deadline(clock("1h", "15m"), friday, office("Europe/Berlin"))
    assert deadline.due == datetime(2026, 11, 23, 9, 30, tzinfo=BERLIN)
    assert deadline.warnings == ((0, datetime(2026, 11, 23, 9, 15, tzinfo=BERLIN)),)
    assert "closed periods skipped: Fri 2026-11-20 17:00 to Mon 2026-11-23 09:00" in (
        deadline.explanation
    )


def test_fraction_warnings_count_business_time() -> None:
    start = datetime(2026, 11, 20, 15, 0, tzinfo=BERLIN)  # 2h left on Friday
    deadline = compute_deadline(clock("4h", 0.75), start, office("Europe/Berlin"))
    assert deadline.warnings == ((0, datetime(2026, 11, 23, 10, 0, tzinfo=BERLIN)),)


def test_a_resumed_window_spends_only_what_is_left_and_skips_passed_warnings() -> None:
    monday = datetime(2026, 11, 23, 16, 0, tzinfo=BERLIN)
    deadline = compute_deadline(
        clock("4h", "3h", "30m"), monday, office("Europe/Berlin"), used=timedelta(hours=2)
    )
    assert deadline.due == datetime(2026, 11, 24, 10, 0, tzinfo=BERLIN)
    # "3h before" fell at 1h into the window, already passed; "30m before" is still ahead
    assert deadline.warnings == ((1, datetime(2026, 11, 24, 9, 30, tzinfo=BERLIN)),)
    assert deadline.explanation.startswith("2h of 4h already used; 2h of business hours")


def test_plain_time_ignores_the_calendar() -> None:
    start = datetime(2026, 11, 20, 16, 30, tzinfo=BERLIN)
    deadline = compute_deadline(
        clock("1h", "15m", business_hours=False), start, office("Europe/Berlin")
    )
    assert deadline.due == start + timedelta(hours=1)
    assert not deadline.business_hours


def test_deadline_on_a_holiday_moves_to_the_next_working_day() -> None:
    wednesday = datetime(2026, 11, 25, 16, 30, tzinfo=LA)  # Thanksgiving follows
    deadline = compute_deadline(clock("1h"), wednesday, office("America/Los_Angeles", "US"))
    assert deadline.due == datetime(2026, 11, 27, 9, 30, tzinfo=LA)


def test_promise_is_a_window_when_open_and_a_time_when_closed() -> None:
    calendar = office("America/Los_Angeles", "US")
    open_now = datetime(2026, 11, 24, 10, 0, tzinfo=LA)
    assert (
        describe_promise(compute_deadline(clock("1h"), open_now, calendar), open_now, calendar)
        == "within 1 hour"
    )
    evening = datetime(2026, 11, 23, 20, 0, tzinfo=LA)
    assert (
        describe_promise(compute_deadline(clock("1h"), evening, calendar), evening, calendar)
        == "by 10:00 tomorrow, Los Angeles time"
    )
    closing_soon = datetime(2026, 11, 24, 16, 45, tzinfo=LA)
    assert (
        describe_promise(
            compute_deadline(clock("1h"), closing_soon, calendar), closing_soon, calendar
        )
        == "by 09:45 tomorrow, Los Angeles time"
    )
    before_holiday = datetime(2026, 11, 25, 18, 0, tzinfo=LA)
    assert (
        describe_promise(
            compute_deadline(clock("1h"), before_holiday, calendar), before_holiday, calendar
        )
        == "by 10:00 on Friday, Los Angeles time"
    )
    utc_evening = evening.astimezone(UTC)
    assert (
        describe_promise(
            compute_deadline(clock("5m"), utc_evening, calendar), utc_evening, calendar
        )
        == "by 09:05 tomorrow, Los Angeles time"
    )
