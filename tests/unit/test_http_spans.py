"""Every service's HTTP requests are server spans of the official aiohttp instrumentation.

``create_app`` adds the instrumentation's middleware to the app it builds (aiohttp itself is not
patched: an app built elsewhere stays untraced). Spans are read from an in-memory exporter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from libs.common.service import create_app
from libs.common.settings import Settings
from libs.common.tracing import http_server_middleware
from tests.support.tracing import span_exporter

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = span_exporter()
    exporter.clear()
    return exporter


async def thing(request: web.Request) -> web.Response:
    return web.json_response({"id": request.match_info["id"]}, status=201)


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    """An app with the middleware ``create_app`` adds, serving one route."""
    app = web.Application(middlewares=[http_server_middleware()])
    app.router.add_post("/v1/things/{id}", thing)
    served = TestServer(app)
    await served.start_server()
    yield served
    await served.close()


def test_create_app_adds_the_instrumentation_middleware_and_aiohttp_is_not_patched() -> None:
    app = create_app(Settings(), "test")
    assert app.middlewares[0] is http_server_middleware()
    assert type(web.Application()) is web.Application


async def test_a_request_is_a_server_span_named_by_its_route_in_the_callers_trace(
    spans: InMemorySpanExporter, server: TestServer
) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.make_url("/v1/things/42"), headers={"traceparent": traceparent}) as r,
    ):
        assert r.status == 201
    [span] = spans.get_finished_spans()
    assert span.name == "POST /v1/things/{id}"
    assert span.kind is SpanKind.SERVER
    assert span.parent is not None
    assert format(span.parent.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_ID
    attributes = dict(span.attributes or {})
    assert attributes["http.route"] == "/v1/things/{id}"
    assert attributes["http.method"] == "POST"
    assert attributes["http.status_code"] == 201
