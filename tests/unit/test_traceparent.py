"""A stored ``traceparent`` is rebuilt into exactly the context the OpenTelemetry W3C
propagator would extract from it, valid or not (the SLA worker parses it itself, for speed)."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from libs.common.tracing import context_from_traceparent

TRACE = "5b8aa5a2d2c872e8321cf37308d69df2"
SPAN = "051581bf3cb55c13"


@pytest.mark.parametrize(
    "traceparent",
    [
        f"00-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-00",
        f" 00-{TRACE}-{SPAN}-01 ",
        f"01-{TRACE}-{SPAN}-01-future-fields",  # a later version may add fields
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 may not
        f"ff-{TRACE}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE}-{SPAN}",
        "garbage",
        "",
    ],
)
def test_a_traceparent_gives_what_the_w3c_propagator_gives(traceparent: str) -> None:
    ours = trace.get_current_span(context_from_traceparent(traceparent)).get_span_context()
    official = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    assert ours == trace.get_current_span(official).get_span_context()


def test_a_valid_traceparent_is_a_remote_parent() -> None:
    ctx = context_from_traceparent(f"00-{TRACE}-{SPAN}-01")
    span_context = trace.get_current_span(ctx).get_span_context()
    assert (span_context.trace_id, span_context.span_id) == (int(TRACE, 16), int(SPAN, 16))
    assert span_context.is_remote
    assert span_context.trace_flags.sampled
