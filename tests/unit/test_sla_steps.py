"""SLA steps are typed, and their text (part of every SLA event and follow-up id) is the wire
text the ids were always made of: changing it would break the dedupe of redelivered inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

from libs.common.events import SlaEvent, SlaEventKind, event_id
from services.sla.clocks import Clock
from services.sla.lifecycle import sla_event
from services.sla.steps import BREACH, SURVEY, Step, StepKind

AT = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def clock() -> Clock:
    return Clock(
        conversation_id="conv-1",
        reference="SB-1",
        queue="desk",
        channel="chat",
        thread_key="t:conv-1",
        partition=0,
        policy="fast",
        metric="resolution",
        generation=2,
        status="running",
        started_at=AT,
        segment_start=AT,
        used_seconds=0.0,
        within_seconds=3600.0,
        deadline=AT + timedelta(hours=1),
        warnings=((0, AT + timedelta(minutes=30)), (1, AT + timedelta(minutes=50))),
        business_hours=False,
        calendar=None,
        traceparent=None,
        updates=((0, AT + timedelta(minutes=40)),),
    )


def test_points_are_typed_steps_with_the_wire_text_of_before() -> None:
    points = clock().points()
    assert all(isinstance(step, Step) for step, _ in points)
    assert [str(step) for step, _ in points] == ["warning:0", "warning:1", "update:0", "breached:0"]
    assert points[-1] == (BREACH, AT + timedelta(hours=1))


def test_one_off_steps_are_their_kind_alone() -> None:
    assert str(SURVEY) == "survey"
    assert str(Step(StepKind.STARTED)) == "started"
    assert str(Step(StepKind.RECOMPUTED)) == "recomputed"


def test_event_ids_are_unchanged() -> None:
    event = sla_event(clock(), BREACH, at=AT + timedelta(hours=1), calendar=None)
    assert event.id == event_id("conv-1", "resolution", "2", "breached:0")
    assert isinstance(event.data, SlaEvent)
    assert event.data.kind == "breached"


def test_follow_ups_are_not_sla_events_and_every_other_step_is_one() -> None:
    follow_ups = {kind for kind in StepKind if Step(kind).follow_up}
    assert follow_ups == {StepKind.UPDATE, StepKind.SURVEY}
    assert {kind.value for kind in StepKind} - {k.value for k in follow_ups} == set(
        get_args(SlaEventKind)
    )
    assert all(Step(kind).event_kind == kind.value for kind in StepKind if kind not in follow_ups)
