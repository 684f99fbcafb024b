"""What an incident shows outside its workflow: transition rows and Web UI current details."""

from __future__ import annotations

from typing import Any

import asyncpg
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

METADATA_QUERY = "__temporal_workflow_metadata"


async def transitions(database_url: str, incident_id: str) -> list[tuple[str, str]]:
    """The incident's recorded transitions, oldest first: (status, reason)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT status, reason FROM incident_transitions WHERE incident_id = $1::uuid"
            " ORDER BY at, id",
            incident_id,
        )
    finally:
        await conn.close()
    return [(row["status"], row["reason"]) for row in rows]


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """The current details the Web UI shows for the workflow."""
    metadata = await handle.query(METADATA_QUERY, result_type=WorkflowMetadata)
    return str(metadata.current_details)
