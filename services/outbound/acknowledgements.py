"""Automatic acknowledgements counted per address (the rule is in :mod:`.policy`).

One Lua script decides over both keys, so two commands for one address never both take the
last slot. It is idempotent: a command already counted (redelivered, or retried after a crash)
is let through again. The hour is the command's own time, so a replay decides the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from redis.asyncio import Redis

from libs.common.events import OutboundCommand
from libs.common.keys import DAY, Keys
from libs.common.redis_client import as_text, load_script
from services.outbound.policy import ACKNOWLEDGEMENTS_PER_ADDRESS_HOUR

HOUR: Final = 3600
CONVERSATION_TTL: Final = 30 * DAY
HOUR_TTL: Final = 2 * HOUR  # outlives its hour, for commands that arrive a little late

_REFUSALS: Final = {
    "conversation": "the address was already acknowledged automatically in this conversation",
    "hour": f"the address got {ACKNOWLEDGEMENTS_PER_ADDRESS_HOUR} automatic acknowledgements "
    "this hour",
}


class AcknowledgementLimits:
    """Counts each automatic acknowledgement against its address before it is sent."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._keys = keys
        self._claim = redis.register_script(
            load_script("services.outbound", "claim_acknowledgement.lua")
        )

    async def refusal(self, command: OutboundCommand, at: datetime) -> str | None:
        """Why ``command`` must not go out, or ``None`` once it is counted (``at``: the
        command's time, which picks the hour)."""
        address = command.recipient.strip().lower()
        verdict = await self._claim(
            keys=[
                self._keys.outbound_acknowledged(
                    command.conversation_id, command.kind, command.channel, address
                ),
                self._keys.outbound_acknowledgements(
                    command.channel, address, int(at.timestamp()) // HOUR
                ),
            ],
            args=[
                command.command_id,
                ACKNOWLEDGEMENTS_PER_ADDRESS_HOUR,
                CONVERSATION_TTL,
                HOUR_TTL,
            ],
        )
        return _REFUSALS.get(as_text(verdict))
