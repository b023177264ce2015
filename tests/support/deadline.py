"""How long a test waits on a condition before it calls the wait a hang.

Every wait in the tests is on a condition; its deadline only bounds a hang, so a generous one
costs nothing while the system works. The figure written at each wait is what a quiet 2-core
machine needs with room to spare. CI runs the whole suite, four workers to two cores, on days
when the same machine runs at a third of its usual speed: every deadline is stretched by
``SLOWDOWN`` (``SWITCHBOARD_TEST_SLOWDOWN``, default 3) rather than raised one by one after each
slow day's failure.
"""

from __future__ import annotations

import os

SLOWDOWN = float(os.environ.get("SWITCHBOARD_TEST_SLOWDOWN", "3"))


def patience(seconds: float) -> float:
    """The deadline for a wait that takes well under ``seconds`` on a quiet machine."""
    return seconds * SLOWDOWN
