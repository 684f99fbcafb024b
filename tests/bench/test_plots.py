"""`bench/e2e.py --plot`: latency charts from raw samples, no live stack needed."""

from __future__ import annotations

import random
from pathlib import Path

from bench.plots import chart_name, write_latency_charts

PNG = b"\x89PNG\r\n\x1a\n"


def samples() -> dict[str, list[float]]:
    """Latencies in seconds, as `first_callback_latency` collects them: a calm and a busy rate."""
    rng = random.Random(7)
    return {
        "first_callback_at_5.0_per_s": [rng.lognormvariate(-1.9, 0.4) for _ in range(50)],
        "first_callback_at_20.0_per_s": [rng.uniform(0.2, 40) for _ in range(200)],
    }


def test_each_rate_gets_a_chart_and_all_rates_a_shared_cdf(tmp_path: Path) -> None:
    out = tmp_path / "charts"
    written = write_latency_charts(samples(), out)
    assert [p.name for p in written] == [
        "first-callback-latency-5-per-s.png",
        "first-callback-latency-20-per-s.png",
        "first-callback-latency-cdf.png",
    ]
    for path in written:
        assert path.parent == out and path.read_bytes().startswith(PNG)
        assert 5_000 < path.stat().st_size < 200_000, "small enough to commit"


def test_a_rate_whose_incidents_never_called_back_is_left_out(tmp_path: Path) -> None:
    written = write_latency_charts({"first_callback_at_5.0_per_s": [0.1, 0.2, 0.15]}, tmp_path)
    assert [p.name for p in written] == [chart_name("first_callback_at_5.0_per_s")]
    assert write_latency_charts({"first_callback_at_20.0_per_s": []}, tmp_path / "none") == []
