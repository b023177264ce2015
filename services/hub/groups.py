"""Assignment groups: which Redis slot holds a queue's push-assignment state.

An assignment decision reads a queue's waiting conversations and the load of every agent who
serves it, and an agent may serve several queues, so all of that must sit in one hash slot
(``{hub:<group>}`` in :mod:`libs.common.keys`). A queue's ``assignment_group`` names its slot:
queues and the agents who take their offers, like a TaskRouter workspace. Groups spread over a
cluster's primaries; an agent takes offers in one group only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from libs.common.config.schema import DEFAULT_ASSIGNMENT_GROUP, QueueConfig
from services.hub.actions import Rejected


class AssignmentGroups:
    """The group of a queue, and of an agent's queues, from the live configuration's queues."""

    def __init__(self, queues: Callable[[], Mapping[str, QueueConfig]]) -> None:
        self._queues = queues

    def of_queue(self, queue: str) -> str:
        """The queue's group (the default one for a queue the configuration no longer has)."""
        queue_config = self._queues().get(queue)
        return queue_config.assignment_group if queue_config else DEFAULT_ASSIGNMENT_GROUP

    def of_agent(self, queues: Iterable[str]) -> str:
        """The one group of an agent's queues (:class:`Rejected` when they span several)."""
        groups = sorted({self.of_queue(queue) for queue in queues})
        if len(groups) > 1:
            raise Rejected(
                "forbidden",
                f"the token's queues are in several assignment groups ({', '.join(groups)}): "
                "an agent takes offers in one",
            )
        return groups[0] if groups else DEFAULT_ASSIGNMENT_GROUP
