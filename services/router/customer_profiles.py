"""Customer profiles in Redis: one profile per person across channels.

A profile is found by any verified identity a message carries (email address, phone number,
social account id; see :class:`~libs.common.events.CustomerIdentity`); when one message
carries identities of two profiles, they merge into the older one (the other keeps a
``merged_into`` pointer so its remaining identities still resolve). The profile keeps the
name, tier, first and last contact, a capped contact history, and the open conversations with
their queues, so a returning customer lands where their case already is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from libs.common.events import CustomerIdentity, event_id
from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher, as_text, load_script


def tier_for(customer: CustomerIdentity, tiers: Mapping[str, Sequence[str]]) -> str | None:
    """The configured tier whose sender list names this customer (address, @domain or phone);
    an unverified identity has none."""
    if not customer.verified:
        return None
    email = (customer.email or "").lower()
    domain = email.rpartition("@")[2] if email else ""
    for tier, senders in tiers.items():
        for sender in senders:
            sender = sender.lower()
            if sender in (email, customer.phone) or (domain and sender == f"@{domain}"):
                return tier
    return None


@dataclass(frozen=True, slots=True)
class Profile:
    customer_id: str
    tier: str | None
    open_conversations: Mapping[str, tuple[str, int]]  # conversation id -> (queue, last ms)

    def latest_open_queue(self) -> str | None:
        """The queue of the open conversation with the most recent contact."""
        if not self.open_conversations:
            return None
        return max(self.open_conversations.values(), key=lambda item: item[1])[0]


def identities(customer: CustomerIdentity) -> dict[str, str]:
    """The verified identities a message carries, by kind (email lowercased, phone in E.164):
    unverified ones never find or merge a profile."""
    found: dict[str, str] = {}
    if not customer.verified:
        return found
    if customer.email:
        found["email"] = customer.email.lower()
    if customer.phone:
        found["phone"] = customer.phone
    if customer.social_id:
        found["social"] = customer.social_id
    return found


class CustomerStore:
    def __init__(self, redis: Redis, keys: Keys, scripts: ScriptBatcher) -> None:
        self._redis = redis
        self._keys = keys
        self._identify = redis.register_script(
            load_script("services.router", "identify_customer.lua")
        )
        self._scripts = scripts

    async def identify(
        self, customer: CustomerIdentity, *, now: datetime, tier: str | None
    ) -> Profile | None:
        """Find (or create) the profile of whoever sent a message; None without identities."""
        found = identities(customer)
        if not found:
            return None
        kinds = sorted(found)
        candidate = event_id("customer", *(f"{k}:{found[k]}" for k in kinds))
        fields: list[str] = []
        for kind in kinds:
            fields += [kind, found[kind]]
        if tier:
            fields += ["tier", tier]
        result = await self._scripts.call(
            self._identify,
            keys=[
                *(self._keys.customer_identity(k, found[k]) for k in kinds),
                self._keys.customer(""),
            ],
            args=[candidate, int(now.timestamp() * 1000), customer.display_name or "", *fields],
        )
        customer_id, stored_tier, open_pairs = result
        open_conversations = {}
        for i in range(0, len(open_pairs), 2):
            queue, _, last = as_text(open_pairs[i + 1]).rpartition("|")
            open_conversations[as_text(open_pairs[i])] = (queue, int(last or 0))
        return Profile(
            customer_id=customer_id.decode(),
            tier=stored_tier.decode() or None,
            open_conversations=open_conversations,
        )

    async def move_conversation(
        self, customer_id: str, *, conversation_id: str, queue: str, at: datetime
    ) -> None:
        """Note a transfer in the customer's open conversations."""
        await self._redis.hset(
            f"{self._keys.customer(customer_id)}:open",
            conversation_id,
            f"{queue}|{int(at.timestamp() * 1000)}",
        )

    async def close_conversation(self, customer_id: str, conversation_id: str) -> None:
        await self._redis.hdel(f"{self._keys.customer(customer_id)}:open", conversation_id)

    async def history(self, customer_id: str) -> list[str]:
        """Conversation ids, oldest first (the last ``conversations.HISTORY_LIMIT``)."""
        members = await self._redis.zrange(self._keys.customer_history(customer_id), 0, -1)
        return [as_text(m) for m in members if isinstance(m, bytes | str)]
