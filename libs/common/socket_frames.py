"""What the chat widget's and the agent hub's websocket protocols share on the way in.

Both read hostile client frames: JSON text that must be one object. What is wrong with a frame
is raised as :class:`FrameError` and answered with that protocol's own ``error`` frame.
"""

from __future__ import annotations

from typing import Any

import msgspec


class FrameError(Exception):
    """A client frame the server will not act on; ``code`` goes back to the client, with the
    frame's ``client_id`` when one could be read."""

    def __init__(self, code: str, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id


def decode_object(raw: str | bytes) -> dict[str, Any]:
    """The JSON object in one frame, else :class:`FrameError` (``invalid_json`` or
    ``invalid_frame``)."""
    try:
        data: Any = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # deep nesting raises RecursionError
        raise FrameError("invalid_json", "frame is not JSON") from None
    if not isinstance(data, dict):
        raise FrameError("invalid_frame", "frame is not a JSON object")
    return data
