"""Survey commands through the deliverer against real Redis: the pending survey of an SMS thread,
the signed answer links of an email survey, and the suppression of both where they must not go."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from libs.common.events import Event, OutboundCommand, OutboundReceipt, event_id
from libs.common.kafka.consumer import Consumed
from libs.common.keys import Keys
from libs.contracts.surveys import KIND_PARAM, PendingSurvey, PendingSurveys, SurveyLinks
from services.outbound.deliver import Deliverer
from services.outbound.senders.base import OutgoingMessage
from services.outbound.survey_sends import SurveyPreparer
from tests.integration.outbound.conftest import DelivererParts
from tests.support.harness import OUR_NUMBER, Isolation, TwilioFake

CUSTOMER = "+14155550123"
SMS_THREAD = f"sms:{OUR_NUMBER}:{CUSTOMER}"
EMAIL_THREAD = "email:<root@customer.example>"
LINK_KEY = "survey-link-test-key-0123456789abcdef"
PUBLIC_URL = "https://ingest.switchboard.example"
AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
CONFIG = """
queues: {desk: {}}
rules: []
surveys: {after: 1h, answer_window: 2d, channels: [sms, email]}
templates:
  survey:
    sms: {en: "How did we do with {{ reference }}? Reply 1 to 5."}
    email:
      en: |
        How did we do with {{ reference }}?
        {% for score in range(1, 6) %}
        {{ score }}: {{ survey_url }}?score={{ score }}
        {%- endfor %}
  nps-survey:
    sms: {en: "How likely are you to recommend us? Reply 0 to 10."}
    email:
      en: |
        How likely are you to recommend us?
        {% for score in range(0, 11) %}
        {{ score }}: {{ survey_url }}?score={{ score }}
        {%- endfor %}
"""


class CapturingEmail:
    """An email sender that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def send(self, message: OutgoingMessage) -> str:
        self.sent.append(message)
        return f"<{message.command_id}@test>"


class Outbound:
    def __init__(self, deliverer: Deliverer, email: CapturingEmail) -> None:
        self.deliverer, self.email = deliverer, email


@pytest.fixture
async def make_outbound(deliverer_parts: DelivererParts) -> Any:
    deliverer_parts.config.write_text(CONFIG)
    sms = deliverer_parts.twilio_sms()

    def make(link_key: str | None = LINK_KEY) -> Outbound:
        email = CapturingEmail()
        deliverer = deliverer_parts.deliverer(
            {"sms": sms, "email": email},
            surveys=SurveyPreparer(
                pending=PendingSurveys(deliverer_parts.redis, deliverer_parts.keys),
                links=SurveyLinks(link_key) if link_key else None,
                public_url=PUBLIC_URL,
            ),
        )
        return Outbound(deliverer, email)

    return make


def survey_command(channel: str, thread: str, recipient: str, **fields: Any) -> Consumed:
    command = OutboundCommand(
        command_id=event_id("conv-1", "resolution", "1", "survey", channel),
        kind="survey",
        channel=channel,  # type: ignore[arg-type]
        conversation_id="conv-1",
        reference="SB-7K3Q9",
        recipient=recipient,
        template="survey",
        params={"reference": "SB-7K3Q9"},
        **fields,
    )
    event = Event(id=command.command_id, source="/sla", subject=thread, time=AT, data=command)
    return Consumed(event=event, topic="commands", partition=0, offset=0, key=thread)


def receipt(outputs: list[Any]) -> OutboundReceipt:
    [data] = [o.event.data for o in outputs if isinstance(o.event.data, OutboundReceipt)]
    assert isinstance(data, OutboundReceipt)
    return data


async def test_an_sms_survey_records_the_thread_as_pending_for_the_answer_window(
    make_outbound: Any, redis: Redis, isolation: Isolation, twilio: TwilioFake
) -> None:
    outbound = make_outbound()
    consumed = survey_command("sms", SMS_THREAD, CUSTOMER)
    assert receipt(await outbound.deliverer.handle(consumed)).status == "sent"
    [sent] = twilio.sandbox.messages
    assert "SB-7K3Q9" in sent["body"]
    keys = Keys(isolation.key_prefix)
    pending = await PendingSurveys(redis, keys).get(SMS_THREAD)
    command = consumed.event.data
    assert isinstance(command, OutboundCommand)
    assert pending == PendingSurvey("conv-1", command.command_id)
    ttl = await redis.ttl(keys.survey_pending(SMS_THREAD))
    assert timedelta(days=2) - timedelta(minutes=1) < timedelta(seconds=ttl) <= timedelta(days=2)


