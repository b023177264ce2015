"""OpenTelemetry set-up and trace context carried in Kafka headers.

Exporting is configured by the standard ``OTEL_*`` variables: with
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) set, spans go out over OTLP/HTTP;
without it they are created (ids still flow through Kafka) but not exported.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cache
from types import TracebackType

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
        if any(k == key for k, _ in carrier):  # rarely: rebuilt only to drop an old value
            carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value.encode("latin-1")))


_getter = _HeaderGetter()
_setter = _HeaderSetter()


@dataclass(frozen=True)
class Telemetry:
    """The providers :func:`setup_tracing` installed. The service's run loop shuts them down
    itself rather than leaving it to ``atexit``, so what they still hold is exported however
    the process ends (multiprocessing ends the processes it forks with ``os._exit``, which runs
    no ``atexit`` handler)."""

    tracer: TracerProvider
    meter: MeterProvider | None = None

    def shutdown(self) -> None:
        self.tracer.shutdown()
        if self.meter is not None:
            self.meter.shutdown()


def setup_tracing(service: str) -> Telemetry:
    """Install the global tracer provider (and, when exporting, the meter provider) for this
    process.

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
    meter = None
    if exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if os.environ.get("OTEL_METRICS_EXPORTER", "otlp") != "none":
            meter = _export_meters(resource)
    trace.set_tracer_provider(provider)
    return Telemetry(provider, meter)


def _export_meters(resource: Resource) -> MeterProvider:
    """Send the OpenTelemetry metrics (the HTTP instrumentation's request durations and active
    requests) over OTLP beside the spans; Switchboard's own metrics stay on ``/metrics``."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    reader = PeriodicExportingMetricReader(OTLPMetricExporter())  # OTEL_METRIC_EXPORT_INTERVAL
    meter = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
    otel_metrics.set_meter_provider(meter)
    return meter


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


_TRACEPARENT = re.compile(r"\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s*")


def context_from_traceparent(traceparent: str | None) -> otel_context.Context:
    """Rebuild a stored context (an SLA timer keeps its conversation's traceparent); empty
    unless ``traceparent`` is valid by the W3C rules the OpenTelemetry propagator applies
    (version ``ff`` is invalid, and version ``00`` has exactly four fields).

    Parsed here rather than by the configured propagators: the value is always W3C (it was
    stored or sent as ``traceparent``), and the propagators' general path cost the SLA worker
    a fifth of its tracing when it rebuilt one context per fired timer."""
    found = _TRACEPARENT.fullmatch(traceparent) if traceparent else None
    if found is None:
        return otel_context.Context()
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest):
        return otel_context.Context()
    span_context = trace.SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=trace.TraceFlags(int(flags, 16)),
    )
    if not span_context.is_valid:
        return otel_context.Context()
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


def span_links(traceparents: Iterable[str | None]) -> list[trace.Link]:
    """Links to the spans stored beside delayed work: a batch that serves several traces (SLA
    timers claimed together) is its own span, linked to each trace it joins."""
    return links_to(context_from_traceparent(t) for t in dict.fromkeys(traceparents))


def links_to(contexts: Iterable[otel_context.Context]) -> list[trace.Link]:
    """Links to the spans of ``contexts`` (already rebuilt), skipping those without one."""
    links = []
    for ctx in contexts:
        span_context = trace.get_current_span(ctx).get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context))
    return links


class _Active(AbstractContextManager[trace.Span]):
    """``trace.use_span(span, end_on_exit=True)`` without its generator machinery, which cost
    as much as the span itself where every event has its own: the span is current inside the
    block (on top of ``base``, else of the current context), an ``Exception`` leaving the
    block is recorded on it with an error status, and it ends on exit."""

    __slots__ = ("_base", "_span", "_token")

    def __init__(self, span: trace.Span, base: otel_context.Context | None) -> None:
        self._span = span
        self._base = base

    def __enter__(self) -> trace.Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span, self._base))
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            otel_context.detach(self._token)
            if isinstance(exc, Exception) and self._span.is_recording():
                self._span.record_exception(exc)
                self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            self._span.end()


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
_KAFKA = MessagingSystemValues.KAFKA.value


def messaging_span(
    tracer: trace.Tracer,
    operation: MessagingOperationTypeValues,
    topic: str,
    attributes: Mapping[str, AttributeValue],
    context: otel_context.Context | None = None,
) -> AbstractContextManager[trace.Span]:
    """A Kafka span as the messaging conventions name it, ``{operation} {topic}`` (``send
    switchboard.messages.inbound``), with their common attributes and ``attributes``, current
    in the block: a child of ``context``, by default of the current context."""
    span = tracer.start_span(
        f"{operation.value} {topic}",
        context=context,
        kind=_MESSAGING_KINDS[operation],
        attributes={
            MESSAGING_SYSTEM: _KAFKA,
            MESSAGING_OPERATION_TYPE: operation.value,
            MESSAGING_OPERATION_NAME: operation.value,
            MESSAGING_DESTINATION_NAME: topic,
            **attributes,
        },
    )
    return _Active(span, context)


def mark_failed(span: trace.Span, reason: str, error: BaseException) -> None:
    """Give a span that ends without raising the error status of what it gave up on."""
    span.set_attribute(ERROR_TYPE, type(error).__qualname__)
    span.set_status(Status(StatusCode.ERROR, f"{reason}: {type(error).__name__}: {error}"))
