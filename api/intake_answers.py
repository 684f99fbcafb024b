"""Intake answers encoded in one pass, without a response model per event."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json

from api.intake import ItemResult, Rejected
from api.outbox import INCIDENT_PREFIX
from api.services.ingest import StoreOutcome
from api.validation import InvalidItem
from models.schemas.events import BatchItemResult

BatchOutcome = ItemResult | InvalidItem
CONFLICT_ERROR = "idempotency key already used with a different body"


def public_key(key: str | None) -> str | None:
    """The incident key a client may see: incident workflow ids only, never resolve groups."""
    return key if key is not None and key.startswith(INCIDENT_PREFIX) else None


def accepted_json(outcome: StoreOutcome) -> bytes:
    """Encode the `EventAccepted` answer of one stored or replayed event."""
    return to_json(
        {
            "event_id": str(outcome.event_id),
            "status": "accepted" if outcome.status == 202 else "duplicate",
            "incident_key": public_key(outcome.incident_key),
            "remediation": str(outcome.remediation),
        }
    )


def _refused(index: int, outcome: InvalidItem | Rejected) -> dict[str, Any]:
    if isinstance(outcome, InvalidItem):
        item = BatchItemResult(index=index, status=422, error=outcome.error, errors=outcome.errors)
    else:
        item = BatchItemResult(index=index, status=outcome.status, error=outcome.error)
    return item.model_dump(mode="json")


def batch_item(index: int, outcome: BatchOutcome) -> dict[str, Any]:
    """One item of `BatchResult.results`, as the JSON-ready dict its model would dump."""
    if isinstance(outcome, InvalidItem | Rejected):
        return _refused(index, outcome)
    stored = outcome.status != 409
    return {
        "index": index,
        "status": outcome.status,
        "event_id": str(outcome.event_id),
        "incident_key": public_key(outcome.incident_key) if stored else None,
        "remediation": str(outcome.remediation) if stored else None,
        "error": None if stored else CONFLICT_ERROR,
        "errors": None,
    }


def batch_result_json(outcomes: list[BatchOutcome]) -> bytes:
    """Encode the `BatchResult` of `outcomes`, in request order, with its totals."""
    # Plain dicts and one Rust encoding: a model per item cost more than the insert itself.
    results = [batch_item(index, outcome) for index, outcome in enumerate(outcomes)]
    statuses = [item["status"] for item in results]
    return to_json(
        {
            "results": results,
            "accepted": statuses.count(202),
            "duplicates": statuses.count(200),
            "rejected": sum(status >= 400 for status in statuses),
        }
    )
