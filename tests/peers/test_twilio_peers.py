"""Run every X-Twilio-Signature case collected from Twilio's docs and SDKs through ingest's check.

The cases (tests/fixtures/peers/twilio_signatures.json, sources in NOTICE-x-twilio.md) go
through :func:`services.ingest.sms.signature_valid`, the function the webhooks call, one test
per case. Where an SDK is more lenient than Twilio's documented rule (the case's
``conventions``), Switchboard keeps the documented rule: such a case first checks that our
answer is what *our* rule predicts, then raises ConventionMismatch, the one exception its
strict xfail accepts, so a wrong answer still fails and a changed rule XPASSes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from services.ingest.sms import body_sha256, signature_valid

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "peers" / "twilio_signatures.json"
CASES: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]

NOT_OURS = {
    "dedupe_identical_values": (
        "twilio-node (and twilio-python) collapse identical repeated values before signing; "
        "Twilio's documented rule appends every name/value pair, and so does Switchboard"
    ),
    "sdk_url_normalisation": (
        "twilio-node compares URLs after WHATWG normalisation (' equals %27); Switchboard signs "
        "the URL exactly as received, as Twilio's docs and the other SDKs do"
    ),
}
# Followed: every SDK tries the URL with and without its port, since Twilio signs either.
OURS = {"try_url_without_port", "try_url_with_default_port"}
HASH_CHECK_TOKEN = "hash-check-token"


class ConventionMismatch(AssertionError):
    """The peer expects an SDK's leniency; our answer was checked against our own rule."""


def _pairs(case: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in case["params"]]


def _sign(url: str, token: str) -> str:
    mac = hmac.new(token.encode(), url.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def our_answer(case: dict[str, Any]) -> bool:
    """What ingest answers for this request."""
    if case["kind"] == "form":
        return signature_valid(case["url"], _pairs(case), case["signature"], case["auth_token"])
    if case["kind"] == "json_body":
        body = case["body"].encode()
        return signature_valid(case["url"], body, case["signature"], case["auth_token"])
    # body_hash: a URL carrying the claimed hash, correctly signed, so only the hash decides.
    claimed = case.get("claimed_body_sha256_hex") or case["expected_body_sha256_hex"]
    url = f"https://switchboard.example/v1/hook?bodySHA256={claimed}"
    return signature_valid(
        url, case["body"].encode(), _sign(url, HASH_CHECK_TOKEN), HASH_CHECK_TOKEN
    )


def our_rule_predicts(case: dict[str, Any]) -> bool:
    """Our rule signs the URL as written plus every pair: valid iff that is what was signed.

    (Exact for the cases that reach it, whose URLs carry no port.)
    """
    suffix = "".join(name + value for name, value in sorted(_pairs(case)))
    return bool(case["signed_string"] == case["url"] + suffix)


def _marks(case: dict[str, Any]) -> list[pytest.MarkDecorator]:
    reasons = [NOT_OURS[c] for c in case.get("conventions") or [] if c in NOT_OURS]
    unknown = set(case.get("conventions") or []) - NOT_OURS.keys() - OURS
    assert not unknown, f"{case['id']}: decide on conventions {unknown}"
    # A case tagged with an SDK's leniency that our rule answers the same way simply passes.
    if not reasons or our_rule_predicts(case) == case.get("expected_valid", True):
        return []
    return [pytest.mark.xfail(raises=ConventionMismatch, strict=True, reason="; ".join(reasons))]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"], marks=_marks(c)) for c in CASES])
def test_signature_case(case: dict[str, Any]) -> None:
    if "expected_body_sha256_hex" in case:
        assert body_sha256(case["body"].encode()) == case["expected_body_sha256_hex"]
    expected = case.get("expected_valid", True)
    answer = our_answer(case)
    if any(c in NOT_OURS for c in case.get("conventions") or []):
        assert answer == our_rule_predicts(case)
        if answer != expected:
            raise ConventionMismatch(f"{case['id']}: the SDK says {expected}, our rule {answer}")
    assert answer == expected
