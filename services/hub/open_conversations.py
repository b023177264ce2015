"""What the hub knows of conversations: the per-queue set of open ones ordered by time to
breach (for snapshots), the subset of those nobody holds (for the assigner), a short summary
of each, and the router's state it reads.

The fan-out keeps it (:mod:`services.hub.fanout`): a routed message opens (or refreshes) a
conversation in its queue, SLA events move its score to the earliest running deadline, a
resolve removes it, a transfer moves it. Every change is one Lua call, idempotent, so a
redelivered record changes nothing. The router's ``conv:{id}`` hash stays the authority on
where a conversation is now (it applies transfers); the hub only reads it.

The summary and the sets live in the keys of the queue's assignment group
(:mod:`services.hub.groups`), and ``hub:group:{c:<id>}`` names the group that holds a
conversation. Moving it to another group (``relocate``) is a sequence of single-slot steps, each
safe to repeat after a crash: copy the summary into the new group, point at it (noting the old
one), remove it from the old group, drop the note.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
from redis.asyncio import Redis

from libs.common.events import ConversationRouted, CustomerIdentity, Requirements, reply_address
from libs.common.keys import DAY, Keys
from libs.common.redis_client import ScriptBatcher, as_text, get_many, load_script

if TYPE_CHECKING:
    from services.hub.groups import AssignmentGroups

SUMMARY_TTL: Final = 30 * DAY
NO_DEADLINE: Final = 2**52
"""Score of an open conversation with no running clock: after every real deadline."""
LAST_TEXT_CHARS: Final = 500
DEADLINE: Final = "deadline:"
CLOCK: Final = "clock:"


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where a conversation is and how to answer it (router state plus the hub's summary)."""

    conversation_id: str
    queue: str
    status: str
    thread_key: str
    channel: str
    reference: str | None
    reply_to: str | None
    reply_from: str | None
    """Our address the customer wrote to (a reply's sender; None: outbound's default)."""
    in_reply_to: str | None
    """The provider id of the customer's latest message (what a reply threads under)."""
    issue_type: str | None
    """The issue type of the latest message: the router's, or the one an agent changed it to."""
    message_id: str | None
    """The event id of the customer's latest message (what an issue-type correction names)."""


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class OpenConversations:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        groups: AssignmentGroups,
        *,
        scripts: ScriptBatcher | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.groups = groups
        self._scripts = ScriptBatcher(redis) if scripts is None else scripts
        self._track = redis.register_script(load_script("services.hub", "track_conversation.lua"))

    async def _call(self, op: str, group: str, conversation_id: str, *args: str | int) -> str:
        previous = await self._scripts.call(
            self._track,
            [self._keys.hub_conversation(group, conversation_id)],
            [
                op,
                self._keys.hub_open(group, ""),
                SUMMARY_TTL,
                NO_DEADLINE,
                conversation_id,
                self._keys.hub_waiting(group, ""),
                *args,
            ],
        )
        return as_text(previous)

    # --- where a conversation's summary is --------------------------------------------------

    async def group_of(self, conversation_id: str) -> str | None:
        """The assignment group holding the conversation (None: the hub has not seen it)."""
        return (await self._pointer(conversation_id))[0]

    async def _pointer(self, conversation_id: str) -> tuple[str | None, str | None]:
        """The group holding the conversation and, mid-move, the group it is leaving."""
        raw = await self._scripts.command("GET", self._keys.hub_group_of(conversation_id))
        return (None, None) if raw is None else _pointed(raw)

    async def locate(self, conversation_id: str, queue: str) -> str:
        """The group holding the conversation, which a conversation not seen before gets from
        ``queue`` (the queue its event names); a move a crash interrupted is finished first."""
        group, leaving = await self._pointer(conversation_id)
        if group is None:
            group = self.groups.of_queue(queue)
            await self._point(conversation_id, group)
        elif leaving is not None:
            await self._call("forget", leaving, conversation_id)
            await self._point(conversation_id, group)
        return group

    async def _point(self, conversation_id: str, group: str, leaving: str | None = None) -> None:
        value = group if leaving is None else f"{group} {leaving}"
        await self._scripts.command(
            "SET", self._keys.hub_group_of(conversation_id), value, "EX", SUMMARY_TTL
        )

    async def relocate(self, conversation_id: str, old: str, new: str, queue: str) -> str | None:
        """Move the conversation's summary from group ``old`` to ``queue`` in group ``new``;
        returns the queue it left (None when ``old`` held no summary).

        Its offer or assignment in ``old`` must already be withdrawn (the assigner's
        ``dropped``). The steps: copy the summary into ``new``; point at ``new``, noting that
        ``old`` is being left; remove it from ``old``; drop the note. Readers follow the pointer,
        so they find a whole summary at every step. A crash before the pointer moves repeats the
        copy; one after it leaves the note, and :meth:`locate` finishes the removal."""
        raw: Any = await self._redis.hgetall(self._keys.hub_conversation(old, conversation_id))
        fields = {as_text(k): as_text(v) for k, v in raw.items()}
        left = fields.get("queue")
        fields.pop("assignee", None)
        fields.pop("offer", None)
        if fields:
            fields["queue"] = queue
            await self._call(
                "open", new, conversation_id, *(x for kv in fields.items() for x in kv)
            )
            await self._point(conversation_id, new, leaving=old)
            await self._call("forget", old, conversation_id)
        await self._point(conversation_id, new)
        return left

    # --- changes -------------------------------------------------------------------------------

    async def opened(self, routed: ConversationRouted, group: str) -> None:
        """A routed message, in ``group`` (the queue's: see the fan-out's ``settle``)."""
        customer = routed.customer
        fields: dict[str, str | int] = {
            "queue": routed.queue,
            "status": "open",
            "reference": routed.reference,
            "channel": routed.channel,
            "thread_key": routed.thread_key,
            "priority": routed.priority,
            "issue_type": routed.issue_type,
            "message_id": routed.message_id,
            "customer": customer.display_name or customer.email or customer.phone or "",
            "identity": msgspec.json.encode(customer).decode(),
            "reply_to": reply_address(routed.channel, customer, routed.thread_key) or "",
            "reply_from": routed.our_address or "",
            "in_reply_to": routed.provider_message_id or "",
            "last_text": routed.text[:LAST_TEXT_CHARS],
            "last_at": _ms(routed.received_at),
        }
        if routed.reply_window_closes_at is not None:
            fields["window_closes"] = _ms(routed.reply_window_closes_at)
        requires = routed.requires or Requirements()
        fields["req_skills"] = " ".join(requires.skills)
        fields["req_language"] = requires.language or ""
        if routed.is_new or routed.reopened:  # its wait, and its relaxation ladder, start over
            fields["waiting_from"] = _ms(routed.received_at)
            fields["step"] = 0
        await asyncio.gather(  # one round trip: the pointer lives as long as the summary
            self._call(
                "open", group, routed.conversation_id, *(x for kv in fields.items() for x in kv)
            ),
            self._point(routed.conversation_id, group),
        )

    async def deadline(
        self, conversation_id: str, queue: str, metric: str, due: datetime | None, kind: str
    ) -> None:
        """A clock changed (``kind``: its SLA event, which names ``queue``); ``due`` is its
        deadline while it runs."""
        group = await self.locate(conversation_id, queue)
        await self._call(
            "deadline", group, conversation_id, metric, "" if due is None else _ms(due), kind
        )

    async def closed(self, conversation_id: str) -> str | None:
        """Resolved: out of its queue's open set; returns that queue."""
        group = await self.group_of(conversation_id)
        if group is None:
            return None
        return await self._call("close", group, conversation_id) or None

    async def moved(self, conversation_id: str, queue: str, group: str) -> str | None:
        """Transferred to ``queue`` (in ``group``, where the summary already is); returns the
        queue it left (None when unknown)."""
        return await self._call("move", group, conversation_id, queue) or None

    async def retyped(self, conversation_id: str, issue_type: str) -> None:
        """An agent changed the conversation's issue type (a summary that expired stays gone)."""
        group = await self.group_of(conversation_id)
        if group is not None:
            await self._call("retype", group, conversation_id, issue_type)

    # --- reading -------------------------------------------------------------------------------

    async def queue_of(self, conversation_id: str) -> str | None:
        """The queue a conversation is in now (the router's record, else the hub's)."""
        queue = await self._scripts.command(
            "HGET", self._keys.conversation(conversation_id), "queue"
        )
        if queue is None and (group := await self.group_of(conversation_id)) is not None:
            queue = await self._scripts.command(
                "HGET", self._keys.hub_conversation(group, conversation_id), "queue"
            )
        return None if queue is None else as_text(queue)

    async def get(self, conversation_id: str) -> Conversation | None:
        """The router's record joined with the hub's summary, or None when the router has none."""
        router_raw: Any = await self._redis.hgetall(self._keys.conversation(conversation_id))
        if not router_raw:
            return None
        router = {as_text(k): as_text(v) for k, v in router_raw.items()}
        [summary] = await self.summary_fields([conversation_id])
        return Conversation(
            conversation_id=conversation_id,
            queue=router["queue"],
            status=router.get("status", "open"),
            thread_key=router["thread_key"],
            channel=router["channel"],
            reference=summary.get("reference") or None,
            reply_to=summary.get("reply_to") or None,
            reply_from=summary.get("reply_from") or None,
            in_reply_to=summary.get("in_reply_to") or None,
            issue_type=summary.get("issue_type") or None,
            message_id=summary.get("message_id") or None,
        )

    async def snapshot(self, queue: str, limit: int) -> list[dict[str, Any]]:
        """The open conversations of a queue, soonest breach first (at most ``limit``)."""
        return await self.summaries(await self.open_ids(queue, limit))

    async def open_ids(self, queue: str, limit: int) -> list[str]:
        """The ids of a queue's open conversations, soonest breach first (at most ``limit``)."""
        group = self.groups.of_queue(queue)
        members: Any = await self._redis.zrange(self._keys.hub_open(group, queue), 0, limit - 1)
        return [as_text(member) for member in members]

    async def summaries(self, conversation_ids: list[str]) -> list[dict[str, Any]]:
        """The summaries of conversations, as snapshots and offers show them."""
        raws = await self.summary_fields(conversation_ids)
        return [
            _summary(conversation_id, fields)
            for conversation_id, fields in zip(conversation_ids, raws, strict=True)
        ]

    async def summary_fields(
        self, conversation_ids: list[str], only: Sequence[str] | None = None
    ) -> list[dict[str, str]]:
        """Each conversation's summary fields (``only``: just those it has of them), wherever
        its group is (empty: none)."""
        pointers = [self._keys.hub_group_of(conversation) for conversation in conversation_ids]
        groups = await get_many(self._redis, pointers)
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation_id, group in zip(conversation_ids, groups, strict=True):
                if group is not None:
                    holder, _ = _pointed(group)
                    key = self._keys.hub_conversation(holder, conversation_id)
                    if only is None:
                        pipe.hgetall(key)
                    else:
                        pipe.hmget(key, only)
            found = iter(await pipe.execute())
        if only is None:
            return [
                {as_text(k): as_text(v) for k, v in next(found).items()}
                if group is not None
                else {}
                for group in groups
            ]
        return [
            {n: as_text(v) for n, v in zip(only, next(found), strict=True) if v is not None}
            if group is not None
            else {}
            for group in groups
        ]


