"""docs/openapi/ingest.yaml: generated from the code, matches the routes, holds under fuzzing.

The fuzz test serves the whole ingest app (every connector on, the real broker and Redis) on
a loopback port and lets schemathesis generate requests for every documented operation. Its
requests run in a worker thread (schemathesis and Hypothesis are synchronous) while the app
keeps serving on the test's event loop. Requests to signed endpoints go out unsigned (they
must all get 403) or, for about half of them, signed the way Twilio and X sign, so the form
and JSON parsers behind the signature get the fuzzed input too.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from libs.common.openapi import render
from libs.common.settings import Settings
from services.ingest.app import build
from services.ingest.x.webhook import SIGNATURE_HEADER
from tests.integration.ingest.conftest import CHAT_KEY, PUBLIC_URL, X_SECRET, X_USER_ID, Ingest
from tests.support.harness import AUTH_TOKEN
from tests.support.openapi import documented_operations, registered_operations
from tests.support.webhooks import sign_twilio, sign_x
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

ROOT: Final = Path(__file__).parents[3]


def document_path(service: str) -> Path:
    return ROOT / openapi.DEFAULT_DIRECTORY / f"{service}.yaml"


MAX_EXAMPLES: Final = 40
POSITIVE: Final = schemathesis.GenerationMode.POSITIVE
NEGATIVE: Final = schemathesis.GenerationMode.NEGATIVE
TWILIO_HEADER: Final = "X-Twilio-Signature"
CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("service", sorted(openapi.DOCUMENTS))
def test_checked_in_document_is_what_the_code_generates(service: str) -> None:
    checked_in = document_path(service).read_text(encoding="utf-8")
    assert checked_in == render(openapi.build(service)), (
        f"docs/openapi/{service}.yaml is stale: run `switchboard openapi`"
    )


def test_every_registered_route_is_documented_and_no_other() -> None:
    """With every connector on."""
    settings = Settings(
        twilio_auth_token=AUTH_TOKEN,
        x_consumer_secret=X_SECRET,
        x_user_id=X_USER_ID,
        chat_session_key=CHAT_KEY,
    )
    registered = registered_operations(build(settings))
    documented = documented_operations(openapi.build("ingest"))
    assert registered - documented == set(), "routes missing from docs/openapi/ingest.yaml"
    assert documented - registered == set(), "documented routes the app does not serve"


def test_limits_in_the_document_are_the_enforced_ones() -> None:
    """Spot-check that numbers come from the code, not from copies (a changed constant moves
    the document; the drift test above then fails until it is regenerated)."""
    from services.ingest import sms
    from services.ingest.chat.endpoint import MAX_SESSION_BODY
    from services.ingest.x import webhook as x

    paths = openapi.build("ingest")["paths"]
    limit = "x-max-body-bytes"
    assert paths[sms.PATH]["post"]["requestBody"][limit] == sms.MAX_BODY_BYTES
    assert paths[x.PATH]["post"]["requestBody"][limit] == x.MAX_BODY_BYTES
    assert paths["/v1/chat/session"]["post"]["requestBody"][limit] == MAX_SESSION_BODY
    (crc,) = paths[x.PATH]["get"]["parameters"]
    assert crc["schema"]["maxLength"] == x.MAX_CRC_TOKEN


# --- fuzzing -------------------------------------------------------------------------------


def signature_headers(document: dict[str, Any]) -> dict[str, str]:
    """Operation label -> the signature header the document says it requires."""
    parameters = document["components"]["parameters"]
    signed = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                ref = parameter.get("$ref", "")
                name = parameters[ref.rsplit("/", 1)[-1]]["name"] if ref else None
                if name in (TWILIO_HEADER, SIGNATURE_HEADER):
                    signed[f"{method.upper()} {path}"] = name
    return signed


SIGNED: Final = signature_headers(openapi.build("ingest"))


def send(case: schemathesis.Case[Any], base_url: str, session: requests.Session, sign: bool) -> int:
    """Send the case (signed if asked), validate the response against the document, and
    return its status."""
    header = SIGNED.get(case.operation.label)
    signature: dict[str, str] = {}
    if sign and header == TWILIO_HEADER:
        assert isinstance(case.body, dict)
        form = {name: str(value) for name, value in case.body.items()}
        url = PUBLIC_URL + case.formatted_path
        signature = {header: sign_twilio(url, form, AUTH_TOKEN)[header]}
    if sign and header == SIGNATURE_HEADER:
        # Sent as these exact bytes, so the signature covers what the server reads.
        raw = json.dumps(case.body, allow_nan=False).encode()
        response = session.post(
            base_url + case.formatted_path,
            data=raw,
            headers={**dict(case.headers or {}), **sign_x(raw, X_SECRET)},
            timeout=30,
        )
        case.validate_response(response, checks=CHECKS)
        return response.status_code
    sent = case.call_and_validate(
        base_url=base_url, session=session, headers=signature, checks=CHECKS, timeout=30
    )
    return sent.status_code


def fuzz_operation(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    base_url: str,
    session: requests.Session,
    seen: Counter[tuple[str, str, bool, int]],
    mode: schemathesis.GenerationMode,
) -> None:
    signed = operation.label in SIGNED
    # Signing invalid input would mostly test the signing here, not the server.
    positive = mode is POSITIVE

    @given(
        case=operation.as_strategy(generation_mode=mode),
        sign=st.booleans() if signed and positive else st.just(False),
    )
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        # The same examples every run: the checks below need some signed case to be accepted,
        # and a fresh random draw of 40 sometimes holds none (a whole-suite run failed so).
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case[Any], sign: bool) -> None:
        status = send(case, base_url, session, sign)
        if signed and not sign:  # the signature is checked before anything is read into state
            refused = {403} if positive else {400, 403, 413, 415}
            assert status in refused, operation.label
        seen[(mode.value, operation.label, sign, status)] += 1

    run()


def fuzz(schema: schemathesis.BaseSchema, base_url: str) -> Counter[tuple[str, str, bool, int]]:
    """Run every operation's examples; the count of (mode, operation, signed, status) seen."""
    seen: Counter[tuple[str, str, bool, int]] = Counter()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()
            operation = result.ok()
            fuzz_operation(operation, base_url, session, seen, POSITIVE)
            if {"parameters", "requestBody"} & set(operation.definition.raw):
                # Only what has input can be sent invalid input.
                fuzz_operation(operation, base_url, session, seen, NEGATIVE)
    return seen


async def test_fuzzing_every_endpoint_gets_only_documented_answers(
    ingest_app: Ingest, http: aiohttp.ClientSession
) -> None:
    # the chat subscription comes up just after start; /readyz 503 until then
    await wait_ready(ingest_app.url, "ingest", timeout=20)
    schema = schemathesis.openapi.from_path(str(document_path("ingest")))
    seen = await asyncio.to_thread(fuzz, schema, ingest_app.url)

    labels = {label for _, label, _, _ in seen}
    assert len(labels) == len(list(schema.get_all_operations()))
    assert len(SIGNED) == 3
    for label in SIGNED:
        answers = {status for (_, op, sign, status) in seen if op == label and sign}
        assert 403 not in answers, f"{label}: a correctly signed request was refused"
        assert 200 in answers, f"{label}: no signed request got through to Kafka"
