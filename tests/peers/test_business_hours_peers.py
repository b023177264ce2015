"""Run every business-hours case collected from other projects against BusinessCalendar.

The cases (tests/fixtures/peers/business_hours.json, sources in NOTICE.md beside it) are what
Chatwoot, zendesk/biz, working_hours, businesstimedelta, rickar/cal and date-fns assert. Where
those projects disagree, Switchboard picked one convention (see libs/domain/calendar.py); a
case of another convention stays in the suite as a strict xfail. Its test first checks that our
answer is what *our* convention predicts and only then raises ConventionMismatch, the one
exception the xfail accepts, so a wrong answer still fails and a changed convention XPASSes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from libs.domain.calendar import BusinessCalendar, DailyInterval

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "peers" / "business_hours.json"
DATA: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = DATA["cases"]
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
ONE_DAY = 24 * 60  # minutes


class ConventionMismatch(AssertionError):
    """The peer expects another convention's answer; ours was checked against our convention."""


# ----------------------------------------------------------------------------- calendars


def _interval(pair: Sequence[str]) -> DailyInterval:
    return DailyInterval.parse(f"{pair[0]}-{pair[1]}")


def _minutes(interval: DailyInterval) -> tuple[int, int]:
    start, end = interval.offsets()
    return int(start.total_seconds()) // 60, int(end.total_seconds()) // 60


def _from_minutes(start: int, end: int) -> DailyInterval:
    if start >= ONE_DAY:
        raise NotImplementedError("a break split an overnight interval after midnight")
    return DailyInterval(time(start // 60, start % 60), time(end % ONE_DAY // 60, end % 60))


def _minus_breaks(
    intervals: Sequence[DailyInterval], breaks: Sequence[DailyInterval]
) -> list[DailyInterval]:
    """biz breaks remove time from a date's hours; we express the result as special hours."""
    pieces = [_minutes(interval) for interval in intervals]
    for gap_start, gap_end in map(_minutes, breaks):
        pieces = [
            piece
            for start, end in pieces
            for piece in ((start, min(end, gap_start)), (max(start, gap_end), end))
            if piece[1] > piece[0]
        ]
    return [_from_minutes(start, end) for start, end in sorted(pieces)]


@cache
def calendar(name: str) -> BusinessCalendar:
    spec = DATA["calendars"][name]
    weekly = {WEEKDAYS[day]: [_interval(p) for p in pairs] for day, pairs in spec["weekly"].items()}
    closed = {date.fromisoformat(day) for day in spec["holidays"]}
    special: dict[date, list[DailyInterval]] = {
        date.fromisoformat(day): [_interval(p) for p in pairs]
        for day, pairs in spec["date_overrides"].items()
    }
    # In biz a holiday closes the date whatever shifts it has; our calendar refuses a date that
    # is both closed and specially opened, so resolve it the peer's way here.
    special = {day: hours for day, hours in special.items() if day not in closed}
    for day_text, pairs in spec["breaks"].items():
        day = date.fromisoformat(day_text)
        if day in closed:
            continue
        hours = special.get(day, weekly.get(day.weekday(), []))
        special[day] = _minus_breaks(hours, [_interval(p) for p in pairs])
    return BusinessCalendar(
        name=name,
        timezone=spec["time_zone"],
        weekly_hours=weekly,
        closed_dates=closed,
        special_hours=special,
    )


# ----------------------------------------------------------------------------- helpers


def instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, f"peer instant {text!r} has no offset"
    return value


def assert_utc(value: datetime) -> None:
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0), f"{value!r} is not in UTC"


def mismatch(case: dict[str, Any], ours: object, theirs: object) -> ConventionMismatch:
    return ConventionMismatch(f"{case['id']}: ours {ours!r}, peer {theirs!r}")


def duration(case: dict[str, Any]) -> timedelta:
    return timedelta(seconds=case["duration_seconds"])


# ----------------------------------------------------------------------------- conventions
#
# Each entry: the reason shown for the xfail, and a check that runs instead of the plain
# comparison. The check asserts our convention's answer, then raises ConventionMismatch.

Check = Callable[[BusinessCalendar, dict[str, Any]], None]


def _lands_on_close(cal: BusinessCalendar, case: dict[str, Any]) -> None:
    ours = cal.add(instant(case["start"]), duration(case))
    expected = instant(case["expected"])
    assert not cal.is_open(ours), "our deadline should be a closing instant"
    assert cal.is_open(ours - timedelta(microseconds=1))
    assert cal.next_opening(ours) == expected, "peer answer should be the next opening"
    raise mismatch(case, ours, expected)


def _zero_duration(cal: BusinessCalendar, case: dict[str, Any]) -> None:
    start = instant(case["start"])
    sign = -1 if case["kind"] == "deadline_backward" else 1
    ours = cal.add(start, sign * duration(case))
    assert ours == start
    assert not cal.is_open(start)
    raise mismatch(case, ours, instant(case["expected"]))


def _reversed_zero(cal: BusinessCalendar, case: dict[str, Any]) -> None:
    start, end = instant(case["start"]), instant(case["end"])
    ours = cal.between(start, end)
    assert end < start
    assert ours == -cal.between(end, start)
    assert ours < timedelta(0)
    raise mismatch(case, ours, timedelta(seconds=case["expected_seconds"]))


def _wall_clock_day(cal: BusinessCalendar, case: dict[str, Any]) -> None:
    ours = cal.between(instant(case["start"]), instant(case["end"]))
    expected = timedelta(seconds=case["expected_seconds"])
    assert ours == expected + timedelta(hours=1), "the autumn day should count 25 real hours"
    raise mismatch(case, ours, expected)


def _rounded(cal: BusinessCalendar, case: dict[str, Any]) -> None:
    if case["kind"] == "business_time_between":
        ours_between = cal.between(instant(case["start"]), instant(case["end"]))
        assert round(ours_between.total_seconds()) == case["expected_seconds"]
        raise mismatch(case, ours_between, case["expected_seconds"])
    ours = cal.add(instant(case["start"]), duration(case))
    expected = instant(case["expected"])
    assert abs(ours - expected) <= timedelta(milliseconds=500)
    raise mismatch(case, ours, expected)


def _gap_interval(cal: BusinessCalendar, case: dict[str, Any]) -> None:
    origin = instant(case["origin"])
    ours = list(islice(cal.open_periods(origin, origin + timedelta(days=14)), 2))
    jump = datetime(2006, 4, 2, 10, tzinfo=UTC)  # 02:00 PST -> 03:00 PDT
    assert ours[0] == (jump, jump + timedelta(minutes=15)), "02:30-03:15 should be 03:00-03:15 PDT"
    assert [ours[1]] == [tuple(map(instant, pair)) for pair in case["expected"]]
    raise mismatch(case, ours[:1], case["expected"])


CONVENTIONS: Mapping[str, tuple[str, Check] | None] = {
    # Ours: these run as plain comparisons.
    "close": None,
    "zero_returns_input": None,
    "end_exclusive": None,
    "reversed_interval_negative": None,
    "reversed_interval_absolute": None,  # forward cases; the flipped call is checked as negative
    # Not ours.
    "next_open": (
        "convention: a deadline landing exactly on closing time is the closing instant "
        "(biz >= 1.8.2 and the date-fns PR give the next opening)",
        _lands_on_close,
    ),
    "zero_returns_next_open": (
        "convention: a zero duration returns the start unchanged (biz moves it to the next "
        "opening)",
        _zero_duration,
    ),
    "reversed_interval_zero": (
        "convention: business time between with end before start is negative, "
        "between(a, b) == -between(b, a) (biz returns 0)",
        _reversed_zero,
    ),
    "wall_clock_day_length": (
        "convention: real elapsed time, the 25-hour autumn DST day counts 25 h "
        "(working_hours counts its wall-clock 24 h)",
        _wall_clock_day,
    ),
    "result_rounded_to_second": (
        "convention: results are exact to the microsecond (working_hours rounds to whole seconds)",
        _rounded,
    ),
    "nonexistent_local_interval_empty": (
        "convention: a wall-clock time skipped by spring-forward happens when the clocks jump, "
        "so 02:30-03:15 on a 02:00->03:00 day is open 03:00-03:15 (biz drops the interval)",
        _gap_interval,
    ),
}

# A zero duration is our "start unchanged" convention even where the file did not tag it
# (biz-zero-before-outside-hours expects biz's previous closing).
ZERO_DURATION_BACKWARD = (
    "convention: a zero duration returns the start unchanged (biz moves it back to the "
    "previous closing)",
    _zero_duration,
)


def convention_of(case: dict[str, Any]) -> tuple[str, Check] | None:
    foreign = []
    for tag in case.get("conventions", []):
        if tag not in CONVENTIONS:
            raise KeyError(f"{case['id']}: unknown convention {tag!r}; decide it in this file")
        if CONVENTIONS[tag] is not None:
            foreign.append(CONVENTIONS[tag])
    if (
        case["kind"].startswith("deadline")
        and case["duration_seconds"] == 0
        and instant(case["expected"]) != instant(case["start"])
        and not foreign
    ):
        foreign.append(ZERO_DURATION_BACKWARD)
    assert len(foreign) <= 1, f"{case['id']}: several foreign conventions"
    return foreign[0] if foreign else None


def params() -> Iterator[Any]:
    for case in CASES:
        foreign = convention_of(case)
        marks = []
        if foreign is not None:
            marks.append(
                pytest.mark.xfail(strict=True, raises=ConventionMismatch, reason=foreign[0])
            )
        yield pytest.param(case, id=case["id"], marks=marks)


# ----------------------------------------------------------------------------- the test


def run_case(cal: BusinessCalendar, case: dict[str, Any]) -> None:
    kind = case["kind"]
    if kind == "is_open":
        assert cal.is_open(instant(case["at"])) is case["expected"]
    elif kind in ("deadline", "deadline_backward"):
        sign = -1 if kind == "deadline_backward" else 1
        ours = cal.add(instant(case["start"]), sign * duration(case))
        assert_utc(ours)
        assert ours == instant(case["expected"])
    elif kind == "business_time_between":
        start, end = instant(case["start"]), instant(case["end"])
        expected = timedelta(seconds=case["expected_seconds"])
        assert cal.between(start, end) == expected
        # Our convention for the flipped arguments (rickar/cal would give the absolute value).
        assert cal.between(end, start) == -expected
    elif kind in ("next_open", "next_close"):
        at = instant(case["at"])
        ours = cal.next_opening(at) if kind == "next_open" else cal.next_closing(at)
        assert_utc(ours)
        assert ours == instant(case["expected"])
    elif kind == "open_periods":
        origin = instant(case["origin"])
        if "until" in case:
            periods = list(cal.open_periods(origin, instant(case["until"])))
        else:
            far = origin + timedelta(days=400)
            periods = list(islice(cal.open_periods(origin, far), case["count"]))
        for opens, closes in periods:
            assert_utc(opens)
            assert_utc(closes)
        assert periods == [tuple(map(instant, pair)) for pair in case["expected"]]
    else:
        raise AssertionError(f"unknown case kind {kind!r}")


@pytest.mark.parametrize("case", list(params()))
def test_peer_case(case: dict[str, Any]) -> None:
    cal = calendar(case["calendar"])
    foreign = convention_of(case)
    if foreign is not None:
        foreign[1](cal, case)
    else:
        run_case(cal, case)
