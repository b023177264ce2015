"""BusinessCalendar: worked examples, validation, and properties against a minute-by-minute oracle.

The examples are computed by hand (the comment on each says how). The property tests build
small random calendars around DST changes and year ends and compare every query with a
brute-force oracle that knows nothing of the implementation: it converts each UTC minute of a
window to local wall time and marks the minute open when it lies between the first minutes at
which the local clock reaches an interval's start and its end.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.domain.calendar import (
    SEARCH_HORIZON_DAYS,
    BusinessCalendar,
    CalendarHorizonError,
    DailyInterval,
)

H = timedelta(hours=1)
M = timedelta(minutes=1)


def iv(*texts: str) -> list[DailyInterval]:
    return [DailyInterval.parse(text) for text in texts]


def at(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None
    return value


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


WEEKDAYS = range(5)

CALENDARS: dict[str, BusinessCalendar] = {
    # Split shift in Munich with Bavarian holidays (Epiphany, Corpus Christi are BY-only).
    "munich": BusinessCalendar(
        name="munich",
        timezone="Europe/Berlin",
        weekly_hours={d: iv("09:00-12:00", "13:00-17:00") for d in WEEKDAYS},
        holiday_country="DE",
        holiday_subdivision="BY",
    ),
    "germany": BusinessCalendar(
        name="germany",
        timezone="Europe/Berlin",
        weekly_hours={d: iv("09:00-12:00", "13:00-17:00") for d in WEEKDAYS},
        holiday_country="DE",
    ),
    # Night shift Mon-Sat 22:00-06:00 in Los Angeles; Friday 2025-07-04 explicitly closed.
    "night_la": BusinessCalendar(
        name="night_la",
        timezone="America/Los_Angeles",
        weekly_hours={d: iv("22:00-06:00") for d in range(6)},
        closed_dates=[date(2025, 7, 4)],
    ),
    "new_york": BusinessCalendar(
        name="new_york",
        timezone="America/New_York",
        weekly_hours={d: iv("08:00-20:00") for d in WEEKDAYS},
        holiday_country="US",
    ),
    "berlin_24_7": BusinessCalendar(
        name="berlin_24_7",
        timezone="Europe/Berlin",
        weekly_hours={d: iv("00:00-24:00") for d in range(7)},
    ),
    "la_24_7": BusinessCalendar(
        name="la_24_7",
        timezone="America/Los_Angeles",
        weekly_hours={d: iv("00:00-24:00") for d in range(7)},
    ),
    # Sunday intervals around the 02:00-03:00 change in Berlin.
    "berlin_dst_sunday": BusinessCalendar(
        name="berlin_dst_sunday",
        timezone="Europe/Berlin",
        weekly_hours={6: iv("01:00-02:30", "02:40-02:50", "03:00-04:00")},
    ),
    # A London shop over the holidays: GB bank holidays, an explicit closed date, special hours
    # (including on Boxing Day, a bank holiday, and an empty list closing a Monday).
    "london_shop": BusinessCalendar(
        name="london_shop",
        timezone="Europe/London",
        weekly_hours={d: iv("09:00-18:00") for d in range(6)},
        holiday_country="GB",
        closed_dates=[date(2025, 12, 24)],
        special_hours={
            date(2025, 12, 26): iv("10:00-14:00"),
            date(2025, 12, 31): iv("09:00-13:00"),
            date(2026, 1, 3): iv("10:00-12:00"),
            date(2026, 1, 5): [],
        },
    ),
}


EXAMPLES = [
    # --- several intervals a day
    ("munich", "is_open", (at("2025-03-28T11:59+01:00"),), True),
    ("munich", "is_open", (at("2025-03-28T12:00+01:00"),), False),  # lunch: end is exclusive
    ("munich", "is_open", (at("2025-03-28T17:00+01:00"),), False),
    ("munich", "next_opening", (at("2025-03-28T12:10+01:00"),), utc("2025-03-28T12:00")),
    ("munich", "next_closing", (at("2025-03-28T09:00+01:00"),), utc("2025-03-28T11:00")),
    # Fri 16-17 CET (1 h), weekend with the spring change, Mon 09:00 CEST + 1 h = 08:00Z.
    ("munich", "add", (at("2025-03-28T16:00+01:00"), 2 * H), utc("2025-03-31T08:00")),
    # 7 h Friday + 7 h Monday.
    ("munich", "between", (at("2025-03-28T09:00+01:00"), at("2025-03-31T17:00+02:00")), 14 * H),
    # --- holidays from the package: Epiphany is Bavarian only; Corpus Christi 2025-06-19.
    ("munich", "is_open", (at("2025-01-06T10:00+01:00"),), False),
    ("germany", "is_open", (at("2025-01-06T10:00+01:00"),), True),
    ("munich", "next_opening", (at("2025-01-06T10:00+01:00"),), utc("2025-01-07T08:00")),
    # Wed 16:30-17:00, Thu holiday, Fri 09:00 CEST + 30 min = 07:30Z.
    ("munich", "add", (at("2025-06-18T16:30+02:00"), H), utc("2025-06-20T07:30")),
    # Year end: Wed 16-17, New Year's Day 2026 (next year's holidays), Fri 09:00 + 1 h.
    ("munich", "add", (at("2025-12-31T16:00+01:00"), 2 * H), utc("2026-01-02T09:00")),
    ("munich", "add", (at("2026-01-02T10:00+01:00"), -2 * H), utc("2025-12-31T15:00")),
    ("new_york", "next_opening", (at("2025-07-04T09:00-04:00"),), utc("2025-07-07T12:00")),
    ("new_york", "is_open", (at("2026-07-03T10:00-04:00"),), False),  # July 4 observed
    # Thanksgiving 2025-11-27: Wed 19-20 + Fri 08-09.
    ("new_york", "between", (at("2025-11-26T19:00-05:00"), at("2025-11-28T09:00-05:00")), 2 * H),
    # --- overnight shift: Saturday's 22:00-06:00 runs into Sunday, Sunday has none.
    ("night_la", "is_open", (at("2025-03-09T03:30-07:00"),), True),
    ("night_la", "is_open", (at("2025-03-10T03:00-07:00"),), False),
    ("night_la", "next_closing", (at("2025-03-08T23:00-08:00"),), utc("2025-03-09T13:00")),
    # Spring: Sat 22:00 PST (06:00Z) to Sun 06:00 PDT (13:00Z) is 7 real hours; autumn 9.
    ("night_la", "between", (at("2025-03-08T21:00-08:00"), at("2025-03-09T12:00-07:00")), 7 * H),
    ("night_la", "between", (at("2025-11-01T21:00-07:00"), at("2025-11-02T12:00-08:00")), 9 * H),
    ("night_la", "add", (at("2025-03-08T22:00-08:00"), 7 * H), utc("2025-03-09T13:00")),
    # A closed date removes the interval starting that day, not the one running into it.
    ("night_la", "is_open", (at("2025-07-04T02:00-07:00"),), True),
    ("night_la", "is_open", (at("2025-07-05T02:00-07:00"),), False),
    # Thu's interval until 06:00 (1 h), Fri closed, Sat 22:00 PDT + 1 h = Sun 06:00Z.
    ("night_la", "add", (at("2025-07-04T05:00-07:00"), 2 * H), utc("2025-07-06T06:00")),
    # --- DST day lengths, real elapsed time.
    (
        "berlin_24_7",
        "between",
        (at("2025-03-30T00:00+01:00"), at("2025-03-31T00:00+02:00")),
        23 * H,
    ),
    (
        "berlin_24_7",
        "between",
        (at("2025-10-26T00:00+02:00"), at("2025-10-27T00:00+01:00")),
        25 * H,
    ),
    ("berlin_24_7", "add", (at("2025-10-26T00:00+02:00"), 25 * H), utc("2025-10-26T23:00")),
    ("la_24_7", "between", (at("2025-03-09T00:00-08:00"), at("2025-03-10T00:00-07:00")), 23 * H),
    ("la_24_7", "between", (at("2025-11-02T00:00-07:00"), at("2025-11-03T00:00-08:00")), 25 * H),
    ("la_24_7", "add", (at("2025-11-02T01:30-07:00"), H), utc("2025-11-02T09:30")),  # 01:30 PST
    # Spring in Berlin: 01:00-02:30 is 00:00Z to the jump at 01:00Z; 02:40-02:50 never happens;
    # 03:00-04:00 CEST follows without a gap, so there is one period.
    ("berlin_dst_sunday", "between", (utc("2025-03-29T12:00"), utc("2025-03-30T12:00")), 2 * H),
    (
        "berlin_dst_sunday",
        "open_periods",
        (utc("2025-03-29T12:00"), utc("2025-03-30T12:00")),
        [(utc("2025-03-30T00:00"), utc("2025-03-30T02:00"))],
    ),
    # Autumn: times in the repeated hour happen at their first occurrence (CEST).
    ("berlin_dst_sunday", "is_open", (at("2025-10-26T02:45+02:00"),), True),
    ("berlin_dst_sunday", "is_open", (at("2025-10-26T02:45+01:00"),), False),
    (
        "berlin_dst_sunday",
        "open_periods",
        (utc("2025-10-25T12:00"), utc("2025-10-26T12:00")),
        [
            (utc("2025-10-25T23:00"), utc("2025-10-26T00:30")),
            (utc("2025-10-26T00:40"), utc("2025-10-26T00:50")),
            (utc("2025-10-26T02:00"), utc("2025-10-26T03:00")),
        ],
    ),
    # --- explicit closed date, package holiday, special hours, year end (London is UTC+0).
    # Tue 17-18, Dec 24 closed, Christmas, Boxing Day special 10:00 + 1 h.
    ("london_shop", "add", (utc("2025-12-23T17:00"), 2 * H), utc("2025-12-26T11:00")),
    ("london_shop", "is_open", (utc("2025-12-26T09:30"),), False),
    ("london_shop", "is_open", (utc("2025-12-26T12:00"),), True),
    ("london_shop", "add", (utc("2025-12-31T12:30"), H), utc("2026-01-02T09:30")),
    ("london_shop", "between", (utc("2025-12-31T00:00"), utc("2026-01-04T00:00")), 15 * H),
    ("london_shop", "between", (utc("2026-01-04T00:00"), utc("2025-12-31T00:00")), -15 * H),
    ("london_shop", "add", (utc("2026-01-02T10:00"), -2 * H), utc("2025-12-31T12:00")),
    ("london_shop", "next_opening", (utc("2026-01-04T12:00"),), utc("2026-01-06T09:00")),
    # Landing exactly on closing time is the closing instant; at a closing, the next closing.
    ("london_shop", "add", (utc("2025-12-31T09:00"), 4 * H), utc("2025-12-31T13:00")),
    ("london_shop", "add", (utc("2025-12-31T13:00"), -4 * H), utc("2025-12-31T09:00")),
    ("london_shop", "next_closing", (utc("2025-12-31T10:00"),), utc("2025-12-31T13:00")),
    ("london_shop", "next_closing", (utc("2025-12-31T13:00"),), utc("2026-01-02T18:00")),
    ("london_shop", "add", (utc("2025-12-25T10:00"), timedelta(0)), utc("2025-12-25T10:00")),
    # Input in another zone, output in UTC.
    ("london_shop", "add", (at("2025-12-23T12:00-05:00"), 2 * H), utc("2025-12-26T11:00")),
]


@pytest.mark.parametrize(
    ("calendar", "method", "args", "expected"),
    EXAMPLES,
    ids=[f"{c}-{m}-{i}" for i, (c, m, _, _) in enumerate(EXAMPLES)],
)
def test_examples(calendar: str, method: str, args: tuple[object, ...], expected: object) -> None:
    result = getattr(CALENDARS[calendar], method)(*args)
    if method == "open_periods":
        result = list(result)
    assert result == expected
    for value in result if isinstance(result, list) else [result]:
        for instant in value if isinstance(value, tuple) else [value]:
            if isinstance(instant, datetime):
                assert instant.tzinfo is UTC


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("09:00-17:00", time(9), time(17)),
        ("22:00-02:00", time(22), time(2)),
        ("00:00-24:00", time(0), time(0)),
        (" 7:30 - 12:15 ", time(7, 30), time(12, 15)),
    ],
)
def test_parse(text: str, start: time, end: time) -> None:
    assert DailyInterval.parse(text) == DailyInterval(start, end)


def test_interval_offsets_and_text() -> None:
    assert DailyInterval.parse("22:00-02:00").offsets() == (22 * H, 26 * H)
    assert DailyInterval.parse("00:00-24:00").offsets() == (timedelta(0), 24 * H)
    assert DailyInterval.parse("09:00-09:00").offsets() == (9 * H, 33 * H)
    assert str(DailyInterval.parse("00:00-24:00")) == "00:00-24:00"
    assert DailyInterval.parse("22:00-02:00").crosses_midnight
    assert not DailyInterval.parse("22:00-24:00").crosses_midnight


@pytest.mark.parametrize(
    "text", ["", "09:00", "9-17", "09:00-25:00", "24:00-02:00", "09:60-10:00", "ab:cd-10:00"]
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="interval"):
        DailyInterval.parse(text)


def make(**overrides: Any) -> BusinessCalendar:
    options: dict[str, Any] = {
        "name": "t",
        "timezone": "UTC",
        "weekly_hours": {0: iv("09:00-17:00")},
    }
    return BusinessCalendar(**(options | overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"weekly_hours": {0: iv("09:00-12:00", "11:00-13:00")}}, "Monday: intervals 09:00-12:00"),
        (
            {"weekly_hours": {0: iv("22:00-02:00"), 1: iv("01:00-09:00")}},
            "Monday 22:00-02:00 overlaps",
        ),
        ({"weekly_hours": {6: iv("22:00-02:00"), 0: iv("01:00-09:00")}}, "Sunday 22:00-02:00"),
        ({"weekly_hours": {7: iv("09:00-17:00")}}, "weekday 7"),
        ({"special_hours": {date(2025, 1, 1): iv("09:00-12:00", "10:00-11:00")}}, "2025-01-01"),
        (
            {"closed_dates": [date(2025, 1, 1)], "special_hours": {date(2025, 1, 1): []}},
            "both a closed date and a special-hours date",
        ),
        ({"holiday_country": "XX"}, "holidays"),
        ({"holiday_country": "DE", "holiday_subdivision": "ZZ"}, "holidays"),
        ({"holiday_subdivision": "BY"}, "needs holiday_country"),
    ],
)
def test_rejects_bad_configuration(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**overrides)


def test_touching_intervals_across_midnight_are_allowed() -> None:
    cal = make(weekly_hours={0: iv("22:00-02:00"), 1: iv("02:00-09:00")})
    monday = utc("2025-01-06T00:00")
    assert cal.between(monday, monday + 2 * timedelta(days=1)) == 11 * H
    assert cal.next_closing(utc("2025-01-06T23:00")) == utc("2025-01-07T09:00")


@pytest.mark.parametrize("method", ["is_open", "next_opening", "next_closing"])
def test_naive_instant_is_rejected(method: str) -> None:
    with pytest.raises(ValueError, match="naive"):
        getattr(make(), method)(datetime(2025, 1, 6, 10))


def test_naive_instant_is_rejected_by_arithmetic() -> None:
    cal, naive = make(), datetime(2025, 1, 6, 10)
    with pytest.raises(ValueError, match="naive"):
        cal.add(naive, H)
    with pytest.raises(ValueError, match="naive"):
        cal.between(utc("2025-01-06T10:00"), naive)
    with pytest.raises(ValueError, match="naive"):
        list(cal.open_periods(naive, utc("2025-01-07T10:00")))


def test_never_open_calendar_raises_instead_of_hanging() -> None:
    cal = make(weekly_hours={})
    start = utc("2025-01-06T10:00")
    with pytest.raises(CalendarHorizonError, match="no open time"):
        cal.next_opening(start)
    with pytest.raises(CalendarHorizonError, match="no open time"):
        cal.add(start, H)
    with pytest.raises(CalendarHorizonError, match="no open time"):
        cal.add(start, -H)
    assert not cal.is_open(start)
    assert cal.between(start, start + timedelta(days=3650)) == timedelta(0)
    assert cal.add(start, timedelta(0)) == start


def test_open_time_beyond_the_horizon_is_not_found() -> None:
    # Only open on one special date three years ahead: the bounded search gives up first.
    far = date(2028, 6, 1)
    cal = make(weekly_hours={}, special_hours={far: iv("09:00-17:00")})
    with pytest.raises(CalendarHorizonError):
        cal.next_opening(utc("2025-06-01T00:00"))
    assert cal.next_opening(utc("2028-01-01T00:00")) == utc("2028-06-01T09:00")
    assert SEARCH_HORIZON_DAYS > 2 * 365


def test_holidays_every_day_raise_instead_of_hanging() -> None:
    every_day = [date(2025, 1, 1) + timedelta(days=n) for n in range(3 * 366)]
    cal = make(weekly_hours={d: iv("09:00-17:00") for d in range(7)}, closed_dates=every_day)
    with pytest.raises(CalendarHorizonError):
        cal.add(utc("2025-01-01T00:00"), H)


def test_always_open_calendar_has_no_next_closing() -> None:
    cal = CALENDARS["berlin_24_7"]
    assert cal.is_open(utc("2025-06-01T00:00"))
    assert cal.add(utc("2025-06-01T00:00"), 1000 * H) == utc("2025-07-12T16:00")
    with pytest.raises(CalendarHorizonError, match="no next closing"):
        cal.next_closing(utc("2025-06-01T00:00"))


def test_adjacent_days_form_one_period() -> None:
    cal = make(weekly_hours={d: iv("00:00-24:00") for d in range(5)})
    monday = utc("2025-01-06T10:00")
    assert cal.next_closing(monday) == utc("2025-01-11T00:00")
    assert list(cal.open_periods(monday, utc("2025-01-20T00:00"))) == [
        (monday, utc("2025-01-11T00:00")),
        (utc("2025-01-13T00:00"), utc("2025-01-18T00:00")),
    ]


def test_special_hours_crossing_into_weekly_hours_are_counted_once() -> None:
    # Tuesday's special 22:00-10:00 runs into Wednesday's 09:00-17:00: the hour they share
    # counts once.
    cal = make(
        weekly_hours={d: iv("09:00-17:00") for d in range(5)},
        special_hours={date(2025, 1, 7): iv("22:00-10:00")},
    )
    tuesday = utc("2025-01-07T00:00")
    assert cal.between(tuesday, tuesday + 2 * timedelta(days=1)) == 12 * H + 7 * H
    assert cal.add(utc("2025-01-08T08:00"), -H) == utc("2025-01-08T07:00")
    assert cal.add(utc("2025-01-08T16:00"), -12 * H) == utc("2025-01-08T04:00")


def test_hours_inside_yesterdays_special_hours_are_counted_once() -> None:
    # Wednesday's weekly 01:00-05:00 lies wholly inside Tuesday's special 22:00-10:00.
    cal = make(
        weekly_hours={d: iv("01:00-05:00") for d in range(7)},
        special_hours={date(2025, 1, 7): iv("22:00-10:00")},
    )
    assert cal.add(utc("2025-01-08T12:00"), -12 * H) == utc("2025-01-07T22:00")
    assert cal.add(utc("2025-01-07T22:00"), 12 * H) == utc("2025-01-08T10:00")
    assert cal.next_closing(utc("2025-01-08T02:00")) == utc("2025-01-08T10:00")
    assert list(cal.open_periods(utc("2025-01-07T00:00"), utc("2025-01-09T00:00"))) == [
        (utc("2025-01-07T22:00"), utc("2025-01-08T10:00"))
    ]


def test_microseconds_are_exact() -> None:
    cal = make()
    start = utc("2025-01-06T16:59:59.999999")
    assert cal.add(start, timedelta(microseconds=2)) == utc("2025-01-13T09:00:00.000001")
    assert cal.between(start, utc("2025-01-13T09:00:00.000001")) == timedelta(microseconds=2)


# ----------------------------------------------------------------------------- oracle


ZONES = {
    "UTC": [date(2024, 12, 31), date(2024, 2, 29)],
    "Europe/Berlin": [date(2025, 3, 30), date(2025, 10, 26), date(2025, 12, 31)],
    "America/Los_Angeles": [date(2025, 3, 9), date(2025, 11, 2)],
    # 30-minute DST at 02:00.
    "Australia/Lord_Howe": [date(2025, 4, 6), date(2025, 10, 5)],
    # Changes at local midnight: 24:00 is repeated (April) or skipped (September).
    "America/Santiago": [date(2025, 4, 5), date(2025, 9, 6)],
}
WINDOW_DAYS_BEFORE = 3
WINDOW_DAYS = 9
QUARTER_HOUR_POINTS = st.integers(0, 7 * 96 - 1).map(lambda q: q * 15)
MINUTE_POINTS = st.integers(0, 7 * 1440 - 1)
Minutes = tuple[tuple[int, int], ...]  # (start, end) minutes from the owning day's midnight


@dataclass(frozen=True)
class Spec:
    zone: str
    anchor: date
    weekly: Mapping[int, Minutes]
    closed: frozenset[date]
    special: Mapping[date, Minutes]

    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(
            name="random",
            timezone=self.zone,
            weekly_hours={
                day: [to_interval(p) for p in pairs] for day, pairs in self.weekly.items()
            },
            closed_dates=self.closed,
            special_hours={
                day: [to_interval(p) for p in pairs] for day, pairs in self.special.items()
            },
        )

    def intervals_on(self, day: date) -> Minutes:
        if day in self.special:
            return self.special[day]
        if day in self.closed:
            return ()
        return self.weekly.get(day.weekday(), ())


def to_interval(pair: tuple[int, int]) -> DailyInterval:
    start, end = pair
    return DailyInterval(time(start // 60, start % 60), time(end % 1440 // 60, end % 60))


def pairs_from_points(points: Sequence[int], period: int, rotate: bool) -> list[tuple[int, int]]:
    """Non-overlapping intervals from sorted cut points on a circle of ``period`` minutes."""
    points = sorted(set(points))
    if len(points) % 2:
        points = points[:-1]
    if rotate and points:
        points = [*points[1:], points[0] + period]
    return [(a, min(b, a + 1440)) for a, b in zip(points[::2], points[1::2], strict=True)]


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    zone = draw(st.sampled_from(sorted(ZONES)))
    anchor = draw(st.sampled_from(ZONES[zone]))
    points = draw(st.lists(st.one_of(QUARTER_HOUR_POINTS, MINUTE_POINTS), max_size=12))
    weekly: dict[int, list[tuple[int, int]]] = {}
    for start, end in pairs_from_points(points, 7 * 1440, draw(st.booleans())):
        weekly.setdefault(start // 1440, []).append((start % 1440, end - start // 1440 * 1440))
    window = [anchor + timedelta(days=n) for n in range(-WINDOW_DAYS_BEFORE, WINDOW_DAYS - 3)]
    special_days = draw(st.lists(st.sampled_from(window), max_size=3, unique=True))
    special: dict[date, Minutes] = {}
    for day in special_days:
        day_points = draw(st.lists(st.integers(0, 2 * 96 - 1).map(lambda q: q * 15), max_size=6))
        special[day] = tuple(p for p in pairs_from_points(day_points, 0, False) if p[0] < 1440)
    closed = draw(st.lists(st.sampled_from(window), max_size=3, unique=True))
    return Spec(
        zone=zone,
        anchor=anchor,
        weekly={day: tuple(pairs) for day, pairs in weekly.items()},
        closed=frozenset(closed) - set(special),
        special=special,
    )


@functools.cache
def wall_clock(zone: str, anchor: date) -> tuple[datetime, list[datetime]]:
    """The window's first UTC minute, and for each minute the latest wall time seen so far.

    The first minute at which the clock reads >= w is the first index where this running
    maximum reaches w (the clock goes back in autumn). Shared by all examples of a zone.
    """
    tz = ZoneInfo(zone)
    start = datetime.combine(anchor, time(), UTC) - timedelta(days=WINDOW_DAYS_BEFORE)
    minutes = range(WINDOW_DAYS * 1440)
    walls = [(start + n * M).astimezone(tz).replace(tzinfo=None) for n in minutes]
    return start, list(itertools.accumulate(walls, max))


class Oracle:
    """Open/closed for each UTC minute of a window, found by brute force."""

    def __init__(self, spec: Spec) -> None:
        self.start, reached = wall_clock(spec.zone, spec.anchor)
        self.size = len(reached)
        self.open = bytearray(self.size)
        day = reached[0].date() - timedelta(days=1)
        while day <= reached[-1].date():
            midnight = datetime.combine(day, time())
            for start, end in spec.intervals_on(day):
                first = bisect.bisect_left(reached, midnight + start * M)
                last = bisect.bisect_left(reached, midnight + end * M)
                self.open[first:last] = b"\x01" * max(0, last - first)
            day += timedelta(days=1)
        self.counts = [0, *itertools.accumulate(self.open)]  # open minutes before index n

    def instant(self, index: int) -> datetime:
        return self.start + index * M

    def next_opening(self, i: int) -> int | None:
        found = self.open.find(1, i)
        return None if found < 0 else found

    def next_closing(self, i: int) -> int | None:
        opening = self.next_opening(i)
        if opening is None:
            return None
        found = self.open.find(0, opening)
        return None if found < 0 else found

    def add(self, i: int, minutes: int) -> int | None:
        if minutes == 0:
            return i
        if minutes > 0:  # the minute in which the last of them is used, ended
            target = self.counts[i] + minutes
            n = bisect.bisect_left(self.counts, target)
            return None if n > self.size else n
        # Back: the latest n with exactly |minutes| open minutes in [n, i), an open minute.
        target = self.counts[i] + minutes
        return None if target < 0 else bisect.bisect_right(self.counts, target) - 1

    def between(self, i: int, j: int) -> int:
        return self.counts[j] - self.counts[i]

    def periods(self, i: int, j: int) -> list[tuple[int, int]]:
        runs, n = [], i
        while n < j:
            opening = self.open.find(1, n, j)
            if opening < 0:
                break
            closing = self.open.find(0, opening, j)
            closing = j if closing < 0 else closing
            runs.append((opening, closing))
            n = closing
        return runs


PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
INDEX = st.integers(0, WINDOW_DAYS * 1440 - 1)


@PROPERTY_SETTINGS
@given(spec=specs(), points=st.lists(INDEX, min_size=1, max_size=8))
def test_queries_match_the_minute_oracle(spec: Spec, points: list[int]) -> None:
    cal, oracle = spec.calendar(), Oracle(spec)
    end_of_window = oracle.instant(oracle.size)
    for i in points:
        moment = oracle.instant(i)
        assert cal.is_open(moment) == bool(oracle.open[i]), moment
        expected_opening = oracle.next_opening(i)
        expected_closing = oracle.next_closing(i)
        try:
            opening = cal.next_opening(moment)
        except CalendarHorizonError:
            assert expected_opening is None
            continue
        if expected_opening is None:
            assert opening >= end_of_window
        else:
            assert opening == oracle.instant(expected_opening), moment
        if expected_closing is not None:
            assert cal.next_closing(moment) == oracle.instant(expected_closing), moment
    first, last = min(points), max(points) + 1
    ours = list(cal.open_periods(oracle.instant(first), oracle.instant(last)))
    assert ours == [(oracle.instant(a), oracle.instant(b)) for a, b in oracle.periods(first, last)]


@PROPERTY_SETTINGS
@given(
    spec=specs(),
    i=INDEX,
    j=INDEX,
    minutes=st.integers(-3 * 1440, 3 * 1440) | st.integers(-120, 120),
)
def test_arithmetic_matches_the_minute_oracle(spec: Spec, i: int, j: int, minutes: int) -> None:
    cal, oracle = spec.calendar(), Oracle(spec)
    start, end = oracle.instant(i), oracle.instant(j)

    between = cal.between(start, end)
    sign = 1 if j >= i else -1
    assert between == sign * oracle.between(min(i, j), max(i, j)) * M
    assert cal.between(end, start) == -between

    expected = oracle.add(i, minutes)
    try:
        deadline = cal.add(start, minutes * M)
    except CalendarHorizonError:
        assert expected is None
        return
    assert deadline.tzinfo is UTC
    if expected is not None:
        assert deadline == oracle.instant(expected)
    elif minutes > 0:
        assert deadline > oracle.instant(oracle.size)
    else:
        assert deadline < oracle.start

    # add and between are inverse; going back and forth lands on the next opening.
    assert cal.between(start, deadline) == minutes * M
    if minutes > 0:
        assert cal.add(deadline, -minutes * M) == cal.next_opening(start)
    # Splitting an interval adds up.
    middle = oracle.instant((i + j) // 2)
    assert cal.between(start, middle) + cal.between(middle, end) == between
    # The business time up to ``end`` used from ``start`` ends at or before ``end``, with no
    # business time left between.
    if j >= i:
        reached = cal.add(start, between)
        assert reached <= end
        assert cal.between(reached, end) == timedelta(0)
