"""The client frames both websocket protocols start from: one refusal, one JSON-object decode."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from libs.common.socket_frames import FrameError, decode_object
from services.hub import protocol
from services.ingest.chat import frames


@pytest.mark.parametrize("parse", [protocol.parse, frames.parse])
def test_the_hub_and_the_chat_refuse_frames_with_one_error(parse: Callable[[str], object]) -> None:
    with pytest.raises(FrameError) as refused:
        parse("[]")
    assert refused.value.code == "invalid_frame"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        (b"\xff", "invalid_json"),
        ("[" * 3000 + "]" * 3000, "invalid_json"),  # too deep: RecursionError in the decoder
        ("[1, 2]", "invalid_frame"),
        ('"text"', "invalid_frame"),
    ],
)
def test_a_frame_that_is_not_a_json_object_is_refused(raw: str | bytes, code: str) -> None:
    with pytest.raises(FrameError) as refused:
        decode_object(raw)
    assert (refused.value.code, refused.value.client_id) == (code, None)


def test_a_json_object_is_returned_as_it_is() -> None:
    assert decode_object(b'{"type": "message", "n": [1]}') == {"type": "message", "n": [1]}
