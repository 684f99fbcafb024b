"""The worker's own metrics of actions: outcomes by type, and time to the first callback."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

# Seconds from a failure's acceptance to its incident's first callback answer; the worker's
# runtime gives it these buckets (the SDK's defaults are for milliseconds).
FIRST_CALLBACK_METRIC = "awfdrs_first_callback_seconds"
FIRST_CALLBACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def count_action(action_type: str, outcome: str) -> None:
    """Count one finished action by type and outcome on the worker's metrics."""
    if not activity.in_activity():
        return
    activity.metric_meter().create_counter(
        "awfdrs_actions", "Remediation and escalation actions by type and outcome"
    ).add(1, {"type": action_type, "outcome": outcome})


def observe_first_callback(received_at: datetime | None) -> None:
    """Record how long after its failure was accepted an incident's first callback answered."""
    if received_at is None or not activity.in_activity():
        return
    seconds = (datetime.now(UTC) - received_at).total_seconds()
    activity.metric_meter().create_histogram_float(
        FIRST_CALLBACK_METRIC,
        "From a failure's acceptance to its incident's first callback answer",
        "s",
    ).record(max(seconds, 0.0))
