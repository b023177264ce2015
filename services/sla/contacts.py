"""How to reach a conversation's customer, for the follow-ups the SLA service sends.

Status updates and surveys are outbound commands like an acknowledgement, so they need what
the router had when it acknowledged: the channel, the customer's address, our address and the
customer's latest message to answer. The SLA service keeps that per conversation in
``sla:contact:{conversation_id}`` (a small hash, 30 days after its last change), written from
routed conversations and agents' replies, and only for conversations that can get a follow-up:
the million clocks of the timer benchmark pay nothing for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from redis.asyncio import Redis

from libs.common.events import Channel, ConversationRouted, reply_address
from libs.common.keys import DAY, Keys
from libs.common.redis_client import as_text, load_script, transaction

CONTACT_TTL = 30 * DAY


@dataclass(frozen=True, slots=True)
class Contact:
    channel: Channel
    recipient: str
    sender: str | None
    in_reply_to: str | None
    reference: str
    thread_key: str
    agent_reply_ms: int | None
    """When an agent last replied (ms), if ever."""
    automated: str | None
    """The latest customer message was automatic (outbound refuses to answer it)."""


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class ContactStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._record_reply = redis.register_script(load_script("services.sla", "record_reply.lua"))

    async def record_routed(self, routed: ConversationRouted) -> None:
        """Remember where the conversation's latest customer message came from (nothing when
        it has no address to answer to: no follow-up can reach it)."""
        recipient = reply_address(routed.channel, routed.customer, routed.thread_key)
        if recipient is None:
            return
        key = self._keys.sla_contact(routed.conversation_id)
        async with transaction(self._redis) as pipe:
            pipe.hset(
                key,
                mapping={
                    "channel": routed.channel,
                    "recipient": recipient,
                    "sender": routed.our_address or "",
                    "in_reply_to": routed.provider_message_id or "",
                    "reference": routed.reference,
                    "thread_key": routed.thread_key,
                    "automated": routed.automated or "",
                },
            )
            pipe.expire(key, CONTACT_TTL)
            await pipe.execute()

    async def record_reply(self, conversation_id: str, at: datetime) -> None:
        await self._record_reply(
            keys=[self._keys.sla_contact(conversation_id)], args=[_ms(at), CONTACT_TTL]
        )

    async def get_many(self, conversation_ids: list[str]) -> dict[str, Contact]:
        """The contacts of those conversations that have one, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation_id in conversation_ids:
                pipe.hgetall(self._keys.sla_contact(conversation_id))
            raws = await pipe.execute()
        found = {}
        for conversation_id, raw in zip(conversation_ids, raws, strict=True):
            if not raw:
                continue
            fields = {as_text(k): as_text(v) for k, v in raw.items()}
            reply = fields.get("agent_reply")
            found[conversation_id] = Contact(
                channel=cast(Channel, fields["channel"]),  # written from a Channel
                recipient=fields["recipient"],
                sender=fields["sender"] or None,
                in_reply_to=fields["in_reply_to"] or None,
                reference=fields["reference"],
                thread_key=fields["thread_key"],
                agent_reply_ms=int(reply) if reply else None,
                automated=fields.get("automated") or None,
            )
        return found
