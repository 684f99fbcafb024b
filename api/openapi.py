"""The served OpenAPI document, finished so that a generator builds a working client from it.

FastAPI's own document lacks what this API does by hand: bearer credentials read in
dependencies (`api/auth.py`), error bodies that are always problem+json, and request bodies
read raw (their schemas arrive through `openapi_extra`, with nested models under `$defs`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from api.auth import authenticate, require_admin
from api.errors import PROBLEM_JSON
from api.routes.metrics import require_metrics_token
from api.routes.responses import Problem
from api.webhook_docs import webhooks

SCHEME = "HTTPBearer"
COMPONENTS = "#/components/schemas/"
PROBLEM_REF = {"$ref": f"{COMPONENTS}Problem"}
# FastAPI's own 422 body; this API answers every validation error with a Problem instead.
FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "A tenant API key (`awfdrs_…`, scope `ingest` or `operator`) or, on the "
    "`/tenants` routes, AWFDRS_ADMIN_TOKEN; on `/metrics`, AWFDRS_METRICS_TOKEN when set.",
}
REQUIRED: list[dict[str, list[str]]] = [{SCHEME: []}]
OPTIONAL: list[dict[str, list[str]]] = [{SCHEME: []}, {}]
CREDENTIAL_CHECKS: dict[Callable[..., Any], list[dict[str, list[str]]]] = {
    authenticate: REQUIRED,
    require_admin: REQUIRED,
    require_metrics_token: OPTIONAL,  # only when AWFDRS_METRICS_TOKEN is set
}


def json_request_body(model: type[Any], *media_types: str) -> dict[str, Any]:
    """`openapi_extra` declaring a required body of `model`, named in components."""
    schema = {
        "$ref": COMPONENTS + model.__name__,
        # Moved into components by `finish`, with any models nested in it.
        "$defs": {model.__name__: model.model_json_schema(ref_template=COMPONENTS + "{model}")},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": schema} for media in media_types or ("application/json",)
            },
        }
    }


def install_openapi(app: FastAPI) -> None:
    """Serve the finished document at /openapi.json, with the webhooks AWFDRS sends."""
    app.webhooks.include_router(webhooks)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
                webhooks=app.webhooks.routes,
            )
            app.openapi_schema = finish(document, security=_route_security(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def finish(document: dict[str, Any], *, security: dict[str, Any]) -> dict[str, Any]:
    """Add the bearer scheme, make every error problem+json, hoist `$defs` into components."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template=COMPONENTS + "{model}")
    components["securitySchemes"] = {SCHEME: BEARER}
    for operation_id, operation in _operations(document):
        if operation_id in security:
            operation["security"] = security[operation_id]
        for status, response in operation.get("responses", {}).items():
            if status[0] in "45":
                _as_problem(response)
    _hoist_defs(document, schemas)
    for name in FASTAPI_ERROR_SCHEMAS:
        if not _referenced(document, f"{COMPONENTS}{name}"):
            schemas.pop(name, None)
    return document


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    # Not the webhooks: what a receiver answers is its own business, not a Problem.
    for section in ("paths",):
        for item in document.get(section, {}).values():
            for operation in item.values():
                yield operation.get("operationId", ""), operation


def _as_problem(response: dict[str, Any]) -> None:
    """Document an error as problem+json, unless it declares a body of its own shape."""
    content = response.get("content", {})
    own = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    if own and not own.endswith(("/Problem", *FASTAPI_ERROR_SCHEMAS)):
        return  # e.g. PagerDuty's `invalid event`, which PagerDuty clients parse
    response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> None:
    """Move every nested `$defs` into components, where the `$ref`s point."""
    if isinstance(node, dict):
        for name, schema in node.pop("$defs", {}).items():
            schemas.setdefault(name, schema)
            _hoist_defs(schema, schemas)
        for value in list(node.values()):
            _hoist_defs(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _hoist_defs(value, schemas)


def _referenced(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_referenced(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_referenced(v, ref) for v in node)
    return False


def _route_security(app: FastAPI) -> dict[str, Any]:
    """Each operation's `security`, from the credential check among its dependencies."""
    security: dict[str, Any] = {}
    # Routers are included as contexts (FastAPI ≥ 0.16x); their original routes carry the
    # dependencies declared on each operation, where the credential checks are.
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            check = next(_credential_checks(route.dependant), None)
            if check is not None:
                security[route.operation_id or route.unique_id] = CREDENTIAL_CHECKS[check]
    return security


def _credential_checks(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call in CREDENTIAL_CHECKS:
            yield sub.call
        yield from _credential_checks(sub)
