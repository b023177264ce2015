"""Customer profiles in Redis: one profile per person across channels.

A profile is found by any verified identity a message carries (email address, phone number,
social account id; see :class:`~libs.common.events.CustomerIdentity`); when one message
carries identities of two profiles, they merge into the older one (the other keeps a
``merged_into`` pointer so its remaining identities still resolve). The profile keeps the
name, tier, first and last contact, a capped contact history, and the open conversations with
their queues, so a returning customer lands where their case already is.

Identity indexes and profiles live in different Redis Cluster slots, so finding and merging a
customer is a sequence of single-slot steps, each safe to repeat after a crash at any point (see
:meth:`CustomerStore.identify`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from redis.asyncio import Redis

from libs.common.events import CustomerIdentity, event_id
from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher, as_text, load_script

Scored = list[tuple[bytes, float]]
"""A sorted set's members with their scores, as ``ZRANGE ... WITHSCORES`` returns them."""
MAX_MERGES = 8
"""Longest chain of ``merged_into`` pointers followed to a profile."""


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
        self._scripts = scripts
        self._absorb = redis.register_script(load_script("services.router", "absorb_profile.lua"))
        self._retire = redis.register_script(load_script("services.router", "retire_profile.lua"))
        self._touch = redis.register_script(load_script("services.router", "touch_profile.lua"))

    async def identify(
        self, customer: CustomerIdentity, *, now: datetime, tier: str | None
    ) -> Profile | None:
        """Find (or create) the profile of whoever sent a message; None without identities.

        The steps: read the profiles the identities point to (following merges); fold each
        other one into the oldest, then mark it merged; record the message on the survivor;
        point the identities at it. Repeated after a crash, the reads find the same survivor
        (a merged profile resolves to it, an absorbed one changes nothing), so a redelivery
        ends where one uninterrupted run does."""
        found = identities(customer)
        if not found:
            return None
        kinds = sorted(found)
        index_keys = [self._keys.customer_identity(k, found[k]) for k in kinds]
        owners = await self._owners(index_keys)
        first_seen = await self._resolved({owner for owner in owners if owner is not None})
        candidate = event_id("customer", *(f"{k}:{found[k]}" for k in kinds))
        customer_id = (
            min(first_seen, key=lambda owner: (first_seen[owner], owner))
            if first_seen
            else candidate
        )
        profiles = set(first_seen)
        for other in sorted(profiles - {customer_id}):
            await self._merge(other, into=customer_id)
        fields: list[str] = []
        for kind in kinds:
            fields += [kind, found[kind]]
        if tier:
            fields += ["tier", tier]
        stored_tier, open_pairs = await self._scripts.call(
            self._touch,
            keys=[self._keys.customer(customer_id), self._keys.customer_open(customer_id)],
            args=[int(now.timestamp() * 1000), customer.display_name or "", *fields],
        )
        for key, owner in zip(index_keys, owners, strict=True):
            if owner != customer_id:
                await self._scripts.command("SET", key, customer_id)
        open_conversations = {}
        for i in range(0, len(open_pairs), 2):
            queue, _, last = as_text(open_pairs[i + 1]).rpartition("|")
            open_conversations[as_text(open_pairs[i])] = (queue, int(last or 0))
        return Profile(
            customer_id=customer_id,
            tier=as_text(stored_tier) or None,
            open_conversations=open_conversations,
        )

    async def _owners(self, index_keys: Sequence[str]) -> list[str | None]:
        """The profile ids the identity indexes name (each index alone: they spread over slots)."""
        owners = await asyncio.gather(*(self._scripts.command("GET", key) for key in index_keys))
        return [None if owner is None else as_text(owner) for owner in owners]

    async def _resolved(self, customer_ids: set[str]) -> dict[str, int]:
        """The profiles ``customer_ids`` resolve to, following ``merged_into`` (chains at most
        ``MAX_MERGES`` long), with when each was first seen (ms): one round trip a hop."""
        found: dict[str, int] = {}
        for _ in range(MAX_MERGES):
            if not customer_ids:
                break
            asked = sorted(customer_ids)
            answers = await asyncio.gather(
                *(
                    self._scripts.command(
                        "HMGET", self._keys.customer(customer_id), "merged_into", "first_seen"
                    )
                    for customer_id in asked
                )
            )
            customer_ids = set()
            for customer_id, (merged_into, first_seen) in zip(asked, answers, strict=True):
                if merged_into is None:
                    found[customer_id] = int(as_text(first_seen or b"0"))
                else:
                    customer_ids.add(as_text(merged_into))
        return found

    async def _merge(self, other: str, *, into: str) -> None:
        """Fold ``other`` into ``into`` (repeatable), then mark it merged: two single-slot steps."""
        fields = await self._redis.hgetall(self._keys.customer(other))
        opened = await self._redis.hgetall(self._keys.customer_open(other))
        history = await self._redis.zrange(
            self._keys.customer_history(other), 0, -1, withscores=True
        )
        await self._scripts.call(
            self._absorb,
            keys=self._profile_keys(into),
            args=[
                len(fields),
                *itertools.chain.from_iterable(fields.items()),
                len(opened),
                *itertools.chain.from_iterable(opened.items()),
                *(item for member, score in cast(Scored, history) for item in (member, int(score))),
            ],
        )
        await self._scripts.call(self._retire, keys=self._profile_keys(other), args=[into])

    def _profile_keys(self, customer_id: str) -> list[str]:
        return [
            self._keys.customer(customer_id),
            self._keys.customer_open(customer_id),
            self._keys.customer_history(customer_id),
        ]

    async def move_conversation(
        self, customer_id: str, *, conversation_id: str, queue: str, at: datetime
    ) -> None:
        """Note a transfer in the customer's open conversations."""
        await self._redis.hset(
            self._keys.customer_open(customer_id),
            conversation_id,
            f"{queue}|{int(at.timestamp() * 1000)}",
        )

    async def close_conversation(self, customer_id: str, conversation_id: str) -> None:
        await self._redis.hdel(self._keys.customer_open(customer_id), conversation_id)

    async def history(self, customer_id: str) -> list[str]:
        """Conversation ids, oldest first (the last ``conversations.HISTORY_LIMIT``)."""
        members = await self._redis.zrange(self._keys.customer_history(customer_id), 0, -1)
        return [as_text(m) for m in members if isinstance(m, bytes | str)]
