"""Every `IncidentWorkflow` patch id, and the one check that stands for all of them in new runs.

Deterministic workflow code: it runs inside the workflow sandbox.

A patch records a marker and (Temporal Core's doing) an upsert of `TemporalChangeVersion` the
first time a run checks it: a dozen patches cost each new incident two dozen history events and
as many visibility writes. A run that checks `CURRENT` first takes every patch listed in
`IMPLIED` without recording them; runs recorded before `CURRENT` existed replay their own
markers, one by one, as they always did. A patch added later is checked on its own.
"""

from __future__ import annotations

from temporalio import workflow

# Opening checks earlier runs' watermarks and the latest success (exact de-duplication).
OPEN_WITH_WATERMARKS = "open-with-watermarks"
# Every status change reaches the projection (and its transition log) promptly.
SYNC_ON_STATUS_CHANGE = "sync-on-status-change"
# A vendor's breaker counts each callback outcome.
RECORD_BREAKER_OUTCOME = "record-breaker-outcome"
# A gate wait that begins while the incident already waits gets its own timeline row.
RECORD_GATE_WAITS = "record-gate-waits"
# Typed responder targets: pages by reference with fallback, the lifecycle mirrored to what
# was paged, and notification rules (older histories page through `send_escalation`).
RESPONDER_TARGETS = "responder-targets"
# A policy's `open_after` holds the incident (workflows/open_threshold.py).
OPEN_THRESHOLDS = "open-thresholds"
# A policy's `approval` holds each attempt until an operator approves it.
APPROVAL_GATES = "approval-gates"
# The flap count is planned, and a flapping incident holds and announces `flapping`.
FLAP_DAMPING = "flap-damping"
# An open circuit (or breaker) links the incident to its vendor incident.
VENDOR_PARENTS = "vendor-parents"
# So do enough open incidents naming the vendor (`degraded_after`).
VENDOR_PARENTS_BY_COUNT = "vendor-parents-by-count"
# Opening, classifying, analysing and planning run as one step, not four.
OPEN_IN_ONE = "open-in-one"
# A step fewer before, at and after each attempt: the gate counts the vendor's incidents, the
# pending action row is stored with the projection, the callback counts its own outcome.
LEAN_ATTEMPT = "lean-attempt"
# An assessment the opening brought is applied with one status upsert, not four.
QUIET_OPENING = "quiet-opening"
IMPLIED = frozenset(
    {
        OPEN_WITH_WATERMARKS,
        SYNC_ON_STATUS_CHANGE,
        RECORD_BREAKER_OUTCOME,
        RECORD_GATE_WAITS,
        RESPONDER_TARGETS,
        OPEN_THRESHOLDS,
        APPROVAL_GATES,
        FLAP_DAMPING,
        VENDOR_PARENTS,
        VENDOR_PARENTS_BY_COUNT,
        OPEN_IN_ONE,
        LEAN_ATTEMPT,
        QUIET_OPENING,
    }
)
CURRENT = "current-2026-12"
# Patches after CURRENT, each checked on its own.
# An attempt that ended without an outcome (the worker's timeout, crash or lost database) is
# not counted against the vendor's breaker: nothing shows the vendor failed, and a worker's own
# overload must not open every tenant's circuit for its vendors (a half-open probe still is).
UNCOUNTED_NO_OUTCOME = "uncounted-no-outcome"
KNOWN = IMPLIED | {CURRENT, UNCOUNTED_NO_OUTCOME}


def patched(patch_id: str) -> bool:
    """`workflow.patched(patch_id)`, answered by `CURRENT` for the patches it implies."""
    if patch_id in IMPLIED and workflow.patched(CURRENT):
        return True
    return workflow.patched(patch_id)
