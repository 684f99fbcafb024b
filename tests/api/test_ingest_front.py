"""`POST /events` and `/events/batch` are served in front of FastAPI (api/intake_route.py): every
answer, header, metric and access-log line must be what FastAPI's own path gives the same
request."""

from __future__ import annotations

import inspect
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.types import Receive, Scope, Send

from api.auth import IngestPrincipal
from api.deps import IntakeDep, SettingsDep
from api.errors import RateLimited
from api.intake_route import FrontIntake
from api.limits import request_body_limit
from api.routes.events import ingest_batch
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import failure_event, register_workflow

SINGLE, BATCH = "/api/v1/events", "/api/v1/events/batch"
COUNTED = (
    "awfdrs_http_requests_total",
    "awfdrs_http_request_duration_seconds_count",
    "awfdrs_ingest_events_total",
    "awfdrs_quieted_events_total",
)


def test_the_batch_shortcut_builds_every_parameter_of_the_endpoint() -> None:
    """A new dependency of the batch endpoint fails here: teach `_ingest_batch_directly` first."""
    parameters = {
        name: parameter.annotation
        for name, parameter in inspect.signature(ingest_batch, eval_str=True).parameters.items()
    }
    assert parameters == {
        "request": Request,
        "principal": IngestPrincipal,
        "settings": SettingsDep,
        "intake": IntakeDep,
    }


def _front(app: FastAPI) -> FrontIntake:
    stack = app.middleware_stack
    assert isinstance(stack, FrontIntake), "the front path is not in place"
    assert stack.paths == {SINGLE, BATCH}
    return stack


@pytest.fixture
async def paths(app: FastAPI, http: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    """Two clients of the one app: through the front path, and through FastAPI's stack only."""
    await http.get("/api/v1/health/live")  # builds the middleware stack
    front = _front(app)
    fallbacks = [0]

    async def fastapi_only(scope: Scope, receive: Receive, send: Send) -> None:
        fallbacks[0] += 1
        scope["app"] = app  # as Starlette's own __call__ does
        await front.fallback(scope, receive, send)

    clients = {}
    for name, target in (("front", app), ("fastapi", fastapi_only)):
        transport = httpx.ASGITransport(app=target, raise_app_exceptions=False)
        clients[name] = httpx.AsyncClient(transport=transport, base_url="http://awfdrs.test")
    yield {"clients": clients, "fallbacks": fallbacks}
    for client in clients.values():
        await client.aclose()


def _counted(app: FastAPI) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in app.state.metrics.registry.collect()
        for sample in family.samples
        if sample.name in COUNTED
    }


def _anonymous(body: Any) -> Any:
    """The answer with its fresh event ids blanked: the only part that may differ."""
    if isinstance(body, dict):
        return {k: "<id>" if k == "event_id" and v else _anonymous(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_anonymous(item) for item in body]
    return body


async def _exchange(
    client: httpx.AsyncClient, app: FastAPI, caplog: pytest.LogCaptureFixture, **request: Any
) -> dict[str, Any]:
    """Send one request; return its answer, the metrics it moved and its access-log line."""
    before = _counted(app)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="awfdrs.access"):
        response = await client.post(**request)
    after = _counted(app)
    try:
        body = _anonymous(response.json())
    except json.JSONDecodeError:
        body = response.content
    return {
        "status": response.status_code,
        "headers": response.headers.raw,
        "body": body,
        "metrics": {key: value - before.get(key, 0) for key, value in after.items()},
        "log": [
            (r.getMessage(), r.method, r.path, r.status)  # type: ignore[attr-defined]
            for r in caplog.records
            if r.name == "awfdrs.access"
        ],
    }


