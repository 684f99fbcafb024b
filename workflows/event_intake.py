"""How `IncidentWorkflow` counts its events: exactly once, before and after its incident opens.

Deterministic workflow code: it runs inside the workflow sandbox.
"""

from __future__ import annotations

import copy

from vocabulary import IncidentStatus
from workflows import activity_calls
from workflows.activity_payloads import REDELIVERY, OpenIncidentRequest, OpenIncidentResult
from workflows.incident_logic import apply_digest, apply_events, is_terminal, success_resolves
from workflows.incident_state import IncidentState
from workflows.incident_tracker import IncidentTracker
from workflows.signal_payloads import EventBatch, EventDigest

SUCCESS_EVENT_RESOLVED = "a success event arrived for the failed step"


class EventIntake:
    """Takes the dispatcher's signals into the incident's counts, de-duplicated."""

    def __init__(self, state: IncidentState, tracker: IncidentTracker) -> None:
        self._state = state
        self._tracker = tracker
        # Digests that arrive before earlier runs' watermarks are known wait here.
        self._inbox: list[EventDigest] = []

    def receive_digest(self, digest: EventDigest) -> None:
        """Count a digest now, or keep it until the watermarks are known."""
        if self._state.watermarks_loaded:
            self._take_digest(digest)
        else:
            self._inbox.append(digest)

    def receive_batch(self, batch: EventBatch) -> None:
        """Count a legacy batch by event id; a success in it resolves the incident."""
        if apply_events(self._state, batch) and not is_terminal(self._state):
            self._tracker.close(IncidentStatus.RESOLVED, SUCCESS_EVENT_RESOLVED)
        self._tracker.refresh_details()

    def take_inbox(self) -> None:
        """Count every digest kept so far: the watermarks are known from now on."""
        self._state.watermarks_loaded = True
        inbox, self._inbox = self._inbox, []
        for digest in inbox:
            self._take_digest(digest)

    async def open_incident(self) -> str:
        """Open unless earlier runs counted every event in hand; return why not ("" if open)."""
        request, _ = self.opening_request()
        return self.take_opened(await activity_calls.open_incident(request))

    def opening_request(self) -> tuple[OpenIncidentRequest, IncidentState]:
        """What opening is told, and the state as it will be once the digests in hand count."""
        state = self._state
        tentative = copy.deepcopy(state)
        pending: dict[str, int] = {}
        for digest in self._inbox:
            apply_digest(tentative, digest)
            if digest.seqs:
                pending[digest.source] = max(pending.get(digest.source, 0), digest.seqs[-1])
        record = self._tracker.projection_request(state=tentative)
        legacy = state.event_count > 0
        return OpenIncidentRequest(record=record, pending=pending, legacy_events=legacy), tentative

    def take_opened(self, opened: OpenIncidentResult) -> str:
        """Count the digests in hand against earlier runs' marks; return why not open ("")."""
        state = self._state
        state.watermarks = dict(opened.watermarks)
        self.take_inbox()
        if not opened.incident_id:
            return opened.refused or REDELIVERY
        state.incident_id = opened.incident_id
        success_at = opened.latest_success_at
        if success_at and state.last_failure_at and success_resolves(state, success_at):
            # The success was stored before this incident existed, so no signal carried it.
            reason = f"success event {opened.latest_success_id} followed"
            self._tracker.close(IncidentStatus.RESOLVED, reason)
        return ""

    def _take_digest(self, digest: EventDigest) -> None:
        state = self._state
        success_at = apply_digest(state, digest)
        live = not is_terminal(state)
        if success_at is not None and live and success_resolves(state, success_at):
            if state.status == IncidentStatus.FLAPPING:
                # Kept for the end of the quiet period (flap_damping.py), not acted on now.
                state.flap_success_at = max(success_at, state.flap_success_at or success_at)
            else:
                self._tracker.close(IncidentStatus.RESOLVED, SUCCESS_EVENT_RESOLVED)
        self._tracker.refresh_details()
