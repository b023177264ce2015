"""The one message a new conversation gets on receipt: the acknowledgement, or the after-hours
notice in its place.

The notice replaces the acknowledgement instead of following it: it carries the same
reference and promise (the instant the first-response clock enforces) and says what was done
because the rule's queue was closed, in the param ``after_hours`` (``moved`` when the message
followed the sun to an open desk, ``held`` when it waits for the opening). So the customer gets
one message, and the acknowledgement and the notice cannot contradict each other. The notice
goes out only when the conversation is where the after-hours decision put it (a returning
customer's open queue or an incident can place it elsewhere) and has a text for the channel.
"""

from __future__ import annotations

from collections.abc import Mapping

from libs.common.config import Config
from libs.common.events import (
    CommandKind,
    MessageReceived,
    OutboundCommand,
    event_id,
    reply_address,
)
from libs.domain.calendar import BusinessCalendar
from libs.domain.deadlines import compute_deadline, describe_promise
from services.router.conversation_state import Placement
from services.router.rules import Decision


def acknowledgement(
    config: Config,
    calendars: Mapping[str, BusinessCalendar],
    message: MessageReceived,
    decision: Decision,
    placement: Placement,
    inbound_event_id: str,
) -> OutboundCommand | None:
    """The command for a new conversation's receipt message, or None when none is due."""
    recipient = reply_address(message.channel, message.customer, message.thread_key)
    if recipient is None:
        return None
    params = {"reference": placement.reference, "queue": placement.queue}
    if message.subject:
        params["subject"] = message.subject
    if decision.sla_policy is not None:
        clock = config.sla_policies[decision.sla_policy].first_response
        calendar_name = config.policy_calendar(decision.sla_policy, placement.queue)
        calendar = calendars.get(calendar_name) if calendar_name else None
        if clock is not None:
            deadline = compute_deadline(clock, message.received_at, calendar, explained=False)
            params["deadline"] = deadline.due.isoformat()
            params["promise"] = describe_promise(deadline, message.received_at, calendar)
    kind: CommandKind
    notice = decision.after_hours_notify
    if (
        decision.after_hours is not None
        and notice is not None
        and placement.queue == decision.queue
        and message.channel in config.templates.get(notice, {})
    ):
        kind, template = "after_hours", notice
        params["after_hours"] = decision.after_hours.value
    elif decision.auto_reply is not None:
        kind, template = "auto_ack", decision.auto_reply
    else:
        return None
    return OutboundCommand(
        command_id=event_id(inbound_event_id, kind),
        kind=kind,
        channel=message.channel,
        conversation_id=placement.conversation_id,
        reference=placement.reference,
        recipient=recipient,
        sender=message.recipient,
        template=template,
        params=params,
        in_reply_to=message.provider_message_id,
    )
