"""Which offset of a partition may be committed: the highest contiguous finished one + 1."""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    """Tracks records taken from one partition, in the order they were taken.

    Records finish out of order (different keys run concurrently); the commit position only
    moves past a record once it and every record before it have finished, so a crash never
    skips unfinished work. Offsets need not be contiguous (compaction leaves gaps).
    """

    __slots__ = ("_done", "_position", "_taken")

    def __init__(self) -> None:
        self._taken: deque[int] = deque()
        self._done: set[int] = set()
        self._position: int | None = None

    def take(self, offset: int) -> None:
        self._taken.append(offset)

    def finish(self, offset: int) -> None:
        self._done.add(offset)
        while self._taken and self._taken[0] in self._done:
            head = self._taken.popleft()
            self._done.discard(head)
            self._position = head + 1

    @property
    def in_flight(self) -> int:
        return len(self._taken)

    @property
    def position(self) -> int | None:
        """The offset to commit (next record to read), or None before any finished."""
        return self._position
