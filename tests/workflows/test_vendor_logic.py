"""The vendor incident's pure helpers: the release spread and what the page says."""

from __future__ import annotations

import itertools

from workflows.vendor_logic import MAX_RELEASE_SPREAD_S, headline, release_delays
from workflows.vendor_payloads import ChildLink, VendorIncidentInput, VendorIncidentState


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
