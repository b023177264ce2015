"""What outbound refuses to send, whoever asked: the checks that run before any provider call.

- A reply to an automated message (an auto-reply, a bounce, a list mail, an SMS keyword) is
  never sent: two auto-responders answering each other is a mail loop. The router already skips
  acknowledgements of automated inbound; a command still marked ``params["automated"]`` (the
  inbound's ``automated`` value) is refused here as the last line.
- Social: no automatic public reply to a mention (acknowledgements, after-hours notices, status
  updates) unless ``outbound.social_auto_reply`` is on; agents' replies go out. A direct-message
  thread is private, so it gets automatic replies like any other channel.
- SMS to a number that texted STOP is not sent until it texts START (checked by the caller,
  which owns Redis).
- An automatic acknowledgement (:data:`ACKNOWLEDGEMENT_KINDS`) reaches an address at most once
  per conversation and kind, and at most :data:`ACKNOWLEDGEMENTS_PER_ADDRESS_HOUR` times an
  hour: an auto-responder the automated checks missed, or a forged sender opening a
  conversation per message, is not answered every time (counted in Redis by the caller, see
  :mod:`services.outbound.acknowledgements`).
"""

from __future__ import annotations

from typing import Final

from libs.common.config import OutboundSettings
from libs.common.events import AUTOMATED_PARAM, CommandKind, OutboundCommand
from libs.common.xclient import is_direct_message_thread

AUTOMATIC_KINDS: Final[frozenset[CommandKind]] = frozenset(
    {"auto_ack", "after_hours", "status_update", "survey"}
)
ACKNOWLEDGEMENT_KINDS: Final[frozenset[CommandKind]] = frozenset({"auto_ack", "after_hours"})
ACKNOWLEDGEMENTS_PER_ADDRESS_HOUR: Final = 5


def refusal(command: OutboundCommand, settings: OutboundSettings, thread_key: str) -> str | None:
    """Why ``command`` must not be sent, or ``None`` when it may be (``thread_key``: the
    conversation's, which tells a private direct-message thread from a public mention)."""
    automated = command.params.get(AUTOMATED_PARAM)
    if automated:
        return f"reply to an automated message ({automated[:40]}) is never sent"
    if (
        command.channel == "social"
        and command.kind in AUTOMATIC_KINDS
        and not settings.social_auto_reply
        and not is_direct_message_thread(thread_key)
    ):
        return "no automatic public reply on social (outbound.social_auto_reply is off)"
    return None
