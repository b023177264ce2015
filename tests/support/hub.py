"""Reading the hub's event stream in tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.deadline import patience
from tooling.hubclient import HubClient


async def next_event(
    client: HubClient, kind: str, matches: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The next ``event`` frame of ``kind`` whose data ``matches`` (the hub has applied it by
    then); fails when the stream ends first."""
    async for frame in client.events(timeout=patience(20)):
        if frame["kind"] == kind and matches(frame["data"]):
            return frame
    raise AssertionError(f"the hub's event stream ended before a matching {kind} event")
