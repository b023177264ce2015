"""docs/openapi/hub.yaml: matches the routes the hub registers, and holds under fuzzing."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any, Final

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    status_code_conformance,
)

from libs.common.settings import Settings
from services.hub.app import build
from tests.integration.hub.conftest import KEY, Hub
from tests.support.openapi import documented_operations, registered_operations
from tooling import openapi
from tooling.devstack import wait_ready

# schemathesis's own strategies draw from the ``random`` module, which Hypothesis flags with a
# deprecation warning now and then (the suite turns warnings into errors): not ours to fix.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

DOCUMENT: Final = Path(__file__).parents[3] / openapi.DEFAULT_DIRECTORY / "hub.yaml"
POSITIVE: Final = schemathesis.GenerationMode.POSITIVE
CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]


def test_every_registered_route_is_documented_and_no_other() -> None:
    registered = registered_operations(build(Settings(agent_token_key=KEY)))
    documented = documented_operations(openapi.build("hub"))
    assert registered - documented == set(), "routes missing from docs/openapi/hub.yaml"
    assert documented - registered == set(), "documented routes the hub does not serve"


def fuzz(base_url: str) -> Counter[tuple[str, int]]:
    """Every operation's generated requests, valid and invalid: (operation, status) seen."""
    schema = schemathesis.openapi.from_path(str(DOCUMENT))
    seen: Counter[tuple[str, int]] = Counter()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()
            operation = result.ok()
            has_input = "parameters" in operation.definition.raw
            modes = list(schemathesis.GenerationMode) if has_input else [POSITIVE]
            for mode in modes:  # only what has input can be sent invalid input

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=25,
                    deadline=None,
                    database=None,
                    # The same draw every run: the checks below need some examples to hit
                    # (a console file served), which a fresh random draw may miss.
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                )
                def run(case: schemathesis.Case[Any]) -> None:
                    response = case.call_and_validate(
                        base_url=base_url, session=session, checks=CHECKS, timeout=30
                    )
                    seen[(case.operation.label, response.status_code)] += 1

                run()
    return seen


async def test_fuzzing_every_endpoint_gets_only_documented_answers(hub: Hub) -> None:
    # /readyz answers 503 (documented) until the fan-out consumer runs
    await wait_ready(hub.url, "hub", timeout=30)
    seen = await asyncio.to_thread(fuzz, hub.url)
    assert {label for label, _ in seen} == {
        f"{method} {path}" for method, path in documented_operations(openapi.build("hub"))
    }
    assert ("GET /agent/{name}", 200) in seen  # the console's files were served
    assert ("GET /v1/agents/ws", 400) in seen  # a plain GET is not a handshake
