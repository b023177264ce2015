"""Getting a survey ready to send (see :mod:`libs.contracts.surveys` for the whole flow).

On SMS and chat the survey asks for a bare number (CSAT 1-5, NPS 0-10: the command's
``survey_kind`` param), so the thread's pending survey and its kind are recorded before the
send: the reply may come back before the provider call returns. By email the template gets
``survey_url``, a signed link (``SURVEY_LINK_KEY``) of that kind valid for the answer window,
to which it appends ``?score=N`` for each score; without the key email surveys are
suppressed, said once at start-up and on every suppressed survey.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from libs.common.config import SurveySettings
from libs.common.events import OutboundCommand
from libs.common.logs import get_logger
from libs.contracts.surveys import (
    SCORE_REPLY_CHANNELS,
    LinkTicket,
    PendingSurvey,
    PendingSurveys,
    SurveyLinks,
    kind_of,
)

log = get_logger(__name__)
SURVEY_URL_PARAM = "survey_url"
NO_LINK_KEY = "surveys by email are off: SURVEY_LINK_KEY is not set"


class SurveyPreparer:
    def __init__(
        self, *, pending: PendingSurveys, links: SurveyLinks | None, public_url: str
    ) -> None:
        self._pending = pending
        self._links = links
        self._public_url = public_url
        if links is None:
            log.warning(NO_LINK_KEY)

    async def prepare(
        self,
        command: OutboundCommand,
        thread_key: str,
        *,
        settings: SurveySettings | None,
        sent_at: datetime,
    ) -> OutboundCommand | str:
        """The command ready to render, or why it must not be sent. ``sent_at`` (the
        command's time) starts the answer window, so a retried send signs the same link."""
        window = (settings or SurveySettings()).answer_window
        kind = kind_of(command.params)
        if command.channel == "email":
            if self._links is None:
                return NO_LINK_KEY
            ticket = LinkTicket(
                conversation_id=command.conversation_id,
                command_id=command.command_id,
                thread_key=thread_key,
                expires_at=sent_at + window,
                kind=kind,
            )
            url = self._links.url(self._public_url, ticket)
            return msgspec.structs.replace(
                command, params={**command.params, SURVEY_URL_PARAM: url}
            )
        if command.channel in SCORE_REPLY_CHANNELS:
            await self._pending.record(
                thread_key,
                PendingSurvey(command.conversation_id, command.command_id, kind),
                int(window.total_seconds()),
            )
        return command
