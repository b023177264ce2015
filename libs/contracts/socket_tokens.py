"""How a websocket client hands over its token without putting it in the URL, where ingress
access logs would keep it.

A browser can set no header on a websocket but the list of subprotocols it offers, so the
client offers two: :data:`PROTOCOL` and ``switchboard.token.<token>``. The server selects
:data:`PROTOCOL` (a browser fails a handshake whose answer names none of its offers), so the
token is never echoed back. The ``token`` query parameter is still read, for clients written
before this; it is kept for compatibility only.
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

PROTOCOL: Final = "switchboard.v1"
TOKEN_PREFIX: Final = "switchboard.token."


def offered_protocols(token: str) -> tuple[str, str]:
    """The subprotocols a client offers to present ``token``."""
    return PROTOCOL, TOKEN_PREFIX + token


def offered_token(request: web.Request) -> str | None:
    """The token offered as a subprotocol, else the ``token`` query parameter."""
    for header in request.headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, ()):
        for offer in header.split(","):
            offer = offer.strip()
            if offer.startswith(TOKEN_PREFIX):
                return offer.removeprefix(TOKEN_PREFIX)
    return request.query.get("token")
