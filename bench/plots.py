"""Latency distribution charts for `bench/e2e.py --plot`: a histogram and a CDF per rate.

matplotlib comes with the `dev` extra only; the API and worker never import this module.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.load import percentile


def chart_name(scenario: str) -> str:
    """File name of a scenario's chart: `first_callback_at_5.0_per_s` → `…-5-per-s.png`."""
    rate = scenario.removeprefix("first_callback_at_").removesuffix("_per_s")
    return f"first-callback-latency-{float(rate):g}-per-s.png"


def write_latency_charts(samples: dict[str, list[float]], out: Path) -> list[Path]:
    """Write one PNG per scenario with samples (seconds), plus one CDF comparing them all."""
    matplotlib.use("Agg")  # files only: no display is needed, or wanted on a server
    out.mkdir(parents=True, exist_ok=True)
    drawn = {name: values for name, values in samples.items() if values}
    written = []
    for scenario, latencies in drawn.items():
        figure, (hist, cdf) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
        _histogram(hist, latencies)
        _cdf(cdf, {_label(scenario): latencies})
        figure.suptitle(f"First callback latency, {_label(scenario)} ({len(latencies)} incidents)")
        written.append(_save(figure, out / chart_name(scenario)))
    if len(drawn) > 1:
        figure, axes = plt.subplots(figsize=(6, 3.4), layout="constrained")
        _cdf(axes, {_label(name): values for name, values in drawn.items()})
        axes.set_xscale("log")
        figure.suptitle("First callback latency by arrival rate (CDF, log scale)")
        written.append(_save(figure, out / "first-callback-latency-cdf.png"))
    return written


def _label(scenario: str) -> str:
    rate = float(scenario.removeprefix("first_callback_at_").removesuffix("_per_s"))
    return f"{rate:g} new incidents/s"


def _histogram(axes: Axes, latencies: list[float]) -> None:
    """Milliseconds in 30 bins, with the p50 and p99 the JSON reports marked."""
    axes.hist([s * 1000 for s in latencies], bins=30, color="#4c72b0")
    for q, style in ((0.5, "--"), (0.99, ":")):
        value = percentile(latencies, q)
        axes.axvline(value, color="#c44e52", linestyle=style, label=f"p{q * 100:g} {value:.2f} ms")
    axes.set_xlabel("ms from intended send to first callback")
    axes.set_ylabel("incidents")
    axes.legend()


def _cdf(axes: Axes, series: dict[str, list[float]]) -> None:
    for label, latencies in series.items():
        ordered = sorted(s * 1000 for s in latencies)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        axes.step(ordered, fractions, where="post", label=label)
    axes.set_xlabel("ms from intended send to first callback")
    axes.set_ylabel("fraction of incidents")
    axes.set_ylim(0, 1.01)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
