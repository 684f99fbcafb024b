"""The OpenAPI document is valid, self-contained, and says how to authenticate and fail."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from openapi_spec_validator import validate

from activities.escalation import pagerduty_body
from api.app import create_app
from api.webhook_docs import EscalationPage, IncidentCallback
from tests.conftest import make_settings
from vocabulary import PageSeverity
from workflows.activity_payloads import EscalationRequest
from workflows.incident_state import EscalationStep

# PagerDuty's intake carries its key in the body; the responder webhooks are authenticated by
# their signature (PagerDuty) or token header (Opsgenie), not by a bearer key.
PUBLIC = {
    "getLiveness",
    "getReadiness",
    "pagerdutyEnqueue",
    "pagerdutyWebhook",
    "opsgenieWebhook",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The document as `/openapi.json` serves it."""
    served: dict[str, Any] = create_app(make_settings()).openapi()
    return served


def _operations(document: dict[str, Any], section: str = "paths") -> list[dict[str, Any]]:
    return [op for item in document[section].values() for op in item.values()]


def test_the_spec_validator_accepts_the_document(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_ref_resolves_to_a_component(document: dict[str, Any]) -> None:
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert "ErrorIn" in refs
    assert refs <= set(document["components"]["schemas"])
    assert "$defs" not in json.dumps(document)


def test_every_authenticated_operation_names_the_bearer_scheme(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["HTTPBearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for operation in _operations(document):
        required = operation["operationId"] not in PUBLIC
        assert ("security" in operation) is required, operation["operationId"]
    by_id = {op["operationId"]: op for op in _operations(document)}
    assert by_id["getMetrics"]["security"] == [{"HTTPBearer": []}, {}]
    assert by_id["createTenant"]["security"] == [{"HTTPBearer": []}]


def test_every_error_is_problem_json_but_pagerdutys_own(document: dict[str, Any]) -> None:
    for operation in _operations(document):
        for status, response in operation["responses"].items():
            if status[0] not in "45":
                continue
            content = response["content"]
            if (operation["operationId"], status) == ("pagerdutyEnqueue", "400"):
                assert content["application/json"]["schema"]["$ref"].endswith("PagerDutyInvalid")
                continue
            assert content == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, (operation["operationId"], status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_the_intakes_declare_their_bodies(document: dict[str, Any]) -> None:
    def body(path: str) -> dict[str, Any]:
        content: dict[str, Any] = document["paths"][path]["post"]["requestBody"]["content"]
        return content

    prefix = "/api/v1/integrations"
    pagerduty = body(f"{prefix}/pagerduty/enqueue")["application/json"]["schema"]
    assert pagerduty == {"$ref": "#/components/schemas/PagerDutyEvent"}
    alertmanager = body(f"{prefix}/alertmanager")["application/json"]["schema"]
    assert alertmanager == {"$ref": "#/components/schemas/AlertmanagerNotification"}
    cloudevents = body(f"{prefix}/cloudevents")
    assert cloudevents["application/cloudevents+json"]["schema"]["$ref"].endswith("/CloudEvent")
    assert cloudevents["application/cloudevents-batch+json"]["schema"]["type"] == "array"
    assert "routing_key" in document["components"]["schemas"]["PagerDutyEvent"]["required"]
    for path, status, answer in (
        ("pagerduty/enqueue", "202", "PagerDutyAccepted"),
        ("alertmanager", "200", "AlertmanagerResult"),
        ("cloudevents", "202", "CloudEventsResult"),
    ):
        response = document["paths"][f"{prefix}/{path}"]["post"]["responses"][status]
        assert response["content"]["application/json"]["schema"]["$ref"].endswith(answer)


def test_the_webhooks_describe_the_signed_requests_awfdrs_sends(
    document: dict[str, Any],
) -> None:
    assert set(document["webhooks"]) == {"incidentCallback", "escalationPage"}
    for operation in _operations(document, "webhooks"):
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= headers
        assert "traceparent" in headers
    callback = document["webhooks"]["incidentCallback"]["post"]["requestBody"]["content"]
    assert callback["application/json"]["schema"]["$ref"].endswith("/IncidentCallback")
    assert {"incident_id", "attempt", "error", "payload"} <= set(
        IncidentCallback.model_json_schema()["properties"]
    )


def test_the_documented_page_is_the_page_awfdrs_sends() -> None:
    request = EscalationRequest(
        tenant_id="t",
        incident_id="i",
        workflow_id="incident:t:s",
        level=2,
        step=EscalationStep("team-lead", "https://pager.example", 900, PageSeverity.CRITICAL),
        summary="billing-sync VENDOR_TIMEOUT at stripe",
        source_workflow="billing-sync",
        error_code="VENDOR_TIMEOUT",
        vendor="stripe",
        event_count=4,
        attempts=3,
        correlation_id="corr-test",
    )
    for ui_url in (None, "https://ui.example/x"):
        body = json.loads(json.dumps(pagerduty_body(request, ui_url)))
        page = EscalationPage.model_validate(body)
        assert page.model_dump(by_alias=True, exclude_none=True) == body
