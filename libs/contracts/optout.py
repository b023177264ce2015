"""SMS consent: the keywords customers text to opt out of, back into, or ask about our messages.

Ingest records the state when a keyword arrives (``sms:optout:{our}:{customer}`` in
:mod:`libs.common.keys`); outbound asks :func:`is_opted_out` before sending an SMS, so nothing
is sent to a customer who texted STOP until they text START. Twilio enforces the same keywords
on long codes itself (error 21610); recording them here means Switchboard does not even try,
and the state survives a move to another number or provider.

Both numbers are E.164 (``+15005550006``), as ingest normalises them: callers pass the same
form, or the lookup misses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from redis.asyncio import Redis

from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher

Keyword = Literal["opt-out", "opt-in", "help"]

# Twilio's default Advanced Opt-Out keywords (the standard carriers expect).
OPT_OUT: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN: Final = frozenset({"START", "YES", "UNSTOP"})
HELP: Final = frozenset({"HELP", "INFO"})
_TRAILING: Final = " \t\r\n.!"


def classify(body: str) -> tuple[Keyword, str] | None:
    """The kind and keyword of a message that is a consent keyword, else ``None``.

    A keyword counts when it is the whole message, in any case, with surrounding whitespace
    and trailing ``.``/``!`` ignored ("Stop!" opts out; "stop sending me the wrong size" is a
    support message, not a keyword), as carriers and Twilio match them.
    """
    if len(body) > 32:
        return None
    word = body.strip().rstrip(_TRAILING).upper()
    if word in OPT_OUT:
        return "opt-out", word
    if word in OPT_IN:
        return "opt-in", word
    if word in HELP:
        return "help", word
    return None


async def record(
    redis: Redis, keys: Keys, our: str, customer: str, kind: Keyword, keyword: str, at: datetime
) -> None:
    """Apply a keyword: opt-out stores which keyword and when, opt-in deletes it, help keeps."""
    key = keys.sms_optout(our, customer)
    if kind == "opt-out":
        await redis.set(key, f"{keyword} {at.isoformat()}")
    elif kind == "opt-in":
        await redis.delete(key)


async def is_opted_out(commands: ScriptBatcher, keys: Keys, our: str, customer: str) -> bool:
    """Whether ``customer`` texted an opt-out keyword to ``our`` number and not opted back in
    (asked through a batcher: outbound asks before every send, many sends at a time)."""
    return bool(await commands.command("EXISTS", keys.sms_optout(our, customer)))
