"""SLA deadlines: when a promised window ends, when to warn, and how that was computed.

The router uses this to promise a time in the acknowledgement and the SLA service to run the
clocks, so both always agree. A window in business hours only counts time the calendar is open:
a 1-hour window that starts Friday 16:30 in 09:00-17:00 hours ends Monday 09:30.

The promise and the clock are one instant. A window that runs uninterrupted is promised as a
length ("within 5 minutes") and ends exactly that long after its start; a window that crosses
closed time is promised as a wall-clock minute ("by 09:45 tomorrow"), so its deadline is
rounded up to the whole minute: the customer is never told a time earlier than the one the
clock enforces, and the clock never runs past the time the customer was told.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from libs.domain.calendar import BusinessCalendar

_MINUTE = timedelta(minutes=1)


class ClockWindow(Protocol):
    """What a deadline needs of an SLA policy's clock (the configuration's ``ClockPolicy``)."""

    @property
    def within(self) -> timedelta: ...
    @property
    def business_hours(self) -> bool: ...
    @property
    def warn_before(self) -> Sequence[timedelta | float]: ...


@dataclass(frozen=True, slots=True)
class Deadline:
    start: datetime
    due: datetime
    window: timedelta
    business_hours: bool
    warnings: tuple[tuple[int, datetime], ...]
    """(index in the policy's ``warn_before``, instant), in time order; points already
    passed when a clock resumes are left out."""
    explanation: str

    def remaining(self, now: datetime, calendar: BusinessCalendar | None) -> timedelta:
        """Time left before the deadline, counted the way the window is counted."""
        if self.business_hours and calendar is not None:
            return calendar.between(now, self.due)
        return self.due - now


def warning_offsets(clock: ClockWindow) -> list[timedelta]:
    """How far into the window each warning point falls (``15m`` before, or ``0.75`` of it)."""
    offsets = []
    for point in clock.warn_before:
        elapsed = clock.within * point if isinstance(point, float) else clock.within - point
        offsets.append(max(elapsed, timedelta(0)))
    return offsets


def compute_deadline(
    clock: ClockWindow,
    start: datetime,
    calendar: BusinessCalendar | None,
    *,
    used: timedelta = timedelta(0),
    explained: bool = True,
) -> Deadline:
    """The deadline of a window counted from ``start``, of which ``used`` was already spent
    (a clock resumed after a pause, or recomputed after a transfer), with its warnings."""
    business = clock.business_hours and calendar is not None
    counted = calendar if business else None

    def after(elapsed: timedelta) -> datetime:
        return counted.add(start, elapsed) if counted is not None else start + elapsed

    due = due_after(start, max(clock.within - used, timedelta(0)), counted)
    warnings = sorted(
        (after(offset - used), index)
        for index, offset in enumerate(warning_offsets(clock))
        if offset > used or (offset == used == timedelta(0))
    )
    if not explained:  # the router only promises the time; the SLA service keeps the why
        return Deadline(start, due, clock.within, business, (), "")
    return Deadline(
        start=start,
        due=due,
        window=clock.within,
        business_hours=business,
        warnings=tuple((index, at) for at, index in warnings),
        explanation=explain_window(clock.within, used, start, due, counted),
    )


def due_after(start: datetime, left: timedelta, calendar: BusinessCalendar | None) -> datetime:
    """When ``left`` of a window counted from ``start`` runs out (in business time when a
    calendar is given): exact when it runs uninterrupted, else rounded up to the whole minute
    that the promise names."""
    due = calendar.add(start, left) if calendar is not None else start + left
    if due - start <= left:
        return due
    past = timedelta(seconds=due.second, microseconds=due.microsecond)
    return due if not past else due - past + _MINUTE


def explain_window(
    within: timedelta,
    used: timedelta,
    start: datetime,
    due: datetime,
    calendar: BusinessCalendar | None,
) -> str:
    """The explanation of a window of which ``used`` was spent before ``start``; a pure
    function of its inputs, so whoever stores a deadline can rebuild it instead of keeping it."""
    explanation = explain(within - used, start, due, calendar)
    if used:
        explanation = f"{_span(used)} of {_span(within)} already used; {explanation}"
    return explanation


def explain_paused(within: timedelta, used: timedelta) -> str:
    """Why a paused clock has no running deadline (and what a clock met while paused used)."""
    return f"paused with {_span(used)} of {_span(within)} used; paused time does not count"


def explain(
    window: timedelta, start: datetime, due: datetime, calendar: BusinessCalendar | None
) -> str:
    """Why the deadline is where it is, in words an agent or an auditor can check."""
    if calendar is None:
        return f"{_span(window)} in plain time from {start.isoformat()} ends {due.isoformat()}"
    zone = ZoneInfo(calendar.timezone)

    def local(instant: datetime) -> str:
        return instant.astimezone(zone).strftime("%a %Y-%m-%d %H:%M")

    skipped = []
    previous_end = start
    for opened, closed in calendar.open_periods(start, due):
        if opened > previous_end:
            skipped.append(f"{local(previous_end)} to {local(opened)}")
        previous_end = closed
    text = (
        f"{_span(window)} of business hours ({calendar.name}, {calendar.timezone}) "
        f"from {local(start)} ends {local(due)}"
    )
    if skipped:
        text += "; closed periods skipped: " + ", ".join(skipped)
    return text


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def describe_promise(deadline: Deadline, now: datetime, calendar: BusinessCalendar | None) -> str:
    """The honest promise for an acknowledgement: "within 1 hour" when the window runs
    uninterrupted from now, else the local time it ends ("by 10:00 tomorrow, Los Angeles time")."""
    if deadline.due - now <= deadline.window:
        return f"within {_words(deadline.window)}"
    zone = ZoneInfo(calendar.timezone) if calendar else ZoneInfo("UTC")
    local_due, local_now = deadline.due.astimezone(zone), now.astimezone(zone)
    days = (local_due.date() - local_now.date()).days
    if days == 0:
        day = "today"
    elif days == 1:
        day = "tomorrow"
    elif days < 7:
        day = f"on {local_due:%A}"
    else:
        day = f"on {local_due:%A} {local_due.day} {local_due:%B}"
    place = zone.key.rpartition("/")[2].replace("_", " ")
    return f"by {local_due:%H:%M} {day}, {place} time"


def _words(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"  # not a whole minute: rounding down would promise too much