def _pointed(raw: bytes | str) -> tuple[str, str | None]:
    """A ``hub:group`` pointer: the group holding the conversation and, mid-move, the group it
    is leaving."""
    group, _, leaving = as_text(raw).partition(" ")
    return group, leaving or None


def _iso(ms: str | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat()


def identity_of(fields: dict[str, str]) -> CustomerIdentity | None:
    """Who wrote a conversation's latest message, from its summary (None: not recorded)."""
    raw = fields.get("identity")
    return msgspec.json.decode(raw, type=CustomerIdentity) if raw else None


def _summary(conversation_id: str, fields: dict[str, str]) -> dict[str, Any]:
    identity = identity_of(fields)
    deadlines = {
        name.removeprefix(DEADLINE): _iso(value)
        for name, value in fields.items()
        if name.startswith(DEADLINE)
    }
    return {
        "conversation_id": conversation_id,
        "reference": fields.get("reference"),
        "channel": fields.get("channel"),
        "priority": int(fields["priority"]) if fields.get("priority") else None,
        "issue_type": fields.get("issue_type"),
        "customer": fields.get("customer") or None,
        "customer_verified": identity.verified if identity else None,
        "assignee": fields.get("assignee"),
        "last_text": fields.get("last_text"),
        "last_at": _iso(fields.get("last_at")),
        "reply_window_closes_at": _iso(fields.get("window_closes")),
        "deadlines": deadlines,
        "next_deadline": min((d for d in deadlines.values() if d), default=None),
        "clocks": {
            name.removeprefix(CLOCK): value
            for name, value in fields.items()
            if name.startswith(CLOCK)
        },
        "requires": _requires(fields),
        "ladder_step": int(fields.get("step") or 0),
    }


def _requires(fields: dict[str, str]) -> dict[str, Any] | None:
    """Who can answer the conversation (None: anyone in its queue)."""
    skills, language = fields.get("req_skills", "").split(), fields.get("req_language") or None
    if not skills and language is None:
        return None
    return {"skills": skills, "language": language}