async def test_an_email_survey_carries_five_signed_links(make_outbound: Any) -> None:
    outbound = make_outbound()
    consumed = survey_command("email", EMAIL_THREAD, "ada@example.org")
    assert receipt(await outbound.deliverer.handle(consumed)).status == "sent"
    [mail] = outbound.email.sent
    assert mail.automatic  # Auto-Submitted: a survey is not a person's answer
    links = re.findall(r"(https://\S+)\?score=([1-5])", mail.text)
    assert [score for _, score in links] == ["1", "2", "3", "4", "5"]
    [url] = {url for url, _ in links}
    assert url.startswith(f"{PUBLIC_URL}/v1/surveys/")
    ticket = SurveyLinks(LINK_KEY).verify(url.rpartition("/")[2], now=AT)
    command = consumed.event.data
    assert isinstance(command, OutboundCommand)
    assert (ticket.conversation_id, ticket.command_id, ticket.thread_key) == (
        "conv-1",
        command.command_id,
        EMAIL_THREAD,
    )
    assert ticket.expires_at == AT + timedelta(days=2)  # from the command's time: retries agree
    assert mail.html is not None
    assert mail.html.count("?score=") == 5


def nps_survey(channel: str, thread: str, recipient: str) -> Consumed:
    command = OutboundCommand(
        command_id=event_id("conv-1", "resolution", "1", "nps", channel),
        kind="survey",
        channel=channel,  # type: ignore[arg-type]
        conversation_id="conv-1",
        reference="SB-7K3Q9",
        recipient=recipient,
        template="nps-survey",
        params={"reference": "SB-7K3Q9", KIND_PARAM: "nps"},
    )
    event = Event(id=command.command_id, source="/sla", subject=thread, time=AT, data=command)
    return Consumed(event=event, topic="commands", partition=0, offset=0, key=thread)


async def test_an_nps_survey_is_pending_as_nps_and_its_links_are_0_to_10(
    make_outbound: Any, redis: Redis, isolation: Isolation, twilio: TwilioFake
) -> None:
    outbound = make_outbound()
    sms = nps_survey("sms", SMS_THREAD, CUSTOMER)
    assert receipt(await outbound.deliverer.handle(sms)).status == "sent"
    pending = await PendingSurveys(redis, Keys(isolation.key_prefix)).get(SMS_THREAD)
    assert pending is not None
    assert pending.kind == "nps"
    email = nps_survey("email", EMAIL_THREAD, "ada@example.org")
    assert receipt(await outbound.deliverer.handle(email)).status == "sent"
    [mail] = outbound.email.sent
    links = re.findall(r"(https://\S+)\?score=(\d+)", mail.text)
    assert [int(score) for _, score in links] == list(range(0, 11))
    [url] = {url for url, _ in links}
    assert SurveyLinks(LINK_KEY).verify(url.rpartition("/")[2], now=AT).kind == "nps"


async def test_email_surveys_are_suppressed_without_a_link_key(make_outbound: Any) -> None:
    outbound = make_outbound(link_key=None)
    consumed = survey_command("email", EMAIL_THREAD, "ada@example.org")
    outcome = receipt(await outbound.deliverer.handle(consumed))
    assert outcome.status == "suppressed"
    assert outcome.error is not None
    assert "SURVEY_LINK_KEY" in outcome.error
    assert outbound.email.sent == []


async def test_a_survey_answering_an_automatic_message_is_not_sent(
    make_outbound: Any, redis: Redis, isolation: Isolation, twilio: TwilioFake
) -> None:
    outbound = make_outbound()
    consumed = survey_command("sms", SMS_THREAD, CUSTOMER)
    command = consumed.event.data
    assert isinstance(command, OutboundCommand)
    automated = OutboundCommand(
        **{
            **{f: getattr(command, f) for f in command.__struct_fields__},
            "params": {**command.params, "automated": "auto-replied"},
        }
    )
    consumed = Consumed(
        event=Event(
            id=consumed.event.id, source="/sla", subject=SMS_THREAD, time=AT, data=automated
        ),
        topic="commands",
        partition=0,
        offset=0,
        key=SMS_THREAD,
    )
    assert receipt(await outbound.deliverer.handle(consumed)).status == "suppressed"
    assert twilio.sandbox.messages == []
    keys = Keys(isolation.key_prefix)
    assert await redis.exists(keys.survey_pending(SMS_THREAD)) == 0  # nothing to answer
