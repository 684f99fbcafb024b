"""Gauges read fresh from PostgreSQL when `/metrics` is scraped."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from vocabulary import TERMINAL_STATUSES, IncidentStatus

# Served by the partial index on open incidents: cheap however many closed ones there are.
_OPEN_BY_STATUS = text("""
SELECT status, count(*) AS n FROM incidents WHERE closed_at IS NULL GROUP BY status
""")
LIVE_STATUSES = tuple(s for s in IncidentStatus if s not in TERMINAL_STATUSES)


async def open_incidents_by_status(engine: AsyncEngine) -> dict[str, int]:
    """Count the open incidents of every tenant per live status (zero included)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_OPEN_BY_STATUS)).all()
    counts = {str(status): 0 for status in LIVE_STATUSES}
    counts.update({str(row.status): int(row.n) for row in rows})
    return counts
