"""Simulated customers answer the surveys they receive, the way real ones do.

An SMS or WhatsApp customer reads their phone (the Twilio sandbox's list of messages sent), a
chat customer their widget (the socket's reply frames), an email customer their mailbox (the
SMTP sandbox). A message that asks for "a number from LOW ... to HIGH" is a survey: most
customers reply on the thread with a bare number, as ingest expects; an email survey is
answered by following its signed link for the chosen score. Scores follow a spread typical of
a store's customers: mostly content, some not. What the customers gave is tallied here only
to check the system's own figures against; the summary shows the system's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Final

import aiohttp

from tooling.simulate.customers import Customers, Endpoints, Thread

SCALE: Final = re.compile(r"number from (\d+)\b.*?\bto (\d+)\b", re.S)
LINK: Final = re.compile(r"(\S+/v1/surveys/[A-Za-z0-9._~-]+)\?score=(\d+)")
SPREAD: Final[dict[tuple[int, int], tuple[float, ...]]] = {
    (1, 5): (0.06, 0.06, 0.13, 0.30, 0.45),
    (0, 10): (0.03, 0.02, 0.02, 0.03, 0.03, 0.05, 0.07, 0.12, 0.18, 0.20, 0.25),
}
"""How likely each score is, per scale (CSAT 1-5; NPS 0-10: about 45 % promoters and 25 %
detractors, an NPS near 20)."""
KINDS: Final[dict[tuple[int, int], str]] = {(1, 5): "csat", (0, 10): "nps"}


@dataclass(frozen=True, slots=True)
class SurveyPlan:
    answer_share: float = 0.8
    """Share of surveyed customers who answer."""
    read_every: float = 1.0
    """Seconds between looks at the phones and mailboxes."""


@dataclass
class GivenScores:
    """The scores the customers gave (accepted by the system), by kind."""

    scores: dict[str, list[int]] = field(default_factory=dict)
    surveys: dict[str, int] = field(default_factory=dict)
    """Surveys the customers received, by channel."""

    def add(self, kind: str, score: int) -> None:
        self.scores.setdefault(kind, []).append(score)

    @property
    def answers(self) -> int:
        return sum(len(scores) for scores in self.scores.values())


def scale_of(text: str) -> tuple[int, int] | None:
    """The scale a survey text asks for (None: not a survey this simulator knows)."""
    match = SCALE.search(text)
    if match is None:
        return None
    scale = (int(match.group(1)), int(match.group(2)))
    return scale if scale in SPREAD else None


class SurveyTakers:
    """Watches what the customers receive and answers the surveys among it."""

    def __init__(
        self,
        customers: Customers,
        endpoints: Endpoints,
        http: aiohttp.ClientSession,
        plan: SurveyPlan,
        mail: Sequence[EmailMessage] = (),
        *,
        seed: int = 5,
    ) -> None:
        self._customers = customers
        self._endpoints = endpoints
        self._http = http
        self._plan = plan
        self._mail = mail
        self._rng = random.Random(seed)
        self._texts_read = 0
        self._mail_read = 0
        self._answering: set[asyncio.Task[None]] = set()
        self._answered: set[str] = set()
        """Threads (and email addresses) whose customer answered a survey: each answers one.
        The system keeps one score per conversation and kind (a second answer replaces the
        first), and on SMS and chat a thread holds one pending survey, so a second answer
        there could land on the other survey; a second email of one survey (a retried send)
        carries the same link, whose second click is a repeat. Either would count once."""
        self.given = GivenScores()
        self.open = True
        """Whether customers still answer (closed before the final figures are read)."""
        customers.on_chat_reply = self._chat_reply

    async def run(self, stop: asyncio.Event) -> None:
        """Read the phones and mailboxes every ``read_every`` seconds until ``stop``."""
        try:
            while not stop.is_set():
                await self._read_phones()
                self._read_mail()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._plan.read_every)
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop answering; wait for the answers on their way."""
        self.open = False
        await asyncio.gather(*self._answering, return_exceptions=True)

    async def _read_phones(self) -> None:
        sandbox = self._endpoints.twilio_sandbox_url
        if sandbox is None:
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self._http.get(f"{sandbox}/sandbox/messages") as response:
                response.raise_for_status()
                messages = await response.json()
            for message in messages[self._texts_read :]:
                self._text_received(str(message.get("to") or ""), str(message.get("body") or ""))
            self._texts_read = len(messages)

    def _text_received(self, to: str, body: str) -> None:
        ours = self._endpoints.our_number
        key = (
            f"whatsapp:{ours}:{to.removeprefix('whatsapp:')}"
            if to.startswith("whatsapp:")
            else f"sms:{ours}:{to}"
        )
        thread = self._customers.thread(key)
        if thread is not None:
            self._survey_on_thread(thread, body)

    def _chat_reply(self, thread: Thread, text: str) -> None:
        self._survey_on_thread(thread, text)

    def _survey_on_thread(self, thread: Thread, text: str) -> None:
        scale = scale_of(text)
        if scale is None or not self._will_answer(thread.channel):
            return
        if thread.thread_key in self._answered:
            return
        self._answered.add(thread.thread_key)
        score = self._score(scale)
        self._spawn(self._reply(thread, KINDS[scale], score))

    async def _reply(self, thread: Thread, kind: str, score: int) -> None:
        await asyncio.sleep(self._rng.uniform(0.2, 2.0))  # reading, then typing
        if self.open and await self._customers.answer(thread, str(score)):
            self.given.add(kind, score)

    def _read_mail(self) -> None:
        for message in self._mail[self._mail_read :]:
            links = {int(score): url for url, score in LINK.findall(_text_of(message))}
            scale = (min(links), max(links)) if links else None
            if scale in SPREAD and scale is not None and self._will_answer("email"):
                customer = f"email:{message.get('To', '')}"  # one thread per address here
                if customer in self._answered:
                    continue
                self._answered.add(customer)
                score = self._score(scale)
                self._spawn(self._click(f"{links[score]}?score={score}", KINDS[scale], score))
        self._mail_read = len(self._mail)

    async def _click(self, url: str, kind: str, score: int) -> None:
        await asyncio.sleep(self._rng.uniform(0.2, 2.0))
        if not self.open:
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self._http.get(url) as response:
                if response.status == 200:
                    self._customers.stats.answers["email"] += 1
                    self.given.add(kind, score)
                    return
        self._customers.stats.failed["email"] += 1

    def _will_answer(self, channel: str) -> bool:
        self.given.surveys[channel] = self.given.surveys.get(channel, 0) + 1
        return self._rng.random() < self._plan.answer_share

    def _score(self, scale: tuple[int, int]) -> int:
        low, high = scale
        return self._rng.choices(range(low, high + 1), SPREAD[scale])[0]

    def _spawn(self, answering: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(answering)
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)


def _text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    return body.get_content() if body is not None else ""
