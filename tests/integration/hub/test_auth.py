"""Who may connect and what they may follow: close codes for every refusal."""

from __future__ import annotations

import time

import jwt
import pytest

from libs.contracts.agent_access import WS_PATH, AgentTokens
from services.hub.protocol import CLOSE_QUEUE_FORBIDDEN, CLOSE_TOKEN_EXPIRED, CLOSE_TOKEN_INVALID
from tests.integration.hub.conftest import KEY, OTHER, QUEUE, Hub, until_closed
from tooling.hubclient import HubClient, HubClosed


async def refused(hub: Hub, token: str, *, token_in_query: bool = False) -> HubClosed:
    client = HubClient(hub.url + WS_PATH, token, session=hub.http, token_in_query=token_in_query)
    with pytest.raises(HubClosed) as closed:
        await client.connect()
    await client.close()
    return closed.value


@pytest.mark.parametrize("token_in_query", [False, True])
async def test_a_valid_token_is_accepted_from_the_header_or_the_query(
    hub: Hub, token_in_query: bool
) -> None:
    async with hub.client(QUEUE, token_in_query=token_in_query) as client:
        assert client.hello["type"] == "hello"
        assert client.hello["agent"] == "ada"
        assert client.hello["queues"] == [QUEUE]


async def test_bad_signature_and_malformed_tokens_close_with_4401(hub: Hub) -> None:
    forged = AgentTokens("another-key-0123456789abcdef0123456789").issue("ada", [QUEUE])
    assert (await refused(hub, forged)).code == CLOSE_TOKEN_INVALID
    assert (await refused(hub, "not.a.jwt")).code == CLOSE_TOKEN_INVALID
    assert (await refused(hub, "", token_in_query=True)).code == CLOSE_TOKEN_INVALID
    no_queues = jwt.encode({"sub": "ada", "exp": time.time() + 60}, KEY, algorithm="HS256")
    assert (await refused(hub, no_queues)).code == CLOSE_TOKEN_INVALID
    none_alg = jwt.encode(
        {"sub": "ada", "queues": [QUEUE], "exp": time.time() + 60}, "", algorithm="none"
    )
    assert (await refused(hub, none_alg)).code == CLOSE_TOKEN_INVALID


async def test_an_expired_token_closes_with_4402(hub: Hub) -> None:
    expired = hub.tokens.issue("ada", [QUEUE], ttl=-1)
    closed = await refused(hub, expired)
    assert closed.code == CLOSE_TOKEN_EXPIRED


async def test_a_token_that_expires_while_connected_closes_the_socket_with_4402(hub: Hub) -> None:
    client = HubClient(hub.url + WS_PATH, hub.tokens.issue("ada", [QUEUE], ttl=3), session=hub.http)
    hello = await client.connect()
    assert hello["type"] == "hello"
    closed, _ = await until_closed(client)
    assert closed.code == CLOSE_TOKEN_EXPIRED


async def test_subscribing_to_a_queue_the_token_does_not_allow_closes_with_4403(hub: Hub) -> None:
    async with hub.client(QUEUE) as client:
        await client.subscribe([QUEUE, OTHER])
        closed, _ = await until_closed(client)
    assert closed.code == CLOSE_QUEUE_FORBIDDEN
    assert OTHER in closed.reason
