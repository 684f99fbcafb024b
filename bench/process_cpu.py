"""CPU seconds per named set of processes: where a bench run's CPU went, server by server.

Each name stands for the processes `bench/e2e.py` started (the API, the workers, PostgreSQL's
postmaster, …) and everything they forked: PostgreSQL's backends are the postmaster's
children (each in a session of its own, so process groups would miss them). A child that
ended and was reaped counts through its parent's `children_*` times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import psutil


def tree_cpu_s(roots: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """User + system CPU seconds so far of each name's processes and their descendants."""
    totals = dict.fromkeys(roots, 0.0)
    for name, pids in roots.items():
        for pid in pids:
            totals[name] += _tree_cpu_s(pid)
    return totals


def _tree_cpu_s(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0  # ended meanwhile
    total = 0.0
    for proc in family:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def per_incident_ms(
    before: Mapping[str, float], after: Mapping[str, float], incidents: int
) -> dict[str, float]:
    """Milliseconds of CPU per incident by name, and their `total`."""
    spent = {name: (after[name] - before.get(name, 0.0)) * 1000 / incidents for name in after}
    spent["total"] = sum(spent.values())
    return {name: round(ms, 2) for name, ms in spent.items()}
