"""Workers, incident starters and their fixtures (registered in tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from api.outbox import KEYWORDS
from devstack.temporal import SEARCH_ATTRIBUTES
from settings import Settings
from tests.conftest import TenantCredentials
from vocabulary import FAILURE_TYPES, SignalName
from worker import build_worker
from workflows.incident_logic import EPOCH
from workflows.incident_state import IncidentInput, IncidentResult
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import EventDigest, EventSummary


@pytest.fixture(scope="session")
async def skipping_env(time_skipping_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """The time-skipping server with our search attributes registered."""
    try:
        await time_skipping_env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace="default",
                search_attributes=dict.fromkeys(
                    SEARCH_ATTRIBUTES, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                ),
            )
        )
    except RPCError as exc:
        if "already" not in str(exc).lower():
            raise
    return time_skipping_env


def failure(
    step: str = "charge-card",
    code: str | None = "VENDOR_TIMEOUT",
    event_type: str = "step.failed",
    **fields: Any,
) -> EventSummary:
    """A failure (or other) event summary with a fresh id."""
    return EventSummary(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        occurred_at=fields.pop("occurred_at", datetime.now(UTC)),
        step=step,
        vendor=fields.pop("vendor", "stripe"),
        error_code=code,
        error_message=fields.pop("error_message", "upstream timed out"),
        http_status=fields.pop("http_status", 504),
        correlation_id="corr-test",
        payload=fields.pop("payload", {"invoice": "inv-1"}),
    )


HISTORIES = Path(__file__).resolve().parent.parent / "histories"


async def keep_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """Refresh `tests/histories/<name>.json` when AWFDRS_RECORD_HISTORIES=1 (see README)."""
    if os.environ.get("AWFDRS_RECORD_HISTORIES") == "1":
        history = await handle.fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json())


# Outbox sequence numbers for digests built by tests: one increasing sequence per session.
_SEQUENCE = itertools.count(10_000_000)


def digest(events: list[EventSummary], source: str) -> EventDigest:
    """Pack events into the dispatcher's `event_digest` signal, numbering them in order."""
    for event in events:
        event.seq = next(_SEQUENCE)
    failures = [e for e in events if e.event_type in FAILURE_TYPES]
    successes = [e for e in events if e.event_type not in FAILURE_TYPES]
    return EventDigest(
        source=source,
        seqs=[e.seq for e in events],
        kinds="".join("f" if e.event_type in FAILURE_TYPES else "s" for e in events),
        occurred_us=[(e.occurred_at - EPOCH) // timedelta(microseconds=1) for e in events],
        latest_failure=max(failures, key=lambda e: e.occurred_at, default=None),
        latest_success=max(successes, key=lambda e: e.occurred_at, default=None),
    )


class IncidentStarter:
    """Starts incidents for one tenant on one client and task queue."""

    def __init__(
        self, client: Client, tenant: TenantCredentials, task_queue: str, database_url: str
    ) -> None:
        self.client = client
        self.tenant = tenant
        self.task_queue = task_queue
        self.database_url = database_url
        self.last_group: EventDigest | None = None  # the signal the last start carried

    async def store(
        self, events: list[EventSummary], *, key: str, workflow: str = "billing-sync"
    ) -> None:
        """Store events under an incident key, as the intake would."""
        await store_events(self.database_url, self.tenant.id, key, events, workflow)

    async def start(
        self,
        *,
        workflow: str = "billing-sync",
        code: str | None = "VENDOR_TIMEOUT",
        vendor: str | None = "stripe",
        events: list[EventSummary] | None = None,
        signature: str | None = None,
        **inp: Any,
    ) -> WorkflowHandle[IncidentWorkflow, IncidentResult]:
        """Store the events and signal-with-start an incident (of `signature`: a re-open)."""
        signature = signature or uuid.uuid4().hex
        key = f"incident:{self.tenant.id}:{signature}"
        stored = events or [failure(code=code, vendor=vendor)]
        await self.store(stored, key=key, workflow=workflow)
        first = digest(stored, key)
        self.last_group = first
        return await self.client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(
                tenant_id=str(self.tenant.id),
                source_workflow=workflow,
                signature=signature,
                step="charge-card",
                error_code=code,
                vendor=vendor,
                correlation_id="corr-test",
                **inp,
            ),
            id=key,
            task_queue=self.task_queue,
            start_signal=SignalName.EVENT_DIGEST,
            start_signal_args=[first],
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(KEYWORDS[name], value)
                    for name, value in (
                        ("TenantId", str(self.tenant.id)),
                        ("SourceWorkflow", workflow),
                        ("Vendor", vendor),
                        ("IncidentStatus", "open"),
                    )
                    if value
                ]
            ),
        )


_STORE = """
INSERT INTO events (id, tenant_id, idempotency_key, body_sha256, workflow, event_type, step,
                    vendor, error_code, error_message, http_status, payload, signature,
                    incident_key, remediation, correlation_id, occurred_at)
SELECT e.id, $1, 'test-' || e.id, 'h', $2, e.event_type, e.step, e.vendor, e.error_code,
       e.error_message, e.http_status, e.payload::jsonb, 'sig', $3, 'normal', 'corr-test',
       e.occurred_at
FROM jsonb_to_recordset($4::jsonb) AS e(id uuid, event_type text, step text, vendor text,
     error_code text, error_message text, http_status int, payload jsonb, occurred_at timestamptz)
"""


def activity_env(workflow_id: str) -> ActivityEnvironment:
    """An activity environment that runs as if scheduled by workflow `workflow_id`."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=workflow_id)
    return env


async def store_events(
    database_url: str,
    tenant_id: uuid.UUID,
    key: str,
    events: list[EventSummary],
    workflow: str = "billing-sync",
) -> None:
    """Store events under an incident key, as the intake would (what activities trust)."""
    rows = [
        {
            "id": e.event_id,
            "event_type": e.event_type,
            "step": e.step,
            "vendor": e.vendor,
            "error_code": e.error_code,
            "error_message": e.error_message,
            "http_status": e.http_status,
            "payload": e.payload or {},
            "occurred_at": e.occurred_at.isoformat(),
        }
        for e in events
    ]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(_STORE, tenant_id, workflow, key, json.dumps(rows))
    finally:
        await conn.close()


@pytest.fixture
async def skipping(
    skipping_env: WorkflowEnvironment,
    activities: Sequence[Callable[..., Any]],
    tenant: TenantCredentials,
    settings: Settings,
) -> AsyncIterator[IncidentStarter]:
    """A worker on the time-skipping server and a starter for the test's tenant."""
    queue = f"test-{uuid.uuid4().hex}"
    async with build_worker(skipping_env.client, activities, queue):
        yield IncidentStarter(skipping_env.client, tenant, queue, settings.plain_database_url)


@pytest.fixture
async def live(
    temporal_client: Client,
    activities: Sequence[Callable[..., Any]],
    tenant: TenantCredentials,
    settings: Settings,
) -> AsyncIterator[IncidentStarter]:
    """A worker on the real dev server (wall-clock time) and a starter."""
    queue = f"test-{uuid.uuid4().hex}"
    async with build_worker(temporal_client, activities, queue):
        yield IncidentStarter(temporal_client, tenant, queue, settings.plain_database_url)
