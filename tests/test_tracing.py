"""One trace from the intake request to the callback's HTTP request, with an in-memory exporter."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Replayer

import tracing
from api.app import create_app
from clients import connect_temporal
from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.utils.builders import failure_event
from worker import activity_set, build_worker
from workflows.converter import DATA_CONVERTER
from workflows.incident_workflow import IncidentWorkflow
from workflows.vendor_incident_workflow import VendorIncidentWorkflow

TRACE_ID = uuid.uuid4().hex
CALLER_SPAN = uuid.uuid4().hex[:16]
HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test only, every span kept in memory."""
    assert not tracing.start_tracing("awfdrs-test"), "off unless the OTEL_* variables ask"
    exporter = InMemorySpanExporter()
    assert tracing.start_tracing("awfdrs-test", exporter)
    try:
        yield exporter
    finally:
        tracing.stop_tracing()


@pytest.fixture
async def traced_client(spans: InMemorySpanExporter, isolated_settings: Settings) -> Client:
    """A Temporal client made while tracing is on: it carries the tracing interceptor."""
    client = await connect_temporal(isolated_settings, lazy=False)
    assert any(isinstance(i, TracingInterceptor) for i in client.config()["interceptors"])
    return client


@pytest.fixture
async def api(
    traced_client: Client, isolated_settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The traced app with its dispatcher running, and the task queue it dispatches to."""
    queue = f"traced-{uuid.uuid4().hex}"
    settings = isolated_settings.model_copy(
        update={"task_queue": queue, "dispatcher_poll_interval_s": 0.2}
    )
    app = create_app(settings, temporal=traced_client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http, queue


async def _tenant_headers(http: httpx.AsyncClient, callback_url: str) -> dict[str, str]:
    created = await http.post("/api/v1/tenants", json={"name": "traced"}, headers=ADMIN)
    headers = {"Authorization": f"Bearer {created.json()['api_key']}"}
    workflow = {"name": "billing-sync", "callback_url": callback_url}
    assert (await http.post("/api/v1/workflows", json=workflow, headers=headers)).is_success
    return headers


async def _trace(spans: InMemorySpanExporter, last: str) -> list[ReadableSpan]:
    """The spans of TRACE_ID, once the span named `last` has ended."""
    for _ in range(100):
        found = [
            s
            for s in spans.get_finished_spans()
            if s.context is not None and f"{s.context.trace_id:032x}" == TRACE_ID
        ]
        if any(s.name == last for s in found):
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {last!r} span in {[s.name for s in found]}")


def _one(found: list[ReadableSpan], name: str) -> ReadableSpan:
    named = [s for s in found if s.name == name]
    assert named, f"no {name!r} span in {sorted({s.name for s in found})}"
    return named[0]


async def test_one_trace_runs_from_the_event_request_to_the_callback_request(
    spans: InMemorySpanExporter,
    api: tuple[httpx.AsyncClient, str],
    traced_client: Client,
    isolated_settings: Settings,
) -> None:
    http, queue = api
    async with (
        CallbackServer([Reply(200)]) as callback,
        activity_set(isolated_settings) as activities,
        build_worker(traced_client, activities, queue),
    ):
        headers = await _tenant_headers(http, callback.url)
        headers["traceparent"] = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
        sent = await http.post("/api/v1/events", json=failure_event(), headers=headers)
        assert sent.status_code == 202, sent.text
        found = await _trace(spans, "RunActivity:call_callback")
    # The callback continues the trace, from the span of its own HTTP request.
    [call] = callback.calls
    _, trace_id, span_id, _ = call.headers["traceparent"].split("-")
    assert trace_id == TRACE_ID
    request = next(s for s in found if s.kind == SpanKind.CLIENT and s.name == "POST")
    assert request.context is not None and f"{request.context.span_id:016x}" == span_id
    intake = _one(found, "POST /api/v1/events")
    assert intake.parent is not None and f"{intake.parent.span_id:016x}" == CALLER_SPAN
    dispatch = _one(found, "outbox dispatch")
    assert [link.context.trace_id for link in dispatch.links] == [int(TRACE_ID, 16)]
    for name in (
        "SignalWithStartWorkflow:IncidentWorkflow",
        "RunWorkflow:IncidentWorkflow",
        "StartActivity:call_callback",
        "RunActivity:call_callback",
    ):
        _one(found, name)
    run_activity = _one(found, "RunActivity:call_callback")
    assert request.parent is not None and run_activity.context is not None
    assert request.parent.span_id == run_activity.context.span_id


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_the_tracing_interceptor_changes_no_workflow_command(
    spans: InMemorySpanExporter, path: Path
) -> None:
    replayer = Replayer(
        workflows=[IncidentWorkflow, VendorIncidentWorkflow],
        data_converter=DATA_CONVERTER,
        interceptors=[TracingInterceptor(tracing.tracer())],
    )
    await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()))


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_tracing_is_off_unless_an_exporter_or_endpoint_is_set(
    environ: dict[str, str], enabled: bool
) -> None:
    assert tracing.enabled_by(environ) is enabled


def test_without_tracing_nothing_is_stored_or_injected() -> None:
    assert tracing.current_traceparent() is None
    assert tracing.temporal_interceptors() == []
    with tracing.dispatch_span("incident:t:s", ["00-" + TRACE_ID + "-" + CALLER_SPAN + "-01"]):
        assert tracing.current_traceparent() is None


PROBE = """
import tracing
assert tracing.start_tracing("awfdrs-api")
with tracing.tracer().start_as_current_span("probe"):
    print("traceparent", tracing.current_traceparent())
tracing.stop_tracing()
"""


def test_the_otel_variables_alone_turn_tracing_on_in_a_process() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ |= {"OTEL_TRACES_EXPORTER": "console", "OTEL_RESOURCE_ATTRIBUTES": "team=sre"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environ,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    first, _, exported = done.stdout.partition("\n")
    span = json.loads(exported)
    assert span["name"] == "probe"
    assert span["resource"]["attributes"] == {**span["resource"]["attributes"], "team": "sre"}
    assert span["resource"]["attributes"]["service.name"] == "awfdrs-api"
    _, version_trace_span = first.split(" ")
    context = span["context"]
    assert version_trace_span.startswith(f"00-{context['trace_id'][2:]}-{context['span_id'][2:]}-")
