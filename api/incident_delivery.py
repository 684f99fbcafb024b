"""How the dispatcher hands one outbox group to Temporal: signal-with-start, or resolve signals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from api import outbox
from api.outbox import Group
from vocabulary import SignalName
from workflows.incident_workflow import IncidentWorkflow

RPC_TIMEOUT = timedelta(seconds=5)
# Temporal is unreachable or overloaded: every group would fail alike, so none is to blame.
OUTAGE_STATUSES = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
    }
)


def is_outage(exc: Exception) -> bool:
    """Tell whether `exc` means Temporal is out of reach rather than the group is at fault."""
    if isinstance(exc, RPCError):
        return exc.status in OUTAGE_STATUSES
    return isinstance(exc, RuntimeError | OSError | TimeoutError)


class IncidentDelivery:
    """Sends outbox groups to their incidents' workflows, counting every signal sent."""

    def __init__(self, *, temporal: Client, task_queue: str, on_signal: Callable[[], None]) -> None:
        self._temporal = temporal
        self._task_queue = task_queue
        self._on_signal = on_signal

    async def start_or_signal(self, group: Group) -> None:
        """Signal-with-start the incident of a failure group (an existing run takes the signal)."""
        first = group.rows[0]
        await self._temporal.start_workflow(
            IncidentWorkflow.run,
            outbox.incident_input(first),
            id=group.key,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal=SignalName.EVENT_DIGEST,
            start_signal_args=[outbox.digest(group)],
            rpc_timeout=RPC_TIMEOUT,
            **outbox.start_options(first),
        )
        self._on_signal()

    async def resolve(self, group: Group, targets: list[str]) -> None:
        """Signal a success group to every open incident it may resolve."""
        digest = outbox.digest(group)
        for target in targets:
            handle = self._temporal.get_workflow_handle_for(IncidentWorkflow.run, target)
            try:
                await handle.signal(IncidentWorkflow.event_digest, digest, rpc_timeout=RPC_TIMEOUT)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise  # closed since the lookup: nothing left to resolve
                continue
            self._on_signal()
