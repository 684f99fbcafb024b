"""`POST /events` serves plain requests without FastAPI's dependency solving
(api/routes/direct_route.py): the shortcut must build exactly what solving would, and answer
every request as the solved path does."""

from __future__ import annotations

import inspect
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import guard_request
from api.auth import IngestPrincipal
from api.deps import IntakeDep, SettingsDep
from api.routes.events import IdempotencyHeader, ingest_event
from tests.conftest import TenantCredentials
from tests.utils.builders import failure_event, register_workflow

# A query string sends a request down FastAPI's own path.
SOLVED = "/api/v1/events?path=solved"
SHORTCUT = "/api/v1/events"


def test_the_shortcut_builds_every_parameter_of_the_endpoint(app: FastAPI) -> None:
    """A new dependency of the endpoint or the app fails here: teach the shortcut first."""
    parameters = {
        name: parameter.annotation
        for name, parameter in inspect.signature(ingest_event, eval_str=True).parameters.items()
    }
    assert parameters == {
        "request": parameters["request"],
        "principal": IngestPrincipal,
        "settings": SettingsDep,
        "intake": IntakeDep,
        "idempotency_key": IdempotencyHeader,  # a request carrying it is never eligible
    }
    assert [d.dependency for d in app.router.dependencies] == [guard_request]


def _fresh(body: object) -> object:
    """The same event under a new idempotency key (the body's own), so neither is a replay."""
    if isinstance(body, dict) and "idempotency_key" in body:
        return body | {"idempotency_key": f"key-{uuid.uuid4().hex}"}
    return body


def _answer(response: httpx.Response) -> tuple[int, Any]:
    body = response.json()
    if response.status_code >= 400:
        return response.status_code, (body.get("title"), body.get("errors"))
    return response.status_code, sorted(body)


@pytest.mark.parametrize(
    ("case", "headers", "body"),
    [
        ("accepted", None, failure_event()),
        ("no credentials", {}, failure_event()),
        ("unknown key", {"Authorization": "Bearer awf_not-a-key"}, failure_event()),
        ("invalid body", None, {"event_type": "failure", "workflow": ""}),
        ("not an object", None, [1, 2]),
        ("unregistered workflow", None, failure_event("never-registered")),
    ],
)
async def test_the_shortcut_answers_as_the_solved_path_does(
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    case: str,
    headers: dict[str, str] | None,
    body: object,
) -> None:
    await register_workflow(http, tenant)
    sent = tenant.headers if headers is None else headers
    answers = [
        _answer(await http.post(path, json=_fresh(body), headers=sent))
        for path in (SHORTCUT, SOLVED)
    ]
    assert answers[0] == answers[1], case