def _cases(tenant: TenantCredentials, settings: Settings) -> Iterator[tuple[str, dict[str, Any]]]:
    """(case, request) pairs; `{key}` in a body is a fresh idempotency key per send."""
    auth = tenant.headers | {"Content-Type": "application/json"}
    event = json.dumps(failure_event(idempotency_key="{key}"))
    yield "accepted", {"url": SINGLE, "content": event, "headers": auth}
    yield "replayed", {"url": SINGLE, "content": _json(failure_event()), "headers": auth}
    yield "no credentials", {"url": SINGLE, "content": event, "headers": {}}
    yield "unknown key", {"url": SINGLE, "content": event, "headers": {"Authorization": "Bearer x"}}
    yield "invalid", {"url": SINGLE, "content": '{"workflow": ""}', "headers": auth}
    yield "not json", {"url": SINGLE, "content": "{", "headers": auth}
    yield "not an object", {"url": SINGLE, "content": "[1, 2]", "headers": auth}
    yield "unregistered", {"url": SINGLE, "content": _json(failure_event("nope")), "headers": auth}
    over_route = b"{" + b" " * settings.max_body_bytes + b"}"
    yield "over the route limit", {"url": SINGLE, "content": over_route, "headers": auth}
    over_all = b"{" + b" " * request_body_limit(settings) + b"}"
    yield "over the global limit", {"url": SINGLE, "content": over_all, "headers": auth}
    chunked = (over_all[:1000], over_all[1000:])  # no Content-Length: counted as it streams
    yield "streamed over the limit", {"url": SINGLE, "content": chunked, "headers": auth}
    batch = {"events": [failure_event(idempotency_key="{key}"), {"workflow": ""}]}
    yield "batch", {"url": BATCH, "content": json.dumps(batch), "headers": auth}
    yield "batch not an object", {"url": BATCH, "content": "[]", "headers": auth}
    yield "batch no credentials", {"url": BATCH, "content": json.dumps(batch), "headers": {}}


def _json(body: object) -> str:
    return json.dumps(body)


async def _stream(chunks: tuple[bytes, ...]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _fresh(request: dict[str, Any], case: str) -> dict[str, Any]:
    content = request["content"]
    if isinstance(content, str):
        content = content.replace("{key}", f"key-{uuid.uuid4().hex}")
    elif isinstance(content, tuple):  # one stream per send
        content = _stream(content)
    headers = request["headers"] | {"X-Correlation-ID": f"front-{case.replace(' ', '-')}"}
    return request | {"content": content, "headers": headers}


async def test_the_front_path_answers_as_fastapi_does(
    app: FastAPI,
    paths: dict[str, Any],
    tenant: TenantCredentials,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await register_workflow(paths["clients"]["front"], tenant)
    for case, request in _cases(tenant, settings):
        if case == "replayed":  # stored once first: both paths then replay it
            await paths["clients"]["front"].post(**_fresh(request, case))
        answers = {}
        for name, client in paths["clients"].items():
            before = paths["fallbacks"][0]
            answers[name] = await _exchange(client, app, caplog, **_fresh(request, case))
            assert paths["fallbacks"][0] - before == (name == "fastapi"), case
        assert answers["front"] == answers["fastapi"], case
        assert answers["front"]["status"] != 500, case


@pytest.mark.parametrize(
    "failure",
    [
        RateLimited("over its rate", retry_after_s=1.2),
        OSError("postgresql went away"),  # a database outage: 503
        RuntimeError("a bug"),  # unexpected: Starlette's error middleware answers 500
    ],
    ids=lambda failure: type(failure).__name__,
)
async def test_failures_inside_intake_answer_as_fastapi_does(
    app: FastAPI,
    paths: dict[str, Any],
    tenant: TenantCredentials,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
) -> None:
    await register_workflow(paths["clients"]["front"], tenant)

    async def failing(*_: object, **__: object) -> None:
        raise failure

    monkeypatch.setattr(app.state.intake, "ingest", failing)
    answers = []
    for client in paths["clients"].values():
        headers = tenant.headers | {"X-Correlation-ID": "front-failure"}
        request = {"url": SINGLE, "json": failure_event(), "headers": headers}
        answers.append(await _exchange(client, app, caplog, **request))
    assert answers[0] == answers[1]
    assert answers[0]["status"] in (429, 503, 500)
