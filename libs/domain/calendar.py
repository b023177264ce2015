"""Business-hours calendars: is a team open, when does it open or close, and business-time
arithmetic for SLA deadlines.

The router asks "is this queue's team open now, and if not, when?"; the SLA service asks "what
instant is N minutes of business time after this message arrived?" and "how much business time
has elapsed?". Both must agree to the microsecond, so every answer comes from one model:

* A calendar is a set of half-open UTC periods ``[opens, closes)``. Each local date contributes
  the intervals of its weekly hours, unless the date is closed (a holiday from the ``holidays``
  package or an explicit closed date) or has special hours, which replace the weekly hours.
  An interval crossing midnight belongs to the date it starts on.
* A wall-clock opening or closing time happens at the *first moment the local clock reaches
  it*. That is the usual reading for an unambiguous time; a time repeated by the autumn change
  happens at its first occurrence; a time skipped by the spring change happens when the clocks
  jump (02:30 in a 02:00->03:00 gap is 03:00). This mapping is monotone, so intervals that do
  not overlap on the wall clock never overlap in real time, and no interval turns negative.
* Durations are real elapsed time: a 00:00-24:00 day is 23 h in spring and 25 h in autumn.

Instants go in as timezone-aware datetimes in any zone and come out in UTC. Internally they are
integer microseconds since the Unix epoch, so the arithmetic is exact and fast; the open periods
of each local date are computed once and cached, and every search walks those periods day by
day (never minute by minute) with a bound, so a calendar that never opens (or never closes)
raises :class:`CalendarHorizonError` instead of hanging.

Conventions where other business-hours libraries disagree (see tests/peers):

* a deadline that uses up its duration exactly at a closing instant is that closing instant;
* a zero duration returns the start instant unchanged, open or not;
* ``between(a, b) == -between(b, a)``;
* an interval whose wall-clock times are both skipped by a spring-forward gap is empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

__all__ = ["BusinessCalendar", "CalendarHorizonError", "DailyInterval"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_DAY: Final = timedelta(days=1)
_DAY_NAMES: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

#: How many consecutive local days a search for an opening (or a closing) may walk before it
#: gives up. Two years and a bit covers any yearly pattern of holidays and special hours.
SEARCH_HORIZON_DAYS: Final = 2 * 366 + 7

# Cached days per calendar; a long-running service only ever touches dates near "now", so the
# cache is simply dropped when it grows past this (recomputing a day costs microseconds).
_DAY_CACHE_LIMIT: Final = 8192

_TIME_RE: Final = re.compile(r"(\d{1,2}):(\d{2})")

# A local date's open time: (UTC microseconds at local midnight, sorted periods as
# (opens_us, closes_us) in UTC microseconds, each non-empty).
_Day = tuple[int, tuple[tuple[int, int], ...]]
_NO_SPECIAL_HOURS: Final[Mapping[date, Sequence[DailyInterval]]] = MappingProxyType({})


class CalendarHorizonError(ValueError):
    """No opening (or no closing) within :data:`SEARCH_HORIZON_DAYS` of the instant asked about.

    Raised instead of searching forever, e.g. for a calendar with no weekly hours, or a
    24/7 calendar asked for its next closing. It is a configuration problem, hence ValueError.
    """


def _parse_clock(text: str, *, allow_24: bool) -> time:
    match = _TIME_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text.strip()!r} is not a HH:MM time")
    hour, minute = int(match[1]), int(match[2])
    if allow_24 and hour == 24 and minute == 0:
        return time(0, 0)  # 24:00 as an end is midnight at the end of the day
    if hour > 23 or minute > 59:
        raise ValueError(f"{text.strip()!r} is not a valid time of day (00:00-23:59)")
    return time(hour, minute)


def _clock_text(value: time, *, end: bool = False) -> str:
    if end and value == time(0, 0):
        return "24:00"
    text = value.strftime("%H:%M")
    if value.second or value.microsecond:
        text = value.isoformat()
    return text


def _offsets_text(start: timedelta, end: timedelta) -> str:
    """``"22:00-02:00"`` from offsets since the owning day's midnight (for error messages)."""
    start_text = _clock_text((datetime.min + start).time())
    return f"{start_text}-{_clock_text((datetime.min + end % _DAY).time(), end=True)}"


