"""What the deliverer tests build a Deliverer from: a config file, real Redis, this test's keys and
topics, and Twilio senders against the sandbox (closed after the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from libs.common.config import LiveConfig
from libs.common.keys import Keys
from libs.common.topics import Topics
from services.outbound.deliver import Deliverer
from services.outbound.runtime import OutboundRuntime
from services.outbound.senders.base import Sender
from services.outbound.senders.sms import TwilioSms
from services.outbound.sends import SendRecords
from tests.support.harness import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, Isolation, TwilioFake


class DelivererParts:
    """The pieces every test deliverer shares; the test adds its senders and options."""

    def __init__(self, config: Path, redis: Redis, isolation: Isolation, twilio_url: str) -> None:
        self.config = config
        self.redis = redis
        self.keys = Keys(isolation.key_prefix)
        self.topics: Topics = isolation.topics
        self._twilio_url = twilio_url
        self._senders: list[TwilioSms] = []

    def twilio_sms(self) -> TwilioSms:
        """An SMS sender against the sandbox, from our number, without status callbacks."""
        sms = TwilioSms(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            default_sender=OUR_NUMBER,
            api_base_url=self._twilio_url,
            status_callback=None,
        )
        self._senders.append(sms)
        return sms

    def deliverer(self, senders: dict[str, Sender], **options: Any) -> Deliverer:
        """A deliverer on the config file (write it first), with these senders and options."""
        return Deliverer(
            live=LiveConfig(self.config, OutboundRuntime.build),
            senders=senders,
            sends=SendRecords(self.redis, self.keys),
            topics=self.topics,
            **options,
        )

    async def close(self) -> None:
        for sms in self._senders:
            await sms.close()


@pytest.fixture
async def deliverer_parts(
    tmp_path: Path, redis: Redis, isolation: Isolation, twilio: TwilioFake
) -> AsyncIterator[DelivererParts]:
    parts = DelivererParts(tmp_path / "outbound.yaml", redis, isolation, twilio.url)
    yield parts
    await parts.close()
