"""Kafka topic and consumer group names: one place, so a prefix change reaches every service."""

from __future__ import annotations

from dataclasses import dataclass

from libs.common.events import (
    AgentAction,
    ConversationRouted,
    DeliveryReport,
    EventData,
    IncidentDetected,
    MessageReceived,
    OutboundCommand,
    OutboundReceipt,
    SlaEvent,
    SurveyAnswered,
)

DEFAULT_PREFIX = "switchboard."


def consumer_group(group: str, topic_prefix: str) -> str:
    """``group``, named as the default deployment names it (``switchboard-router``), as the
    deployment with ``topic_prefix`` names it: the prefix's stem in place of ``switchboard``.

    A group's members rebalance together whatever topics each of them reads, so two deployments
    (or two tests) that share a broker and differ by topic prefix must not share a group: one
    stopping or joining would stall the other's partitions. The default prefix keeps the names
    (and the KEDA triggers that name them) as they were."""
    default_stem = DEFAULT_PREFIX.rstrip(".")
    service = group.removeprefix(f"{default_stem}-")
    if service == group:
        raise ValueError(f"consumer group {group!r} does not start with {default_stem}-")
    return f"{topic_prefix.rstrip('.-_') or default_stem}-{service}"


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of the event stream, each ``prefix + suffix`` (blueprint defaults)."""

    inbound: str
    routed: str
    agent_actions: str
    outbound_commands: str
    outbound_status: str
    sla_events: str
    deadletter: str

    @classmethod
    def with_prefix(cls, prefix: str = DEFAULT_PREFIX) -> Topics:
        return cls(
            inbound=f"{prefix}messages.inbound",
            routed=f"{prefix}conversations.routed",
            agent_actions=f"{prefix}agent.actions",
            outbound_commands=f"{prefix}outbound.commands",
            outbound_status=f"{prefix}outbound.status",
            sla_events=f"{prefix}sla.events",
            deadletter=f"{prefix}deadletter",
        )

    def all(self) -> tuple[str, ...]:
        return (
            self.inbound,
            self.routed,
            self.agent_actions,
            self.outbound_commands,
            self.outbound_status,
            self.sla_events,
            self.deadletter,
        )

    def events(self) -> dict[str, tuple[type[EventData], ...]]:
        """The event types each topic carries: the one map the AsyncAPI document, the README's
        event table and the webhooks' subscriptions read. The dead-letter topic is not in it:
        it holds copies of records of any topic that a consumer could not process."""
        return {
            self.inbound: (MessageReceived, SurveyAnswered),
            self.routed: (ConversationRouted, IncidentDetected),
            self.agent_actions: (AgentAction,),
            self.outbound_commands: (OutboundCommand,),
            self.outbound_status: (OutboundReceipt, DeliveryReport),
            self.sla_events: (SlaEvent,),
        }

    def carrying(self, event_type: str) -> str | None:
        """The topic events of a CloudEvents type are published on (None: no such type)."""
        return next(
            (
                topic
                for topic, types in self.events().items()
                for t in types
                if event_type == t.TYPE
            ),
            None,
        )


PARTITIONS = 8
"""Partitions per topic in the dev stack; every topic has the same count, so one thread key
lands on the same partition number everywhere (the SLA timer shards rely on it)."""
