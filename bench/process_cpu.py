"""CPU seconds per named set of process groups: where a bench run's CPU went, server by server.

Every process `bench/e2e.py` starts leads its own process group (PostgreSQL's backends are in
the postmaster's), so a group id names a server with everything it forked. Reaped children
count through their parent's `children_*` times; a process that ended unreaped is not seen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import psutil


def group_cpu_s(groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """User + system CPU seconds so far of every process in each name's process groups."""
    owner = {pgid: name for name, pgids in groups.items() for pgid in pgids}
    totals = dict.fromkeys(groups, 0.0)
    for proc in psutil.process_iter():
        try:
            name = owner.get(os.getpgid(proc.pid))
            if name is None:
                continue
            t = proc.cpu_times()
        except (psutil.Error, ProcessLookupError):
            continue  # ended meanwhile
        totals[name] += t.user + t.system + t.children_user + t.children_system
    return totals


def per_incident_ms(
    before: Mapping[str, float], after: Mapping[str, float], incidents: int
) -> dict[str, float]:
    """Milliseconds of CPU per incident by name, and their `total`."""
    spent = {name: (after[name] - before.get(name, 0.0)) * 1000 / incidents for name in after}
    spent["total"] = sum(spent.values())
    return {name: round(ms, 2) for name, ms in spent.items()}
