"""Agent tokens carry skills and languages; malformed ones are refused; ``switchboard token``
mints them."""

from __future__ import annotations

import pytest

from libs.common.signed_tokens import SignedTokens
from libs.contracts.agent_access import AgentTokens, TokenRejected
from tooling import agent_token

KEY = "unit-test-key-0123456789abcdef0123456789"


def test_skills_and_languages_round_trip() -> None:
    tokens = AgentTokens(KEY)
    claims = tokens.verify(tokens.issue("ada", ["q"], skills=["payments"], languages=["es"]))
    assert (claims.skills, claims.languages) == (frozenset({"payments"}), frozenset({"es"}))
    plain = tokens.verify(tokens.issue("bo", ["q"]))
    assert (plain.skills, plain.languages) == (frozenset(), frozenset())


@pytest.mark.parametrize(
    "extra",
    [{"languages": ["spanish"]}, {"languages": "es"}, {"skills": ["Pay ments"]}, {"skills": [1]}],
)
def test_malformed_attributes_are_refused(extra: dict[str, object]) -> None:
    signed = SignedTokens(KEY, audience=None, max_chars=8192).sign(
        {"sub": "ada", "queues": ["q"], "exp": 4_102_444_800, **extra}
    )
    with pytest.raises(TokenRejected):
        AgentTokens(KEY).verify(signed)


def test_the_cli_mints_skills_and_languages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGENT_TOKEN_KEY", KEY)
    argv = ["ada", "--queue", "q", "--skill", "payments", "--language", "es"]
    assert agent_token.main(argv) == 0
    claims = AgentTokens(KEY).verify(capsys.readouterr().out.strip())
    assert (claims.skills, claims.languages) == (frozenset({"payments"}), frozenset({"es"}))
    assert agent_token.main(["ada", "--queue", "q", "--language", "Spanish"]) == 2
