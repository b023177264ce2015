"""Send records: a command reaches the provider at most once, even across crashes.

The record is written *before* the provider call (``in_flight``) and after it (``sent`` with
the provider's id, or ``retry`` when the provider definitely refused it). A command found
``in_flight`` was interrupted mid-call: it may or may not have gone out, so it is never sent
again blindly; it is reported ``unknown`` for a human to check. ``suppressed`` (a policy
refused it) and ``dead-lettered`` (the retry budget ran out) are final like ``sent``: a
redelivered command gets the same answer, whatever changed since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from libs.common.keys import DAY, Keys
from libs.common.redis_client import ScriptBatcher, as_text, load_script

SEND_TTL = 7 * DAY
SendState = Literal[
    "in_flight", "sent", "retry", "failed", "suppressed", "dead-lettered", "window_closed"
]
SEND_STATES: tuple[SendState, ...] = (
    "in_flight",
    "sent",
    "retry",
    "failed",
    "suppressed",
    "dead-lettered",
    "window_closed",
)


@dataclass(frozen=True, slots=True)
class SendRecord:
    state: SendState
    provider_message_id: str | None
    attempts: int
    error: str | None
    text: str | None
    """What went to the provider (sent, or refused for good), so a redelivered command's receipt
    says the same as the first one."""


class SendRecords:
    """A send's record, read and written through a :class:`ScriptBatcher`: the calls of the
    records in flight at the same moment go to Redis as one pipeline."""

    def __init__(self, redis: Redis, keys: Keys, *, scripts: ScriptBatcher | None = None) -> None:
        self._keys = keys
        self._scripts = ScriptBatcher(redis) if scripts is None else scripts
        self._begin = redis.register_script(load_script("services.outbound", "begin_send.lua"))
        self._finish = redis.register_script(load_script("services.outbound", "finish_send.lua"))

    async def get(self, command_id: str) -> SendRecord | None:
        raw = await self._scripts.command("HGETALL", self._keys.outbound_send(command_id))
        if not raw:
            return None
        fields = {as_text(k): as_text(v) for k, v in raw.items()}
        return SendRecord(
            state=_state(fields["state"]),
            provider_message_id=fields.get("provider_id") or None,
            attempts=int(fields.get("attempts", "0")),
            error=fields.get("error") or None,
            text=fields.get("text") or None,
        )

    async def begin(self, command_id: str) -> int:
        """Mark the command in flight and count the attempt; returns the attempt number."""
        key = self._keys.outbound_send(command_id)
        return int(await self._scripts.call(self._begin, [key], [SEND_TTL]))

    async def finish(
        self,
        command_id: str,
        state: SendState,
        *,
        provider_message_id: str | None = None,
        error: str | None = None,
        text: str | None = None,
    ) -> None:
        key = self._keys.outbound_send(command_id)
        args = [state, provider_message_id or "", error or "", text or "", SEND_TTL]
        await self._scripts.call(self._finish, [key], args)


def _state(value: str) -> SendState:
    for state in SEND_STATES:
        if state == value:
            return state
    raise ValueError(f"unknown send state {value!r}")
