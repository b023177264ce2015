"""Broad-impact detection: many customers with the same problem at once become one incident.

Each message is counted under its issue type (or, when the type is unknown, a fingerprint of
its normalised text) in a sliding window of distinct customers. The first message that takes
a key over the threshold opens the incident (once: a Redis ``SET NX`` with a cool-down), and
every message of that key while the incident is open is linked to it. Inputs come from the
event (received time), so a redelivered message gets the same answer and the same ids.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from libs.common.config import IncidentSettings
from libs.common.events import event_id
from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher, load_script
from services.router.issue_types import UNKNOWN

_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class IncidentVerdict:
    incident_id: str | None
    opened_here: bool  # this message is the one that opened the incident
    key: str
    customers: int


def incident_key(issue_type: str, normalised_text: str) -> str:
    """What makes two messages "the same problem": the issue type, else the text's shape."""
    if issue_type != UNKNOWN:
        return f"type:{issue_type}"
    shape = _DIGITS.sub("#", normalised_text)[:200]
    return "text:" + hashlib.blake2b(shape.encode(), digest_size=8).hexdigest()


class IncidentDetector:
    def __init__(self, redis: Redis, keys: Keys, scripts: ScriptBatcher) -> None:
        self._redis = redis
        self._keys = keys
        self._count = redis.register_script(load_script("services.router", "count_incident.lua"))
        self._scripts = scripts

    async def observe(
        self,
        settings: IncidentSettings,
        *,
        key: str,
        customer: str,
        inbound_event_id: str,
        at: datetime,
    ) -> IncidentVerdict:
        incident_id, customers, opened_here = await self._scripts.call(
            self._count,
            keys=[self._keys.incident_window(key), self._keys.incident_active(key)],
            args=[
                customer,
                int(at.timestamp() * 1000),
                int(settings.window.total_seconds() * 1000),
                settings.threshold,
                event_id(inbound_event_id, "incident"),
                int(settings.cooldown.total_seconds() * 1000),
            ],
        )
        incident = incident_id.decode() if isinstance(incident_id, bytes) else str(incident_id)
        return IncidentVerdict(
            incident_id=incident or None,
            opened_here=bool(opened_here),
            key=key,
            customers=int(customers),
        )
