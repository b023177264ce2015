"""The sample store configuration, shared by the router's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.common.config import load_config
from services.router.runtime import RouterRuntime

STORE = Path(__file__).parents[3] / "config" / "store.yaml"


@pytest.fixture(scope="session")
def store() -> RouterRuntime:
    """Built once per test process: fitting its example model takes seconds of CPU, and the
    tests only read it."""
    return RouterRuntime.build(load_config(STORE), STORE)
