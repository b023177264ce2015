"""Ingest names, at start-up, every channel it serves whose secret is unset (issue 16)."""

from __future__ import annotations

from libs.common.settings import Settings
from services.ingest.app import channels_without_secrets

KEY = "k" * 32
X_USER_ID = "1600000000000000001"


def test_each_channel_served_without_its_secret_is_named_with_its_variable() -> None:
    bare = Settings(x_user_id=X_USER_ID)
    named = {variable for variable, _ in channels_without_secrets(bare)}
    assert named == {
        "TWILIO_AUTH_TOKEN",
        "CHAT_SESSION_KEY",
        "SURVEY_LINK_KEY",
        "X_CONSUMER_SECRET",
    }
    assert all(effect for _, effect in channels_without_secrets(bare))


def test_nothing_is_named_once_every_secret_is_set() -> None:
    full = Settings(
        twilio_auth_token="token",
        chat_session_key=KEY,
        survey_link_key=KEY,
        x_consumer_secret="secret",
        x_user_id=X_USER_ID,
    )
    assert channels_without_secrets(full) == []
    assert "X_CONSUMER_SECRET" not in dict(channels_without_secrets(Settings()))  # X is off
