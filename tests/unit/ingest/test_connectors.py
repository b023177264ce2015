"""Every ingest connector is installed the same way: ``install(app, acceptor)`` in its own
module, called in one list by the app, publishing through the one acceptor."""

from __future__ import annotations

import inspect

from libs.common.settings import Settings
from services.ingest import app as ingest
from services.ingest import chat, mailboxes, sms, survey_answers, x
from services.ingest.x.webhook import PATH as X_WEBHOOK_PATH

CONNECTOR_MODULES = (sms, x, mailboxes, chat, survey_answers)


def test_every_connector_is_an_install_function_of_its_own_module() -> None:
    assert [install.__module__ for install in ingest.CONNECTORS] == [
        module.__name__ for module in CONNECTOR_MODULES
    ]
    for install in ingest.CONNECTORS:
        assert install.__name__ == "install"
        required = [
            name
            for name, parameter in inspect.signature(install).parameters.items()
            if parameter.default is inspect.Parameter.empty
        ]
        assert required == ["app", "acceptor"], install.__module__


def test_the_app_serves_every_connector() -> None:
    app = ingest.build(
        Settings(twilio_auth_token="token", x_consumer_secret="secret", x_user_id="1")
    )
    served = {resource.canonical for resource in app.router.resources()}
    assert {
        sms.PATH,
        sms.STATUS_PATH,
        survey_answers.PATH,
        chat.SESSION_PATH,
        chat.WS_PATH,
        X_WEBHOOK_PATH,
    } <= served
