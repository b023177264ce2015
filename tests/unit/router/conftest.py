"""The sample store configuration, shared by the router's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.common.config import load_config
from services.router.model_cache import ModelCache
from services.router.runtime import RouterRuntime

STORE = Path(__file__).parents[3] / "config" / "store.yaml"


@pytest.fixture(scope="session")
def store(models: ModelCache) -> RouterRuntime:
    """Built once per test process (the tests only read it), on the run's fitted models."""
    return RouterRuntime.build(load_config(STORE), STORE, models=models)
