"""With the broker gone, ingest refuses (503) so the provider retries; nothing is half-done."""

from __future__ import annotations

import aiohttp
import pytest

from libs.common.events import MessageReceived
from libs.common.topics import Topics
from tests.support.harness import AUTH_TOKEN, OUR_NUMBER, Launch
from tests.support.kafka import collect, wait_until
from tests.support.webhooks import encode_form, sign_twilio
from tooling.devstack import DevStack, create_topics
from tooling.sandbox.twilio import sms_webhook_form

pytestmark = pytest.mark.e2e


async def test_webhook_gets_503_while_the_broker_is_down_and_200_after(
    own: DevStack, service_env: dict[str, str], launch: Launch, http: aiohttp.ClientSession
) -> None:
    env = {
        **service_env,
        **own.environment("switchboard."),
        "SWITCHBOARD_KEY_PREFIX": "sb:",
        "SWITCHBOARD_PUBLISH_TIMEOUT": "2",
    }
    await launch(["ingest"], env)
    url = f"{env['SWITCHBOARD_PUBLIC_URL']}/v1/sms/twilio"
    form = sms_webhook_form(sender="+14155550188", recipient=OUR_NUMBER, body="hello?")

    own.broker.stop()
    async with http.post(
        url, data=encode_form(form), headers=sign_twilio(url, form, AUTH_TOKEN)
    ) as response:
        assert response.status == 503
        assert response.headers["Retry-After"]

    await own.broker.start()  # in-memory: comes back empty, on the same port
    topics = Topics.with_prefix("switchboard.")
    await create_topics(own.broker.bootstrap_servers, topics.all())
    async with collect(own.broker.bootstrap_servers, topics.inbound) as seen:

        async def retry_until_accepted() -> int:
            async with http.post(
                url, data=encode_form(form), headers=sign_twilio(url, form, AUTH_TOKEN)
            ) as response:
                return response.status

        statuses: list[int] = []
        for _ in range(30):  # the provider retries, each try bounded by the publish timeout
            statuses.append(await retry_until_accepted())
            if statuses[-1] == 200:
                break
        assert statuses[-1] == 200, statuses
        assert set(statuses) <= {200, 503}
        await wait_until(lambda: bool(seen.of_type(MessageReceived)), message="the event")
    ids = {e.id for e in seen.of_type(MessageReceived)}
    assert len(ids) == 1
