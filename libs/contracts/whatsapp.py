"""WhatsApp's customer-service window, as ingest records it and outbound reads it.

A business may send free-form WhatsApp messages only within 24 hours of the customer's latest
message to that number; after that only approved templates (Twilio refuses anything else with
error 63016). The window belongs to the pair of numbers, not to a conversation, so ingest
records the latest inbound time per pair (:func:`record_inbound`, ``whatsapp:inbound:…`` in
:mod:`libs.common.keys`) and outbound asks :func:`last_inbound` before every send.

Twilio writes WhatsApp addresses as ``whatsapp:+E164``; inside Switchboard a customer's number
is plain E.164, the same as on SMS, so one person is one customer on both channels. Only the
opt-out state keeps the prefix (:func:`optout_address`): a STOP on WhatsApp silences WhatsApp,
not the customer's SMS.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from redis.asyncio import Redis

from libs.common.keys import DAY, Keys
from libs.common.redis_client import transaction

PREFIX: Final = "whatsapp:"
INBOUND_TTL: Final = 2 * DAY
"""Longer than any window, so an open window is never forgotten."""
_MEMBER: Final = "last"


def is_address(address: str) -> bool:
    """Whether a Twilio address (``From``/``To``) is a WhatsApp one."""
    return address.startswith(PREFIX)


def address(number: str) -> str:
    """The Twilio address of an E.164 number on WhatsApp."""
    return number if is_address(number) else PREFIX + number


def number_of(address: str) -> str:
    """The number of a Twilio WhatsApp address (any other address as given)."""
    return address.removeprefix(PREFIX)


def optout_address(our_number: str) -> str:
    """Our side of a WhatsApp opt-out in :mod:`libs.contracts.optout` (apart from SMS)."""
    return address(our_number)


async def record_inbound(
    redis: Redis, keys: Keys, our_number: str, customer_number: str, at: datetime
) -> None:
    """The customer wrote at ``at``: the window runs from here, unless a later message already
    moved it (``ZADD GT``: a late redelivery of an old message never shortens it)."""
    key = keys.whatsapp_inbound(our_number, customer_number)
    async with transaction(redis) as pipe:
        pipe.zadd(key, {_MEMBER: int(at.timestamp() * 1000)}, gt=True)
        pipe.expire(key, INBOUND_TTL)
        await pipe.execute()


async def last_inbound(
    redis: Redis, keys: Keys, our_number: str, customer_number: str
) -> datetime | None:
    """When the customer last wrote to our number on WhatsApp (None: not within 2 days)."""
    score = await redis.zscore(keys.whatsapp_inbound(our_number, customer_number), _MEMBER)
    return None if score is None else datetime.fromtimestamp(score / 1000, UTC)


def window_open(last: datetime | None, window: timedelta, now: datetime) -> bool:
    """Whether a free-form message may go out at ``now``."""
    return last is not None and now < last + window
