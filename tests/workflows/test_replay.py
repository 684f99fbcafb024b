"""Every committed history replays on today's workflow code; a non-deterministic change fails."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from workflows.converter import DATA_CONVERTER
from workflows.incident_state import IncidentInput, IncidentResult
from workflows.incident_workflow import IncidentWorkflow
from workflows.vendor_incident_workflow import VendorIncidentWorkflow

HISTORIES = sorted((Path(__file__).resolve().parent.parent / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_histories_are_committed() -> None:
    assert len(HISTORIES) >= 4, "record them with AWFDRS_RECORD_HISTORIES=1 (see README)"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_cleanly(path: Path) -> None:
    replayer = Replayer(
        workflows=[IncidentWorkflow, VendorIncidentWorkflow], data_converter=DATA_CONVERTER
    )
    await replayer.replay_workflow(_history(path))


@workflow.defn(name="IncidentWorkflow")
class ReorderedIncidentWorkflow(IncidentWorkflow):
    """A deliberately non-deterministic change: a timer before the first activity."""

    @workflow.run
    async def run(self, _inp: IncidentInput) -> IncidentResult:
        """Sleep first, then behave as before."""
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(_inp)


async def test_a_non_deterministic_change_fails_replay() -> None:
    replayer = Replayer(
        workflows=[ReorderedIncidentWorkflow],
        data_converter=DATA_CONVERTER,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    with pytest.raises(workflow.NondeterminismError):
        await replayer.replay_workflow(_history(HISTORIES[0]))