def _offset(value: time) -> timedelta:
    return timedelta(
        hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond
    )


@dataclass(frozen=True, slots=True)
class DailyInterval:
    """A local wall-clock opening interval ``[start, end)`` on one day.

    ``end == time(0, 0)`` means midnight at the end of the day (24:00). ``end <= start`` means
    the interval crosses midnight; it still belongs to the day it starts on, so closing that
    day (a holiday) removes all of it, including the hours after midnight.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        for field, value in (("start", self.start), ("end", self.end)):
            if not isinstance(value, time):
                raise TypeError(f"DailyInterval.{field} must be a datetime.time, not {value!r}")
            if value.tzinfo is not None:
                # The calendar's time zone gives the times their meaning; a second zone here
                # would be ambiguous.
                raise ValueError(f"DailyInterval.{field} must be a naive local time: {value!r}")

    @classmethod
    def parse(cls, text: str) -> DailyInterval:
        """Parse ``"09:00-17:00"``, ``"22:00-02:00"`` (crosses midnight) or ``"00:00-24:00"``."""
        if not isinstance(text, str):
            raise TypeError(f"an interval must be a string like '09:00-17:00', not {text!r}")
        start_text, sep, end_text = text.partition("-")
        if not sep:
            raise ValueError(f"interval {text!r} must look like 'HH:MM-HH:MM', e.g. '09:00-17:00'")
        try:
            start = _parse_clock(start_text, allow_24=False)
            end = _parse_clock(end_text, allow_24=True)
        except ValueError as exc:
            raise ValueError(f"interval {text!r}: {exc}") from None
        return cls(start, end)

    @property
    def crosses_midnight(self) -> bool:
        return self.end != time(0, 0) and self.end <= self.start

    def offsets(self) -> tuple[timedelta, timedelta]:
        """Start and end as offsets from the local midnight of the day the interval belongs to."""
        start = _offset(self.start)
        end = _offset(self.end)
        if end <= start:  # crosses midnight, or ends at 24:00
            end += _DAY
        return start, end

    def __str__(self) -> str:
        return f"{_clock_text(self.start)}-{_clock_text(self.end, end=True)}"


def _to_us(instant: datetime) -> int:
    if not isinstance(instant, datetime):
        raise TypeError(f"expected a timezone-aware datetime, not {instant!r}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(
            f"naive datetime {instant.isoformat()} has no time zone; pass an aware one"
        )
    return (instant - _EPOCH) // _ONE_US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(0, 0, us)  # positional: measurably faster on the hot path


def _sorted_offsets(
    intervals: Sequence[DailyInterval], where: str
) -> tuple[tuple[timedelta, timedelta], ...]:
    """Intervals of one day as sorted (start, end) offsets; overlapping intervals are an error."""
    pairs: list[tuple[timedelta, timedelta, DailyInterval]] = []
    for interval in intervals:
        if not isinstance(interval, DailyInterval):
            raise TypeError(f"{where}: expected DailyInterval, not {interval!r}")
        pairs.append((*interval.offsets(), interval))
    pairs.sort(key=lambda pair: pair[0])
    for (_, prev_end, prev), (start, _, cur) in pairwise(pairs):
        if start < prev_end:
            raise ValueError(f"{where}: intervals {prev} and {cur} overlap")
    return tuple((start, end) for start, end, _ in pairs)


class BusinessCalendar:
    """Opening hours of one team in one time zone, with holidays and special dates.

    Precedence for a local date: ``special_hours`` (an empty list means closed) over
    ``closed_dates`` and country holidays over ``weekly_hours``. A date may not be both an
    explicit closed date and a special-hours date: that is a contradiction in the configuration.
    Special hours do win over a country holiday, which is how "open 10:00-14:00 on Boxing Day"
    is written.

    Searches for an opening or a closing walk at most :data:`SEARCH_HORIZON_DAYS` days and then
    raise :class:`CalendarHorizonError`; so does a calendar whose only open time lies further
    away than that.

    Not safe for concurrent use from several threads (it caches per-date results in a dict);
    one calendar per event loop is the intended use.
    """

    def __init__(
        self,
        *,
        name: str,
        timezone: str,
        weekly_hours: Mapping[int, Sequence[DailyInterval]],
        holiday_country: str | None = None,
        holiday_subdivision: str | None = None,
        closed_dates: Iterable[date] = (),
        special_hours: Mapping[date, Sequence[DailyInterval]] = _NO_SPECIAL_HOURS,
    ) -> None:
        self.name = name
        where = f"calendar {name!r}"
        try:
            self._tz: tzinfo = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"{where}: unknown time zone {timezone!r}") from None
        self.timezone = timezone

        weekly: list[tuple[tuple[timedelta, timedelta], ...]] = [() for _ in range(7)]
        for weekday, intervals in weekly_hours.items():
            if not isinstance(weekday, int) or isinstance(weekday, bool) or not 0 <= weekday <= 6:
                raise ValueError(f"{where}: weekday {weekday!r} must be 0 (Monday) .. 6 (Sunday)")
            weekly[weekday] = _sorted_offsets(intervals, f"{where}, {_DAY_NAMES[weekday]}")
        self._check_week_overlaps(weekly, where)
        self._weekly = tuple(weekly)

        self._closed_dates = frozenset(closed_dates)
        for closed in self._closed_dates:
            if not isinstance(closed, date) or isinstance(closed, datetime):
                raise TypeError(f"{where}: closed date {closed!r} must be a datetime.date")
        self._special: dict[date, tuple[tuple[timedelta, timedelta], ...]] = {}
        for day, intervals in special_hours.items():
            if not isinstance(day, date) or isinstance(day, datetime):
                raise TypeError(f"{where}: special-hours date {day!r} must be a datetime.date")
            if day in self._closed_dates:
                raise ValueError(
                    f"{where}: {day.isoformat()} is both a closed date and a special-hours date"
                )
            self._special[day] = _sorted_offsets(intervals, f"{where}, {day.isoformat()}")

        self._holidays: holidays.HolidayBase | None = None
        if holiday_country is not None:
            try:
                # years=() + expand=True: the package fills in each year on first lookup and keeps
                # it, so a calendar costs nothing for years nobody asks about.
                self._holidays = holidays.country_holidays(
                    holiday_country, subdiv=holiday_subdivision, years=(), expand=True
                )
            except NotImplementedError as exc:
                raise ValueError(f"{where}: holidays: {exc}") from None
        elif holiday_subdivision is not None:
            raise ValueError(f"{where}: holiday_subdivision needs holiday_country")

        self._always_closed = not any(self._weekly) and not any(self._special.values())
        self._days: dict[int, _Day] = {}

    @staticmethod
    def _check_week_overlaps(
        weekly: Sequence[tuple[tuple[timedelta, timedelta], ...]], where: str
    ) -> None:
        # An interval crossing midnight runs into the next weekday (Sunday into Monday); it must
        # not overlap that day's intervals either.
        for weekday in range(7):
            following = (weekday + 1) % 7
            for start, end in weekly[weekday]:
                for next_start, next_end in weekly[following]:
                    if next_start + _DAY < end:
                        raise ValueError(
                            f"{where}: {_DAY_NAMES[weekday]} {_offsets_text(start, end)} overlaps "
                            f"{_DAY_NAMES[following]} {_offsets_text(next_start, next_end)}"
                        )

    def __repr__(self) -> str:
        return f"BusinessCalendar(name={self.name!r}, timezone={self.timezone!r})"

    # ----------------------------------------------------------------- public queries

    def is_open(self, instant: datetime) -> bool:
        """Whether ``instant`` lies in an open period (closing instants are not open)."""
        t = _to_us(instant)
        return self._period_containing(t, instant.astimezone(self._tz).toordinal()) is not None

    def next_opening(self, instant: datetime) -> datetime:
        """``instant`` itself (in UTC) when open, else the start of the next open period."""
        t = _to_us(instant)
        for opens, _ in self._forward(t, instant, None):
            return _from_us(opens)
        raise AssertionError("unreachable: unbounded search raises or yields")  # pragma: no cover

    def next_closing(self, instant: datetime) -> datetime:
        """End of the open period containing ``instant``, or of the next one when closed.

        Periods that touch (Monday 00:00-24:00 then Tuesday 00:00-24:00) are one period, so
        this is when the team really stops working. At a closing instant the team is closed,
        so the answer is the following closing.
        """
        t = _to_us(instant)
        limit = t + SEARCH_HORIZON_DAYS * 86_400_000_000
        _, closing = next(self._forward(t, instant, None))
        while (following := self._period_containing(closing)) is not None:
            closing = following[1]
            if closing > limit:
                raise CalendarHorizonError(
                    f"calendar {self.name!r} stays open for more than {SEARCH_HORIZON_DAYS} days "
                    f"after {instant.isoformat()}; it has no next closing"
                )
        return _from_us(closing)

    def add(self, instant: datetime, duration: timedelta) -> datetime:
        """The instant ``duration`` of business time after ``instant`` (before it if negative).

        Closed time is skipped. A deadline using up the duration exactly at a closing instant
        is that closing instant (backwards: exactly at an opening, that opening). A zero
        duration returns ``instant`` unchanged even when closed. So for ``d > 0``,
        ``between(instant, add(instant, d)) == d``.
        """
        t = _to_us(instant)
        if not isinstance(duration, timedelta):
            raise TypeError(f"duration must be a timedelta, not {duration!r}")
        remaining = duration // _ONE_US
        if remaining > 0:
            for opens, closes in self._forward(t, instant, None):
                available = closes - opens
                if remaining <= available:
                    return _from_us(opens + remaining)
                remaining -= available
        elif remaining < 0:
            remaining = -remaining
            for opens, closes in self._backward(t, instant):
                available = closes - opens
                if remaining <= available:
                    return _from_us(closes - remaining)
                remaining -= available
        return _from_us(t)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time in ``[start, end)``; negative when ``end`` is before ``start``."""
        a, b = _to_us(start), _to_us(end)
        if b < a:
            return -self.between(end, start)
        total = 0
        if b > a:
            for opens, closes in self._forward(a, start, b):
                total += min(closes, b) - opens
        return timedelta(microseconds=total)

    def open_periods(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open periods inside ``[start, end)`` in order, clipped to it, as UTC pairs.

        Touching periods are merged into one. Lazy, so a far ``end`` costs only what is read.
        """
        a, b = _to_us(start), _to_us(end)
        pending: tuple[int, int] | None = None
        if b > a:
            for opens, closes in self._forward(a, start, b):
                if pending is not None and opens == pending[1]:
                    pending = (pending[0], closes)
                    continue
                if pending is not None:
                    yield _from_us(pending[0]), _from_us(min(pending[1], b))
                pending = (opens, closes)
        if pending is not None:
            yield _from_us(pending[0]), _from_us(min(pending[1], b))

    # ----------------------------------------------------------------- internals

    def _intervals_on(self, day: date) -> tuple[tuple[timedelta, timedelta], ...]:
        special = self._special.get(day)
        if special is not None:
            return special
        if day in self._closed_dates or (self._holidays is not None and day in self._holidays):
            return ()
        return self._weekly[day.weekday()]

    def _wall_to_us(self, wall: datetime) -> int:
        """UTC microseconds of the first moment the local clock reads ``wall`` or later."""
        us = (wall.replace(tzinfo=self._tz) - _EPOCH) // _ONE_US  # fold=0: first occurrence
        if _from_us(us).astimezone(self._tz).replace(tzinfo=None) == wall:
            return us
        # ``wall`` is skipped by a forward jump. fold=0 put it after the jump (at ``us``), fold=1
        # before it; the jump itself lies in between and is where the clock first passes
        # ``wall``. Zoneinfo does not expose transitions, so find it by bisection (rare, and
        # cached with the day).
        low = (wall.replace(tzinfo=self._tz, fold=1) - _EPOCH) // _ONE_US
        high = us
        while high - low > 1:
            middle = (low + high) // 2
            if _from_us(middle).astimezone(self._tz).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return high

    def _day(self, ordinal: int) -> _Day:
        """Local midnight and open periods of a local date, cut where yesterday's run over.

        Yesterday's intervals crossing midnight may overlap today's when special hours meet
        weekly hours; cutting them here keeps every cached period disjoint from all others,
        so the walks below never have to merge anything.
        """
        cached = self._days.get(ordinal)
        if cached is not None:
            return cached
        day = date.fromordinal(ordinal)
        midnight = datetime(day.year, day.month, day.day)
        spill = max((end for _, end in self._intervals_on(day - _DAY) if end > _DAY), default=None)
        taken = -1 if spill is None else self._wall_to_us(midnight - _DAY + spill)
        periods: list[tuple[int, int]] = []
        for start, end in self._intervals_on(day):
            opens = max(self._wall_to_us(midnight + start), taken)
            closes = self._wall_to_us(midnight + end)
            if closes > opens:  # empty when both ends fall in one spring-forward gap
                periods.append((opens, closes))
        entry = (self._wall_to_us(midnight), tuple(periods))
        if len(self._days) >= _DAY_CACHE_LIMIT:
            self._days.clear()
        self._days[ordinal] = entry
        return entry

    def _period_containing(self, t: int, ordinal: int | None = None) -> tuple[int, int] | None:
        """The cached period with ``opens <= t < closes``; ``ordinal`` is t's local date."""
        if ordinal is None:
            ordinal = _from_us(t).astimezone(self._tz).toordinal()
        # Only the previous day can reach into this one (an interval crossing midnight).
        for day in (ordinal - 1, ordinal):
            for opens, closes in self._day(day)[1]:
                if opens <= t < closes:
                    return opens, closes
        return None

    def _horizon_error(self, instant: datetime, direction: str) -> CalendarHorizonError:
        return CalendarHorizonError(
            f"calendar {self.name!r} has no open time within {SEARCH_HORIZON_DAYS} days "
            f"{direction} {instant.isoformat()}; check its weekly hours, holidays and closed dates"
        )

    def _forward(self, t: int, instant: datetime, stop: int | None) -> Iterator[tuple[int, int]]:
        """Open periods ending after ``t`` in time order, clipped to start at ``t`` or later.

        Periods are disjoint (overlaps between days are cut off) but touching ones are not
        merged. Without ``stop`` the walk gives up after :data:`SEARCH_HORIZON_DAYS` days
        without an open period; with it, the walk ends before the first period (or day) that
        starts at ``stop`` or later.
        """
        if self._always_closed:  # nothing to find: answer at once instead of walking
            if stop is None:
                raise self._horizon_error(instant, "after")
            return
        ordinal = instant.astimezone(self._tz).toordinal() - 1  # yesterday may run past midnight
        covered = t  # everything before this has been yielded or is before t
        idle_days = 0
        while True:
            day_start, periods = self._day(ordinal)
            if stop is not None:
                if day_start >= stop:
                    return
            elif idle_days > SEARCH_HORIZON_DAYS:
                raise self._horizon_error(instant, "after")
            idle_days += 1
            for opens, closes in periods:
                if closes > covered:
                    if stop is not None and opens >= stop:
                        return
                    yield max(opens, covered), closes
                    covered = closes
                    idle_days = 0
            ordinal += 1

    def _backward(self, t: int, instant: datetime) -> Iterator[tuple[int, int]]:
        """Open periods starting before ``t`` in reverse time order, clipped to end by ``t``."""
        if self._always_closed:
            raise self._horizon_error(instant, "before")
        ordinal = instant.astimezone(self._tz).toordinal()  # later days start after t
        covered = t  # everything from here on has been yielded or is after t
        idle_days = 0
        while True:
            if idle_days > SEARCH_HORIZON_DAYS:
                raise self._horizon_error(instant, "before")
            idle_days += 1
            for opens, closes in reversed(self._day(ordinal)[1]):
                if opens < covered:
                    yield opens, min(closes, covered)
                    covered = opens
                    idle_days = 0
            ordinal -= 1
