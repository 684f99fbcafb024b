"""The vendor incident's pure helpers: the release spread and what the page says."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from workflows.vendor_logic import (
    MAX_RELEASE_SPREAD_S,
    counted_only,
    headline,
    probe_wait_s,
    recovered,
    release_delays,
)
from workflows.vendor_payloads import (
    ChildLink,
    ProbeReport,
    VendorIncidentInput,
    VendorIncidentState,
)


def test_twelve_children_are_released_a_quarter_second_apart_over_three_seconds() -> None:
    delays = release_delays(12)
    assert delays[0] == 0 and len(set(delays)) == 12
    assert [round(b - a, 3) for a, b in itertools.pairwise(delays)] == [0.25] * 11


def test_few_children_still_spread_over_two_seconds_and_many_over_thirty_at_most() -> None:
    assert release_delays(2) == [0.0, 1.0]
    assert release_delays(1) == [0.0]
    assert max(release_delays(10_000)) < MAX_RELEASE_SPREAD_S


def test_the_headline_counts_children_and_names_each_workflow_once() -> None:
    children = [
        ChildLink(f"i{n}", f"incident:t:{n}", ("billing", "invoice")[n % 2], "p") for n in range(5)
    ]
    state = VendorIncidentState(incident_id="p", children=children)
    text = headline(VendorIncidentInput("t", "acme"), state)
    assert text == "acme degraded: 5 incident(s) held across 2 workflow(s): billing, invoice"


def test_opened_by_count_only_a_successful_probe_shows_recovery_until_the_breaker_opens() -> None:
    state = VendorIncidentState(incident_id="p", by_count=True)
    failed_on_closed = ProbeReport("c1", called=True, breaker="closed", detail="retryable")
    good = ProbeReport("c1", called=True, breaker="closed", detail="success", succeeded=True)
    assert counted_only(state) and not recovered(state, failed_on_closed)
    assert recovered(state, good)
    state.breaker_opened = True  # from then on the breaker decides (and a good probe still ends it)
    assert not counted_only(state) and recovered(state, failed_on_closed) and recovered(state, good)
    by_breaker = VendorIncidentState(incident_id="p")
    assert recovered(by_breaker, failed_on_closed)
    assert not recovered(by_breaker, ProbeReport("c1", True, "open", "success", succeeded=True))


def test_opened_by_count_probes_one_interval_after_opening_and_after_each_failed_probe() -> None:
    opened = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    state = VendorIncidentState(incident_id="p", by_count=True, opened_at=opened)
    assert probe_wait_s(state, 30, opened + timedelta(seconds=5)) == 25
    assert probe_wait_s(state, 30, opened + timedelta(seconds=31)) == 0
    state.next_probe_at = opened + timedelta(seconds=70)
    assert probe_wait_s(state, 30, opened + timedelta(seconds=40)) == 30
