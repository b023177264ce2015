"""Classifications computed for a fetched batch, kept until each record's handling takes its own.

The consumer loop hands the router the records one fetch returned for a partition before any is
handled; the router classifies their texts in one call (``ClassifiersByLanguage.classify_many``)
and keeps each result here under its event id. Handling a record takes its result once. A
result is given only for the same text and language under the same runtime: after a reload, or
for a redelivered id carrying another text, the record classifies itself, as it would without
a batch. At most ``limit`` are kept, the oldest dropped first, so results of records that are
never handled (revoked, dead-lettered) cannot pile up.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from services.router.issue_types import Classification
from services.router.runtime import RouterRuntime

KEPT_AT_MOST: Final = 4096
"""Well above the records one fetch returns (``max_records``, 500) and those in flight."""

ClassifiedText = tuple[str, str | None]
"""The text a classification was computed from, and its language."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A message's classification from its batch, and its share of the batch's time (for the
    routing-time metric, which then still counts the classifying)."""

    text: ClassifiedText
    classification: Classification
    seconds: float


class PreparedClassifications:
    """Classifications by event id, each taken at most once, all for one runtime."""

    def __init__(self, limit: int = KEPT_AT_MOST) -> None:
        self._limit = limit
        self._runtime: RouterRuntime | None = None
        self._kept: OrderedDict[str, Prepared] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, runtime: RouterRuntime, results: Iterable[tuple[str, Prepared]]) -> None:
        """Keep (event id, prepared) computed under ``runtime``; those kept under an earlier
        runtime are dropped."""
        if runtime is not self._runtime:
            self._kept.clear()
            self._runtime = runtime
        for event_id, prepared in results:
            self._kept[event_id] = prepared
            self._kept.move_to_end(event_id)
        while len(self._kept) > self._limit:
            self._kept.popitem(last=False)

    def take(self, runtime: RouterRuntime, event_id: str, text: ClassifiedText) -> Prepared | None:
        """What was kept for ``event_id`` if it was computed from ``text`` under ``runtime``,
        removed either way; None when there is none to use."""
        kept = self._kept.pop(event_id, None)
        if kept is None or runtime is not self._runtime or kept.text != text:
            return None
        return kept
