"""The router's batch hook against real Redis: a batch classified ahead in one call routes every
message exactly as routing it on its own does, and handling takes the batch's results instead
of classifying again."""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pytest
from redis.asyncio import Redis

from libs.common.config import LiveConfig
from libs.common.events import ConversationRouted
from libs.common.kafka.producer import Outgoing
from libs.common.keys import Keys
from libs.common.topics import Topics
from services.router.classify_eval import read_labelled_csv
from services.router.issue_types import Classification, IssueClassifier
from services.router.model_cache import ModelCache
from services.router.route import Router
from services.router.runtime import RouterRuntime
from tests.integration.router.test_router_state import consumed, sms
from tests.support.harness import Isolation

ROOT = Path(__file__).parents[3]
STORE = ROOT / "config" / "store.yaml"
EXAMPLES = ROOT / "config" / "examples" / "customer-service.csv"


@pytest.fixture(scope="module")
def store(models: ModelCache) -> LiveConfig[RouterRuntime]:
    """The sample configuration: the example-trained model decides most texts."""
    return LiveConfig(STORE, partial(RouterRuntime.build, models=models))


def router(live: LiveConfig[RouterRuntime], redis: Redis, prefix: str, topics: Topics) -> Router:
    return Router.on_redis(redis, Keys(prefix), live=live, topics=topics)


def events(outputs: Sequence[Sequence[Outgoing]]) -> list[tuple[str, str, object]]:
    return [(o.topic, o.key, o.event) for out in outputs for o in out]


async def test_a_prepared_batch_routes_every_message_as_it_is_routed_alone(
    store: LiveConfig[RouterRuntime],
    redis: Redis,
    isolation: Isolation,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = [text for text, _ in random.Random(9).sample(read_labelled_csv(EXAMPLES), 40)]
    messages = [sms(text, f"+1415555{n % 25:04d}") for n, text in enumerate(texts)]
    batch = [consumed(message, message.thread_key) for message in messages]
    alone = router(store, redis, f"{isolation.key_prefix}alone:", isolation.topics)
    batched = router(store, redis, f"{isolation.key_prefix}batched:", isolation.topics)
    expected = [await alone.handle(record) for record in batch]

    await batched.prepare(batch)

    def classify_again(self: IssueClassifier, text: str) -> Classification:
        raise AssertionError(f"classified again: {text!r}")

    monkeypatch.setattr(IssueClassifier, "classify", classify_again)
    got = [await batched.handle(record) for record in batch]

    assert events(got) == events(expected)
    types = {
        o.event.data.issue_type
        for out in expected
        for o in out
        if isinstance(o.event.data, ConversationRouted)
    }
    assert len(types) > 5  # the model decided them, not one catch-all
