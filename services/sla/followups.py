"""The messages the SLA service sends the customer itself: "we're still on it" and the survey.

- A status update falls due at an ``update_customer`` point of a running resolution clock. It
  goes out only when no agent replied since the clock started (or resumed, or was recomputed)
  nor since the previous update point: an agent's answer already told the customer we are on it.
- A survey falls due ``surveys.after`` the resolution; a reopened conversation drops it. Its
  kind (CSAT or NPS) is the queue's when it falls due, named in the ``survey_kind`` param.

Both are ``OutboundCommand``s whose ids derive from the clock, its generation and the point, so
a timer published twice (a worker died between publishing and releasing it) is one message.
"""

from __future__ import annotations

from datetime import datetime

from libs.common.config import STATUS_UPDATE_TEMPLATE, SURVEY_TEMPLATES
from libs.common.events import (
    AUTOMATED_PARAM,
    CommandKind,
    Event,
    OutboundCommand,
    SurveyKind,
    event_id,
)
from libs.contracts.surveys import KIND_PARAM
from services.sla.clocks import Clock
from services.sla.contacts import Contact
from services.sla.steps import SURVEY, Step

SOURCE = "/sla"


def replied_since_update(clock: Clock, due: datetime, contact: Contact) -> bool:
    """Whether an agent replied since the clock's segment began or its previous update point."""
    if contact.agent_reply_ms is None:
        return False
    since = max([clock.segment_start, *(at for _, at in clock.updates if at < due)])
    return contact.agent_reply_ms >= int(since.timestamp() * 1000)


def status_update(clock: Clock, step: Step, due: datetime, contact: Contact) -> Event:
    return _command(clock, "status_update", STATUS_UPDATE_TEMPLATE, step, due, contact)


def survey(clock: Clock, due: datetime, contact: Contact, kind: SurveyKind) -> Event:
    template = SURVEY_TEMPLATES[kind]
    return _command(clock, "survey", template, SURVEY, due, contact, {KIND_PARAM: kind})


def _command(
    clock: Clock,
    kind: CommandKind,
    template: str,
    step: Step,
    due: datetime,
    contact: Contact,
    extra: dict[str, str] | None = None,
) -> Event:
    command_id = event_id(clock.conversation_id, clock.metric, str(clock.generation), str(step))
    params = {"reference": contact.reference, "queue": clock.queue, **(extra or {})}
    if contact.automated:  # outbound's policy refuses it: no loop with an auto-responder
        params[AUTOMATED_PARAM] = contact.automated
    command = OutboundCommand(
        command_id=command_id,
        kind=kind,
        channel=contact.channel,
        conversation_id=clock.conversation_id,
        reference=contact.reference,
        recipient=contact.recipient,
        sender=contact.sender,
        template=template,
        params=params,
        in_reply_to=contact.in_reply_to,
    )
    return Event(id=command_id, source=SOURCE, subject=contact.thread_key, time=due, data=command)
