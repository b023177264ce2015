"""Spans recorded in memory, for tests that check names and attributes exactly.

OpenTelemetry lets a process set its tracer provider once, and the module-level tracers of
libs/common bind to it on first use, so one in-memory provider serves the whole test session;
each test clears what earlier ones left.
"""

from __future__ import annotations

from functools import cache

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@cache
def span_exporter() -> InMemorySpanExporter:
    """The session's exporter, installed behind the global tracer provider on first call."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter
