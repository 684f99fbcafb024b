"""Workers, incident starters and their fixtures (registered in tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.dispatcher import KEYWORDS
from devstack.temporal import SEARCH_ATTRIBUTES
from tests.conftest import TenantCredentials
from worker import build_worker
from workflows.incident_types import (
    EventBatch,
    EventSummary,
    IncidentInput,
    IncidentResult,
)
from workflows.incident_workflow import IncidentWorkflow


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
        occurred_at=datetime.now(UTC),
        step=step,
        vendor=fields.pop("vendor", "stripe"),
        error_code=code,
        error_message=fields.pop("error_message", "upstream timed out"),
        http_status=fields.pop("http_status", 504),
        correlation_id="corr-test",
        payload=fields.pop("payload", {"invoice": "inv-1"}),
    )


class IncidentStarter:
    """Starts incidents for one tenant on one client and task queue."""

    def __init__(self, client: Client, tenant: TenantCredentials, task_queue: str) -> None:
        self.client = client
        self.tenant = tenant
        self.task_queue = task_queue

    async def start(
        self,
        *,
        workflow: str = "billing-sync",
        code: str | None = "VENDOR_TIMEOUT",
        vendor: str | None = "stripe",
        events: list[EventSummary] | None = None,
        **inp: Any,
    ) -> WorkflowHandle[IncidentWorkflow, IncidentResult]:
        """Signal-with-start a new incident, as the dispatcher does."""
        signature = uuid.uuid4().hex
        batch = EventBatch(events or [failure(code=code, vendor=vendor)])
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
            id=f"incident:{self.tenant.id}:{signature}",
            task_queue=self.task_queue,
            start_signal="events",
            start_signal_args=[batch],
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


@pytest.fixture
async def skipping(
    skipping_env: WorkflowEnvironment,
    activities: Sequence[Callable[..., Any]],
    tenant: TenantCredentials,
) -> AsyncIterator[IncidentStarter]:
    """A worker on the time-skipping server and a starter for the test's tenant."""
    queue = f"test-{uuid.uuid4().hex}"
    async with build_worker(skipping_env.client, activities, queue):
        yield IncidentStarter(skipping_env.client, tenant, queue)


@pytest.fixture
async def live(
    temporal_client: Client, activities: Sequence[Callable[..., Any]], tenant: TenantCredentials
) -> AsyncIterator[IncidentStarter]:
    """A worker on the real dev server (wall-clock time) and a starter."""
    queue = f"test-{uuid.uuid4().hex}"
    async with build_worker(temporal_client, activities, queue):
        yield IncidentStarter(temporal_client, tenant, queue)
