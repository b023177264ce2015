"""OpenTelemetry set-up and trace context carried in Kafka headers.

Exporting is configured by the standard ``OTEL_*`` variables: with
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) set, spans go out over OTLP/HTTP;
without it they are created (ids still flow through Kafka) but not exported.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import cache

from aiohttp.typedefs import Middleware
from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.aiohttp_server import (
    AioHttpServerInstrumentor,
    create_aiohttp_middleware,
)
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

# The messaging conventions are still "development" in semconv 0.66: their constants live in
# the package's _incubating modules (error.type is stable).
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
    MessagingOperationTypeValues,
    MessagingSystemValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

Headers = list[tuple[str, bytes]]


class _HeaderGetter(Getter[Sequence[tuple[str, bytes]]]):
    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        values = [v.decode("latin-1") for k, v in carrier if k == key]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [k for k, _ in carrier]


class _HeaderSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value.encode("latin-1")))


_getter = _HeaderGetter()
_setter = _HeaderSetter()


def setup_tracing(service: str) -> TracerProvider:
    """Install the global tracer provider for this process.

    Without an exporter nothing would ever read the spans, so unless ``OTEL_TRACES_SAMPLER``
    says otherwise they are not recorded: ids are still created and carried in Kafka headers
    (a downstream service that exports still joins the trace), at a fraction of the cost.
    """
    exporting = (
        bool(
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
        and os.environ.get("OTEL_TRACES_EXPORTER", "otlp") != "none"
    )
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service)})
    if exporting or os.environ.get("OTEL_TRACES_SAMPLER"):
        provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER
    else:
        provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_OFF))
    if exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if os.environ.get("OTEL_METRICS_EXPORTER", "otlp") != "none":
            _export_meters(resource)
    trace.set_tracer_provider(provider)
    return provider


def _export_meters(resource: Resource) -> None:
    """Send the OpenTelemetry metrics (the HTTP instrumentation's request durations and active
    requests) over OTLP beside the spans; Switchboard's own metrics stay on ``/metrics``."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    reader = PeriodicExportingMetricReader(OTLPMetricExporter())  # OTEL_METRIC_EXPORT_INTERVAL
    otel_metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


@cache
def http_server_middleware() -> Middleware:
    """The official aiohttp server instrumentation (a span and duration metrics per request,
    in the caller's trace) as a middleware for an app to add explicitly.

    Its middleware works from the tracer, meters and URL exclusions (``OTEL_PYTHON_AIOHTTP_
    SERVER_EXCLUDED_URLS``) that the instrumentor sets up; the instrumentor also replaces
    ``web.Application`` with a traced subclass, which is undone at once: only apps that add
    this middleware are traced, and each request once.
    """
    instrumentor = AioHttpServerInstrumentor()
    with warnings.catch_warnings():
        # aiohttp warns against subclassing web.Application; the subclass is never used.
        warnings.simplefilter("ignore", DeprecationWarning)
        instrumentor.instrument()
    instrumentor.uninstrument()
    middleware: Middleware = create_aiohttp_middleware()
    return middleware


def inject(headers: Headers) -> None:
    """Write the current trace context (``traceparent``) into record headers."""
    propagate.inject(headers, setter=_setter)


def extract(headers: Sequence[tuple[str, bytes]]) -> otel_context.Context:
    """The trace context a record was produced under."""
    return propagate.extract(headers, getter=_getter)


def traceparent_of(headers: Sequence[tuple[str, bytes]]) -> str | None:
    values = _getter.get(headers, "traceparent")
    return values[0] if values else None


def context_from_traceparent(traceparent: str | None) -> otel_context.Context:
    """Rebuild a stored context (an SLA timer keeps its conversation's traceparent)."""
    if not traceparent:
        return otel_context.Context()
    return propagate.extract({"traceparent": traceparent})


def span_links(traceparents: Iterable[str | None]) -> list[trace.Link]:
    """Links to the spans stored beside delayed work: a batch that serves several traces (SLA
    timers claimed together) is its own span, linked to each trace it joins."""
    links = []
    for traceparent in dict.fromkeys(traceparents):
        span_context = trace.get_current_span(
            context_from_traceparent(traceparent)
        ).get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context))
    return links


@contextmanager
def attached(ctx: otel_context.Context) -> Iterator[None]:
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def current_trace_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def current_traceparent() -> str | None:
    """The current context as a ``traceparent`` string, to store beside delayed work."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def annotate(**attributes: str | int | float | bool | None) -> None:
    """Put domain attributes (``switchboard.*``) on the current span; never raises."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    for name, value in attributes.items():
        if value is not None:
            span.set_attribute(f"switchboard.{name}", value)


SEND = MessagingOperationTypeValues.SEND
PROCESS = MessagingOperationTypeValues.PROCESS
_MESSAGING_KINDS = {SEND: trace.SpanKind.PRODUCER, PROCESS: trace.SpanKind.CONSUMER}


def messaging_span(
    tracer: trace.Tracer,
    operation: MessagingOperationTypeValues,
    topic: str,
    attributes: Mapping[str, AttributeValue],
) -> AbstractContextManager[trace.Span]:
    """A Kafka span as the messaging conventions name it, ``{operation} {topic}`` (``send
    switchboard.messages.inbound``), with their common attributes and ``attributes``."""
    return tracer.start_as_current_span(
        f"{operation.value} {topic}",
        kind=_MESSAGING_KINDS[operation],
        attributes={
            MESSAGING_SYSTEM: MessagingSystemValues.KAFKA.value,
            MESSAGING_OPERATION_TYPE: operation.value,
            MESSAGING_OPERATION_NAME: operation.value,
            MESSAGING_DESTINATION_NAME: topic,
            **attributes,
        },
    )


def mark_failed(span: trace.Span, reason: str, error: BaseException) -> None:
    """Give a span that ends without raising the error status of what it gave up on."""
    span.set_attribute(ERROR_TYPE, type(error).__qualname__)
    span.set_status(Status(StatusCode.ERROR, f"{reason}: {type(error).__name__}: {error}"))
