"""The safety gate: one call answering permit, wait(seconds, reason) or deny(reason)."""

from __future__ import annotations

from temporalio import activity

from workflows.incident_types import GateDecision, GateRequest


class SafetyGate:
    """Checks what must hold before a remediation call (attempt cap for now)."""

    @activity.defn(name="check_gate")
    async def check_gate(self, req: GateRequest) -> GateDecision:
        """Permit the attempt unless the incident's attempt cap is reached."""
        if req.attempt > req.max_attempts:
            return GateDecision("deny", reason=f"attempt cap of {req.max_attempts} reached")
        return GateDecision("permit")
