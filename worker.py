"""Composition root of the Temporal worker: builds clients, registers activities, runs."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.action_metrics import FIRST_CALLBACK_BUCKETS, FIRST_CALLBACK_METRIC
from activities.analysis import AnalysisActivities
from activities.escalation import EscalationActivities
from activities.opening import OpeningActivities
from activities.records import IncidentRecords
from activities.remediation import RemediationActivities
from activities.responder_sender import ResponderSender
from activities.responders import ResponderActivities
from activities.safety import SafetyGate
from activities.signing import WebhookSigner
from activities.vendor_incidents import VendorIncidentActivities
from clients import connect_temporal, create_engine, create_redis
from models.egress import StoredEgressLists
from models.secret_box import SecretBox
from models.stored_secrets import check_secret_key_at_startup
from observability import configure_logging
from rules.egress import EgressGuard
from rules.policy import Policies, load_policies
from settings import Settings, SettingsError, load_settings
from tracing import start_tracing, stop_tracing
from workflows import patches
from workflows.incident_workflow import IncidentWorkflow
from workflows.vendor_incident_workflow import VendorIncidentWorkflow

log = logging.getLogger("awfdrs.worker")
MAX_CONNECT_BACKOFF_S = 10.0


def metrics_runtime(address: str | None) -> Runtime | None:
    """A runtime exporting the SDK's and AWFDRS's worker metrics to Prometheus at `address`."""
    if address is None:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=address,
                counters_total_suffix=True,
                histogram_bucket_overrides={FIRST_CALLBACK_METRIC: list(FIRST_CALLBACK_BUCKETS)},
            )
        )
    )


async def connect_with_retry(
    settings: Settings, stopping: asyncio.Event, runtime: Runtime | None = None
) -> Client | None:
    """Dial Temporal until it answers, logging clearly while it is unreachable."""
    delay = 0.5
    while not stopping.is_set():
        try:
            client = await connect_temporal(settings, lazy=False, runtime=runtime)
        except (RuntimeError, RPCError, OSError) as exc:
            log.warning(
                "temporal unreachable at %s (%s); retrying in %.1fs",
                settings.temporal_address,
                exc,
                delay,
            )
            try:
                await asyncio.wait_for(stopping.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, MAX_CONNECT_BACKOFF_S)
            continue
        log.info("connected to temporal", extra={"address": settings.temporal_address})
        return client
    return None


@dataclass(frozen=True)
class _Clients:
    """The clients every activity shares: PostgreSQL, outbound HTTP, Redis."""

    engine: AsyncEngine
    http: httpx.AsyncClient
    redis: Redis

    async def aclose(self) -> None:
        """Close all three."""
        await self.http.aclose()
        await self.redis.aclose()
        await self.engine.dispose()


def _clients(settings: Settings) -> _Clients:
    # Activities and local activities share this pool: size it to their concurrency, and let
    # a busy moment queue for a connection rather than fail (and back off) the activity.
    engine = create_engine(
        settings,
        pool_size=settings.worker_db_pool_size,
        pool_timeout_s=30,
        single_statement_writes=True,
    )
    # An explicit transport: no HTTP(S)_PROXY from the environment, since a proxy would dial
    # addresses the egress guard never vetted.
    http = httpx.AsyncClient(
        follow_redirects=False,
        transport=httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)
        ),
    )
    return _Clients(engine, http, create_redis(settings))


def _outbound_activities(
    settings: Settings, policies: Policies, box: SecretBox, clients: _Clients, gate: SafetyGate
) -> list[Callable[..., Any]]:
    """The activities that call out: the tenant's callback and the escalation page."""
    engine, http = clients.engine, clients.http
    guard = EgressGuard.from_settings(settings, tenant_lists=StoredEgressLists(engine))
    signer = WebhookSigner(engine=engine, box=box)
    remediation = RemediationActivities(
        http=http,
        engine=engine,
        guard=guard,
        signer=signer,
        redis=clients.redis,
        count_outcome=gate.count_call,
    )
    escalation = EscalationActivities(
        http=http,
        engine=engine,
        guard=guard,
        ui_base_url=settings.temporal_ui_url,
        namespace=settings.temporal_namespace,
        policy=policies.escalation,
        signer=signer,
        box=box,
    )
    sender = ResponderSender(
        http=http,
        engine=engine,
        guard=guard,
        signer=signer,
        box=box,
        default_policy=policies.escalation,
    )
    responders = ResponderActivities(
        sender=sender,
        engine=engine,
        ui_base_url=settings.temporal_ui_url,
        namespace=settings.temporal_namespace,
        api_base_url=settings.public_api_url,
    )
    vendor_incidents = VendorIncidentActivities(
        engine=engine, redis=clients.redis, sender=sender, vendors=policies.vendors
    )
    return [
        remediation.call_callback,
        escalation.send_escalation,
        responders.deliver,
        vendor_incidents.link,
        vendor_incidents.link_by_count,
        vendor_incidents.record,
        vendor_incidents.read_breaker,
        vendor_incidents.page_targets,
    ]


