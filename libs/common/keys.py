"""Every Redis key Switchboard writes: its owner, shape and lifetime, in one module.

Keys (after the configurable prefix), as ``key`` - owner - shape - TTL:

- ``ingest:accepted:{event_id}`` - ingest - string ``pending``/``done`` - 30 s / 7 days
- ``attempts:{group}:{topic}:{partition}:{offset}`` - any consumer - failed attempts - 1 day
- ``router:seen:{inbound_event_id}`` - router - ``{conversation_id}|new|old|reopened`` - 7 days
- ``conv:thread:{thread_key}`` - router - id of the thread's conversation - none
- ``conv:{conversation_id}`` - router - hash: sequence, queue, status, times - none
- ``conv:seq`` - router - integer, source of reference numbers - none
- ``sla:due:{partition}`` - sla - zset: timer id -> due time (ms) - none
- ``sla:claimed:{partition}`` - sla - hash: timer id -> claim time, until published - none
- ``sla:clock:{conversation_id}:{metric}`` - sla - JSON clock state - 30 days
- ``outbound:send:{command_id}`` - outbound - hash: state, provider id, attempts - 7 days
"""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86_400


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "sb:"

    def ingest_accepted(self, event_id: str) -> str:
        return f"{self.prefix}ingest:accepted:{event_id}"

    def attempts(self, group: str, topic: str, partition: int, offset: int) -> str:
        return f"{self.prefix}attempts:{group}:{topic}:{partition}:{offset}"

    def router_seen(self, inbound_event_id: str) -> str:
        return f"{self.prefix}router:seen:{inbound_event_id}"

    def conversation_by_thread(self, thread_key: str) -> str:
        return f"{self.prefix}conv:thread:{thread_key}"

    def conversation(self, conversation_id: str) -> str:
        return f"{self.prefix}conv:{conversation_id}"

    def conversation_sequence(self) -> str:
        return f"{self.prefix}conv:seq"

    def sla_due(self, partition: int) -> str:
        return f"{self.prefix}sla:due:{partition}"

    def sla_claimed(self, partition: int) -> str:
        return f"{self.prefix}sla:claimed:{partition}"

    def sla_clock(self, conversation_id: str, metric: str) -> str:
        return f"{self.prefix}sla:clock:{conversation_id}:{metric}"

    def outbound_send(self, command_id: str) -> str:
        return f"{self.prefix}outbound:send:{command_id}"
