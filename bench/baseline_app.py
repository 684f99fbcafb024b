"""Baselines for bench/ingest.py: a bare FastAPI + asyncpg insert (the ceiling) and the naive
design (insert, then one signal-with-start per event on the request path)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from api.app import end_open_transaction
from vocabulary import SignalName
from workflows.converter import DATA_CONVERTER
from workflows.incident_state import IncidentInput
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import EventDigest

TABLE = """CREATE TABLE IF NOT EXISTS bench_events (
    id uuid PRIMARY KEY, tenant_id uuid NOT NULL, idempotency_key text NOT NULL,
    body jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, idempotency_key))"""
INSERT = """INSERT INTO bench_events (id, tenant_id, idempotency_key, body)
VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO NOTHING"""
TENANT = uuid.UUID(int=1)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Own one pool and one Temporal client."""
    # Same pool settings as the AWFDRS intake pool (no stock reset round trip on release), so
    # the ceiling stays an upper bound rather than a handicapped baseline.
    pool = await asyncpg.create_pool(
        os.environ["BENCH_DATABASE_URL"], min_size=10, max_size=10, reset=end_open_transaction
    )
    assert pool is not None
    await pool.execute(TABLE)
    app.state.pool = pool
    app.state.temporal = await Client.connect(
        os.environ["BENCH_TEMPORAL_ADDRESS"], data_converter=DATA_CONVERTER
    )
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


async def _insert(request: Request) -> tuple[dict[str, object], str]:
    body = await request.body()
    event = json.loads(body)
    await request.app.state.pool.execute(
        INSERT, uuid.uuid4(), TENANT, event["idempotency_key"], body.decode()
    )
    return event, event["idempotency_key"]


@app.post("/ceiling")
async def ceiling(request: Request) -> JSONResponse:
    """Parse and insert; nothing else."""
    await _insert(request)
    return JSONResponse({"status": "accepted"}, status_code=202)


@app.post("/naive")
async def naive(request: Request) -> JSONResponse:
    """Insert, then signal-with-start the incident before answering (one call per event)."""
    event, key = await _insert(request)
    client: Client = request.app.state.temporal
    incident = f"incident:naive:{event['workflow']}"
    await client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(
            tenant_id=str(TENANT), source_workflow=str(event["workflow"]), signature="naive"
        ),
        id=incident,
        task_queue="bench-naive",
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=SignalName.EVENT_DIGEST,
        start_signal_args=[EventDigest(source=incident)],
    )
    return JSONResponse({"status": "accepted", "key": key}, status_code=202)