def _activities(
    settings: Settings, policies: Policies, box: SecretBox, clients: _Clients
) -> list[Callable[..., Any]]:
    """Every activity the incident workflow calls, bound to the shared clients."""
    records = IncidentRecords(clients.engine)
    analysis = AnalysisActivities(
        engine=clients.engine,
        policies=policies,
        box=box,
        approval_timeout_s=settings.approval_timeout_s,
    )
    gate = SafetyGate(
        engine=clients.engine,
        redis=clients.redis,
        policies=policies,
        calls_per_hour=settings.remediation_calls_per_hour,
        max_callbacks=settings.tenant_max_concurrent_callbacks,
        maintenance_recheck_s=settings.maintenance_recheck_s,
    )
    opening = OpeningActivities(engine=clients.engine, records=records, analysis=analysis)
    return [
        opening.open_and_assess,
        records.record_incident,
        records.open_incident,
        records.record_action,
        records.start_attempt,
        analysis.classify,
        analysis.analyse,
        analysis.plan,
        gate.check_gate,
        gate.record_outcome,
        *_outbound_activities(settings, policies, box, clients, gate),
    ]


@asynccontextmanager
async def activity_set(settings: Settings) -> AsyncIterator[Sequence[Callable[..., Any]]]:
    """Build the activity objects with their clients; close the clients afterwards."""
    policies = load_policies(settings.policy_dir)
    box = SecretBox.from_settings(settings)  # first: a missing key leaks no client
    clients = _clients(settings)
    try:
        yield _activities(settings, policies, box, clients)
    finally:
        await clients.aclose()


def build_worker(
    client: Client,
    activities: Sequence[Callable[..., Any]],
    task_queue: str,
    *,
    max_concurrent_activities: int = 50,
    max_concurrent_workflow_tasks: int = 10,
    max_cached_workflows: int = 1000,
    shutdown_grace_s: float = 20.0,
    sandboxed: bool = True,
    held_patches: Collection[str] = (),
) -> Worker:
    """Create the worker serving incident workflows and their activities."""
    held = frozenset(held_patches)
    if unknown := held - patches.KNOWN:
        raise SettingsError(f"AWFDRS_WORKER_HELD_PATCHES: unknown patch id(s) {sorted(unknown)}")
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow, VendorIncidentWorkflow],
        activities=activities,
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_local_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        max_cached_workflows=max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=shutdown_grace_s),
        workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
        patch_activation_callback=(lambda patch: patch.patch_id not in held) if held else None,
    )


async def run(settings: Settings, stopping: asyncio.Event) -> None:
    """Serve the task queue until `stopping` is set, then drain gracefully."""
    client = await connect_with_retry(
        settings, stopping, metrics_runtime(settings.worker_metrics_address)
    )
    if client is None:
        return
    async with (
        activity_set(settings) as activities,
        build_worker(
            client,
            activities,
            settings.task_queue,
            max_concurrent_activities=settings.worker_max_concurrent_activities,
            max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
            max_cached_workflows=settings.worker_max_cached_workflows,
            shutdown_grace_s=settings.worker_shutdown_grace_s,
            sandboxed=settings.worker_workflow_sandbox,
            held_patches=settings.worker_held_patches,
        ),
    ):
        log.info("worker running", extra={"task_queue": settings.task_queue})
        await stopping.wait()
        log.info("shutting down: finishing running activities")


async def _main() -> None:
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    start_tracing("awfdrs-worker")  # OTEL_* variables; off by default (before the client)
    # Before dialling Temporal (which may take forever): a missing or wrong key stops here.
    await check_secret_key_at_startup(settings, SecretBox.from_settings(settings))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await run(settings, stopping)
    finally:
        stop_tracing()  # flushes the spans still batched
    log.info("worker stopped")


def main() -> None:
    """Run the worker process (`python -m worker`)."""
    try:
        asyncio.run(_main())
    except SettingsError as exc:
        sys.exit(f"worker: {exc}")


if __name__ == "__main__":
    main()
