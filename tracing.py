"""OpenTelemetry tracing of the API and the worker: off unless the `OTEL_*` variables ask for it.

One trace follows an event from its intake request through the outbox dispatch, the incident
workflow and its activities to the callback's HTTP request, whose `traceparent` lets the
tenant's own tracing show the remediation beside the original failure.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from fastapi import FastAPI
    from temporalio.client import Interceptor

log = logging.getLogger("awfdrs.tracing")
TRACER_NAME = "awfdrs"
# Probes and scrapes every few seconds would drown the traces worth reading.
UNTRACED_URLS = "/health,/metrics"
# Events store W3C `traceparent` whatever OTEL_PROPAGATORS says the process speaks on the wire.
W3C = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None


def enabled_by(environ: Mapping[str, str]) -> bool:
    """Tracing is on when an OTLP endpoint or a traces exporter (other than `none`) is set."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return bool(exporter) or any(environ.get(name) for name in endpoints)


def _exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters `OTEL_TRACES_EXPORTER` names (`otlp`, the default, and `console`)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    names = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    exporters: list[SpanExporter] = []
    for name in (part.strip() for part in names.split(",")):
        if name == "otlp":  # http/protobuf; reads the OTEL_EXPORTER_OTLP_* variables itself
            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            log.warning("OTEL_TRACES_EXPORTER %r is not supported; use otlp or console", name)
    return exporters


def _libraries() -> list[Any]:
    """The client libraries traced (imported only when tracing is on)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    asyncpg = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    return [asyncpg, RedisInstrumentor(), HTTPXClientInstrumentor()]


def start_tracing(service_name: str, exporter: SpanExporter | None = None) -> bool:
    """Configure tracing once per process; `exporter` (tests) exports each span at once."""
    global _provider
    if _provider is not None:
        return True
    processors: list[SpanProcessor] = []
    if exporter is not None:
        processors.append(SimpleSpanProcessor(exporter))
    elif enabled_by(os.environ):
        processors.extend(BatchSpanProcessor(found) for found in _exporters(os.environ))
    if not processors:
        return False
    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    # OTEL_RESOURCE_ATTRIBUTES and OTEL_TRACES_SAMPLER are read by the SDK itself.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    for processor in processors:
        provider.add_span_processor(processor)
    for library in _libraries():
        library.instrument(tracer_provider=provider)
    if exporter is None:  # the process's own provider, for any library that asks globally
        trace.set_tracer_provider(provider)
    _provider = provider
    return True


def stop_tracing() -> None:
    """Flush and stop tracing, undoing the library instrumentation."""
    global _provider
    if _provider is None:
        return
    for library in _libraries():  # instrumentors are singletons: these are the ones above
        library.uninstrument()
    _provider.shutdown()
    _provider = None


def tracer() -> trace.Tracer:
    """AWFDRS's tracer: the configured provider's, or a no-op one when tracing is off."""
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer(TRACER_NAME)


def temporal_interceptors() -> list[Interceptor]:
    """The Temporal client's interceptors: spans and context for workflows and activities."""
    if _provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer())]


def instrument_app(app: FastAPI) -> None:
    """Trace the app's requests (continuing an incoming `traceparent`) when tracing is on."""
    if _provider is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=_provider, excluded_urls=UNTRACED_URLS
        )


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, stored with each event; None when off."""
    if _provider is None:
        return None
    carrier: dict[str, str] = {}
    W3C.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def dispatch_span(key: str, traceparents: Sequence[str | None]) -> Iterator[None]:
    """Span one outbox group's delivery, in the trace of its first traced event.

    It links to every event it carries: a group folds several requests into one signal, and
    each link leads back to the request that reported its event.
    """
    if _provider is None:
        yield
        return
    contexts = [W3C.extract({"traceparent": value}) for value in traceparents if value is not None]
    spans = [trace.get_current_span(context).get_span_context() for context in contexts]
    links = [Link(span) for span in spans if span.is_valid]
    with tracer().start_as_current_span(
        "outbox dispatch",
        context=contexts[0] if contexts else None,
        kind=SpanKind.PRODUCER,
        links=links,
        attributes={"awfdrs.outbox.key": key, "awfdrs.outbox.events": len(traceparents)},
    ):
        yield
