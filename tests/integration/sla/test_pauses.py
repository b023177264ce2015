"""Paused clocks, next-response policies, transfers, reopenings and reloads, table by table.

A paused clock spends nothing: resolving it reports what it used before the pause, with no
warning or breach for points that would have fallen after it. A next response is held to the
conversation's own policy unless the rule that routed the follow-up names another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from libs.common.clock import fixed_clock
from libs.common.events import ConversationRouted, RoutingExplanation, SlaEvent
from tests.integration.sla.conftest import LA, Keeper, MakeKeeper, action, kinds, routed

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=LA)  # LA and Berlin both work 09:00-17:00
M = timedelta(minutes=1)
S = timedelta(seconds=1)
RESOLUTION = "{within: 5m, warn_before: [2m]}"
CONFIG = """\
version: 1
calendars:
  la:
    timezone: America/Los_Angeles
    hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"],
            thu: ["09:00-17:00"], fri: ["09:00-17:00"]}
  berlin:
    timezone: Europe/Berlin
    hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"],
            thu: ["09:00-17:00"], fri: ["09:00-17:00"]}
queues:
  la-desk: {calendar: la}
  berlin-desk: {calendar: berlin}
sla_policies:
  same-day:
    first_response: {within: 5m, warn_before: [2m]}
    next_response: {within: 10m}
    resolution: RESOLUTION
  next-day:
    first_response: {within: 24h}
    next_response: {within: 24h, business_hours: false}
    resolution: {within: 48h}
  fast:
    next_response: {within: 1m, business_hours: false}
rules:
  - name: sms
    when: {channel: [sms]}
    then: {queue: la-desk, sla_policy: same-day}
  - name: escalated
    when: {keywords: [urgent]}
    then: {queue: la-desk, sla_policy: next-day, next_response_policy: fast}
  - name: everything-else
    then: {queue: la-desk, sla_policy: next-day}
"""


def write_config(tmp_path: Path, resolution: str = RESOLUTION) -> Path:
    path = tmp_path / "pauses.yaml"
    path.write_text(CONFIG.replace("RESOLUTION", resolution))
    return path


@pytest.fixture
def keeper(make_keeper: MakeKeeper, tmp_path: Path) -> Keeper:
    return make_keeper(write_config(tmp_path))


def opened(conversation: str, at: datetime) -> ConversationRouted:
    return routed(conversation, at, policy="same-day")


def follow_up(
    conversation: str, at: datetime, *, rule: str, policy: str, reopened: bool = False
) -> ConversationRouted:
    """A later message of the conversation, as the rules routed it (``rule`` and ``policy``
    are what they chose for it as if it were new)."""
    message = routed(conversation, at, is_new=False, reopened=reopened, policy=policy)
    explanation = RoutingExplanation(rule=rule, conditions=(), issue_type="unknown", confidence=0.0)
    return msgspec.structs.replace(message, explanation=explanation)


def only(events: list[SlaEvent], metric: str, kind: str) -> SlaEvent:
    [found] = [e for e in events if (e.metric, e.kind) == (metric, kind)]
    return found


@dataclass(frozen=True)
class PauseThenResolve:
    name: str
    paused_after: timedelta  # from MONDAY, while open
    resolved_after: timedelta  # from the pause
    events: list[tuple[str, str]]
    remaining: timedelta  # of the resolution clock when it is met


PAUSE_THEN_RESOLVE = [
    # the issue's case: 30 s of 5 minutes used, resolved 8 minutes into the pause
    PauseThenResolve(
        "early pause, resolved long after",
        paused_after=30 * S,
        resolved_after=8 * M,
        events=[("first_response", "cancelled"), ("resolution", "met")],
        remaining=4 * M + 30 * S,
    ),
    # the 2-minutes-before warning fell due before the pause: recorded (under the timer's id),
    # the breach that would have come 30 s after the pause is not
    PauseThenResolve(
        "paused after the warning",
        paused_after=4 * M + 30 * S,
        resolved_after=20 * M,
        events=[("first_response", "cancelled"), ("resolution", "warning"), ("resolution", "met")],
        remaining=30 * S,
    ),
    # paused overnight: the closed time and the pause are both not counted
    PauseThenResolve(
        "resolved the next morning",
        paused_after=M,
        resolved_after=timedelta(hours=23),
        events=[("first_response", "cancelled"), ("resolution", "met")],
        remaining=4 * M,
    ),
]


@pytest.mark.parametrize("case", PAUSE_THEN_RESOLVE, ids=lambda c: c.name)
async def test_resolving_a_paused_clock_reports_the_time_used_before_the_pause(
    keeper: Keeper, case: PauseThenResolve
) -> None:
    conversation = f"resolve-{PAUSE_THEN_RESOLVE.index(case)}"
    await keeper.feed(opened(conversation, MONDAY))
    paused_at = MONDAY + case.paused_after
    paused = await keeper.feed(action(conversation, "waiting", paused_at))
    assert kinds(paused) == [("resolution", "paused")]

    done = await keeper.feed(action(conversation, "resolve", paused_at + case.resolved_after))

    assert sorted(kinds(done)) == sorted(case.events)
    met = only(done, "resolution", "met")
    assert met.remaining_seconds == case.remaining.total_seconds()
    used = timedelta(minutes=5) - case.remaining
    assert f"paused with {span(used)} of 5m used; paused time does not count" in met.explanation
    clock = await keeper.clock(conversation, "resolution")
    assert clock is not None
    assert clock.status == "met"
    assert clock.used == used


def span(delta: timedelta) -> str:
    minutes, seconds = divmod(int(delta.total_seconds()), 60)
    return (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else "")


@dataclass(frozen=True)
class PauseThenResume:
    name: str
    used: timedelta  # before the pause
    paused_at: datetime
    resumed_at: datetime
    deadline: datetime  # of the resumed clock: where its breach falls


PAUSE_THEN_RESUME = [
    PauseThenResume(
        "within the day",
        used=30 * S,
        paused_at=MONDAY + 30 * S,
        resumed_at=MONDAY + 8 * M,
        deadline=MONDAY + 12 * M + 30 * S,
    ),
    # 1 minute used before 17:00, the customer answers after closing: 4 minutes from opening
    PauseThenResume(
        "across a closing time",
        used=M,
        paused_at=datetime(2026, 11, 23, 16, 56, tzinfo=LA),
        resumed_at=datetime(2026, 11, 23, 19, 0, 30, tzinfo=LA),
        deadline=datetime(2026, 11, 24, 9, 4, tzinfo=LA),
    ),
    # 2 minutes used, resumed 50 s before closing: 2m10s are left for Tuesday, and the
    # deadline is rounded up to the minute a promise would name
    PauseThenResume(
        "resumed just before closing",
        used=2 * M,
        paused_at=datetime(2026, 11, 23, 16, 30, tzinfo=LA),
        resumed_at=datetime(2026, 11, 23, 16, 59, 10, tzinfo=LA),
        deadline=datetime(2026, 11, 24, 9, 3, tzinfo=LA),
    ),
]


@pytest.mark.parametrize("case", PAUSE_THEN_RESUME, ids=lambda c: c.name)
async def test_a_resumed_clock_breaches_at_its_resumed_deadline(
    keeper: Keeper, case: PauseThenResume
) -> None:
    conversation = f"resume-{PAUSE_THEN_RESUME.index(case)}"
    await keeper.feed(opened(conversation, case.paused_at - case.used))
    await keeper.feed(action(conversation, "waiting", case.paused_at))
    resumed = await keeper.feed(
        follow_up(conversation, case.resumed_at, rule="sms", policy="same-day")
    )
    assert only(resumed, "resolution", "resumed").deadline == case.deadline

    late = await keeper.feed(action(conversation, "resolve", case.deadline + M))
    breach = only(late, "resolution", "breached")
    assert breach.deadline == case.deadline
    assert breach.remaining_seconds == 0
    assert ("resolution", "met") in kinds(late)


async def test_a_paused_clock_reports_where_it_would_end_if_resumed(keeper: Keeper) -> None:
    await keeper.feed(opened("report", MONDAY))
    [paused] = await keeper.feed(action("report", "waiting", MONDAY + M))
    assert paused.remaining_seconds == 240
    assert paused.deadline == MONDAY + 5 * M  # resumed at once, it ends where it would have


@dataclass(frozen=True)
class NextResponse:
    name: str
    rule: str  # the rule that routed the follow-up
    policy: str  # the policy that rule gives a new message
    held_to: str
    deadline: timedelta  # after the follow-up
    says: str


NEXT_RESPONSE = [
    NextResponse(
        "catch-all follow-up keeps the conversation's policy",
        rule="everything-else",
        policy="next-day",
        held_to="same-day",
        deadline=10 * M,
        says="policy same-day: the conversation's own, as for its first response",
    ),
    NextResponse(
        "a rule that names a next-response policy",
        rule="escalated",
        policy="next-day",
        held_to="fast",
        deadline=M,
        says="policy fast: rule escalated names it for next responses",
    ),
]


@pytest.mark.parametrize("case", NEXT_RESPONSE, ids=lambda c: c.name)
async def test_next_response_policy(keeper: Keeper, case: NextResponse) -> None:
    conversation = f"next-{NEXT_RESPONSE.index(case)}"
    await keeper.feed(opened(conversation, MONDAY))
    await keeper.reply(conversation, MONDAY + M)
    again = MONDAY + 2 * M
    events = await keeper.feed(follow_up(conversation, again, rule=case.rule, policy=case.policy))
    started = only(events, "next_response", "started")
    assert started.policy == case.held_to
    assert started.deadline == again + case.deadline
    assert started.explanation.startswith(case.says)


async def test_a_reopened_conversation_keeps_its_policy(keeper: Keeper) -> None:
    await keeper.feed(opened("reopen", MONDAY))
    await keeper.feed(action("reopen", "resolve", MONDAY + M))
    again = MONDAY + 10 * M
    events = await keeper.feed(
        follow_up("reopen", again, rule="everything-else", policy="next-day", reopened=True)
    )
    assert kinds(events) == [("resolution", "started"), ("next_response", "started")]
    assert {e.policy for e in events} == {"same-day"}
    assert only(events, "resolution", "started").deadline == again + 5 * M


async def test_a_paused_clock_transferred_to_another_calendar(keeper: Keeper) -> None:
    # Monday 09:00 in LA is 18:00 in Berlin, closed: 2 minutes used in LA, then paused
    start = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    await keeper.feed(opened("moved", start))
    await keeper.feed(action("moved", "waiting", start + 2 * M))
    moved = await keeper.feed(action("moved", "transfer", start + 30 * M, queue="berlin-desk"))
    [recomputed] = [e for e in moved if e.metric == "resolution"]
    assert recomputed.kind == "recomputed"
    assert recomputed.queue == "berlin-desk"
    assert recomputed.remaining_seconds == 180
    assert "paused with 2m of 5m used" in recomputed.explanation
    # resumed at 10:00 LA (19:00 Berlin, closed): 3 minutes from Tuesday's opening in Berlin
    resumed = await keeper.feed(
        follow_up("moved", datetime(2026, 11, 23, 10, 0, tzinfo=LA), rule="sms", policy="same-day")
    )
    assert only(resumed, "resolution", "resumed").deadline == datetime(
        2026, 11, 24, 9, 3, tzinfo=BERLIN
    )


async def test_a_reload_while_paused_changes_the_window_not_the_time_used(
    make_keeper: MakeKeeper, tmp_path: Path
) -> None:
    keeper = make_keeper(write_config(tmp_path))
    await keeper.feed(opened("reload", MONDAY))
    await keeper.feed(action("reload", "waiting", MONDAY + M))
    previous = keeper.live.current
    write_config(tmp_path, "{within: 15m, warn_before: [2m]}   # longer")
    assert await keeper.live.reload_if_changed()
    reloaded_at = MONDAY + 3 * M
    events = [
        e.data for e in await keeper.reconfigure(previous, frozenset({3}), fixed_clock(reloaded_at))
    ]
    [recomputed] = [e for e in events if isinstance(e, SlaEvent) and e.metric == "resolution"]
    assert recomputed.kind == "recomputed"
    assert recomputed.remaining_seconds == 14 * 60
    assert recomputed.deadline == reloaded_at + 14 * M
    clock = await keeper.clock("reload", "resolution")
    assert clock is not None
    assert clock.status == "paused"
    assert await keeper.timers.size(3) == 1  # the first response's; a paused clock has none
    resumed_at = MONDAY + 10 * M
    resumed = await keeper.feed(follow_up("reload", resumed_at, rule="sms", policy="same-day"))
    assert only(resumed, "resolution", "resumed").deadline == resumed_at + 14 * M
