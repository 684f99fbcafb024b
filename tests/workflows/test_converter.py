"""The shared data converter: lossless round trips and type adapters reused across instances."""

from __future__ import annotations

from datetime import UTC, datetime

from workflows.converter import DATA_CONVERTER, AwfdrsPayloadConverter, _type_adapter
from workflows.incident_state import IncidentState
from workflows.signal_payloads import EventSummary, KillRequest


def test_state_round_trips_with_datetimes_and_nested_dataclasses() -> None:
    state = IncidentState(
        incident_id="i-1", attempts=2, next_action_at=datetime(2026, 11, 26, tzinfo=UTC)
    )
    state.latest_event = EventSummary(
        event_id="e-1", event_type="step.failed", occurred_at=datetime(2026, 11, 26, 9, tzinfo=UTC)
    )
    converter = DATA_CONVERTER.payload_converter
    [payload] = converter.to_payloads([state])
    [back] = converter.from_payloads([payload], [IncidentState])
    assert back == state


def test_fresh_converters_reuse_one_type_adapter() -> None:
    # The SDK makes a converter per workflow run; the adapter must survive that.
    [payload] = AwfdrsPayloadConverter().to_payloads([KillRequest(reason="drill")])
    AwfdrsPayloadConverter().from_payloads([payload], [KillRequest])
    before = _type_adapter.cache_info()
    assert AwfdrsPayloadConverter().from_payloads([payload], [KillRequest]) == [
        KillRequest(reason="drill")
    ]
    after = _type_adapter.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)
