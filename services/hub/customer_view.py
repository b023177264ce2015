"""Who a conversation's customer is and what else they wrote about, for the agent's view.

The router owns customer profiles (``customer:{id}``: name, tier, identities, first and last
contact) and each customer's conversation history across channels (the last 50); the hub only
reads them. An agent sees every conversation of the customer in the history, but the text of
the latest message only of those in queues its token allows.

Beside the profile, ``identity`` is who wrote the conversation's latest message as its channel
told, with ``verified``: an unverified one (an address typed into the chat widget) is a hint
the visitor gave, never a profile, so it comes with no profile, tier or history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from redis.asyncio import Redis

from libs.common.events import CustomerIdentity
from libs.common.keys import Keys
from libs.common.redis_client import as_text
from libs.domain.references import reference_for
from services.hub.open_conversations import OpenConversations, identity_of

PROFILE_FIELDS: Final = ("name", "tier", "email", "phone", "social")
MAX_MERGES: Final = 8
"""How many ``merged_into`` links are followed (merges chain when identities meet later)."""


class UnknownConversation(Exception):
    """The router has no such conversation."""


class OutsideQueues(Exception):
    """The conversation is in a queue the agent's token does not allow."""


def _iso(ms: str | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat()


def _identity(identity: CustomerIdentity | None) -> dict[str, Any] | None:
    if identity is None:
        return None
    return {
        "name": identity.display_name,
        "email": identity.email,
        "phone": identity.phone,
        "social": identity.social_handle or identity.social_id,
        "verified": identity.verified,
    }


class CustomerViews:
    def __init__(self, redis: Redis, keys: Keys, conversations: OpenConversations) -> None:
        self._redis = redis
        self._keys = keys
        self._conversations = conversations

    async def view(self, conversation_id: str, allowed: frozenset[str]) -> dict[str, Any]:
        """The customer of a conversation in one of the ``allowed`` queues: profile and
        history, newest first (:class:`UnknownConversation`, :class:`OutsideQueues`)."""
        conversation = await self._hash(self._keys.conversation(conversation_id))
        if not conversation:
            raise UnknownConversation(conversation_id)
        if conversation.get("queue") not in allowed:
            raise OutsideQueues(conversation.get("queue"))
        [summary] = await self._conversations.summary_fields([conversation_id])
        identity = _identity(identity_of(summary))
        customer_id = conversation.get("customer_id")
        if not customer_id:  # no verified identity (a chat visitor)
            return {"profile": None, "identity": identity, "history": []}
        profile: dict[str, str] = {}
        for _ in range(MAX_MERGES):
            profile = await self._hash(self._keys.customer(customer_id))
            merged_into = profile.get("merged_into")
            if not merged_into:
                break
            customer_id = merged_into
        return {
            "profile": {
                "customer_id": customer_id,
                **{name: profile.get(name) for name in PROFILE_FIELDS},
                "first_seen": _iso(profile.get("first_seen")),
                "last_seen": _iso(profile.get("last_seen")),
            },
            "identity": identity,
            "history": await self._history(customer_id, allowed),
        }

    async def _history(self, customer_id: str, allowed: frozenset[str]) -> list[dict[str, Any]]:
        members: Any = await self._redis.zrevrange(
            self._keys.customer_history(customer_id), 0, -1, withscores=True
        )
        ids = [as_text(member) for member, _ in members]
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation_id in ids:
                pipe.hgetall(self._keys.conversation(conversation_id))
            raws = await pipe.execute()
        summaries = await self._conversations.summary_fields(ids)
        history = []
        for conversation_id, raw, summary in zip(ids, raws, summaries, strict=True):
            router = {as_text(k): as_text(v) for k, v in raw.items()}
            if not router:
                continue
            queue = router.get("queue")
            history.append(
                {
                    "conversation_id": conversation_id,
                    "reference": reference_for(int(router["sequence"]))
                    if router.get("sequence")
                    else None,
                    "channel": router.get("channel"),
                    "queue": queue,
                    "status": router.get("status", "open"),
                    "opened_at": _iso(router.get("opened_at")),
                    "last_message_at": _iso(router.get("last_message_at")),
                    "last_text": summary.get("last_text") if queue in allowed else None,
                }
            )
        return history

    async def _hash(self, key: str) -> dict[str, str]:
        raw: Any = await self._redis.hgetall(key)
        return {as_text(k): as_text(v) for k, v in raw.items()}
