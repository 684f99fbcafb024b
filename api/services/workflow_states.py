"""The registry and kill-switch state intake checks each event against, cached briefly."""

from __future__ import annotations

import time
import uuid
from fnmatch import fnmatchcase

import asyncpg

from api.services.ingest import WorkflowState
from rules.maintenance import windows_from_json

_WORKFLOWS = """
SELECT w.name, w.active,
       coalesce((SELECT array_agg(coalesce(k.vendor, '*')) FROM kill_switches k
                 WHERE k.tenant_id = w.tenant_id AND k.workflow = w.name AND k.active
                   AND (k.expires_at IS NULL OR k.expires_at > now())),
                '{}') AS killed_vendors,
       coalesce((SELECT jsonb_agg(to_jsonb(m)) FROM maintenance_windows m
                 WHERE m.tenant_id = w.tenant_id AND m.ended_at IS NULL),
                '[]'::jsonb) AS windows
FROM workflows w WHERE w.tenant_id = $1 AND w.name = ANY($2::text[])
"""


class WorkflowStateCache:
    """Registry lookups cached briefly; kill-switch and registry writes clear it in-process."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._entries: dict[tuple[uuid.UUID, str], tuple[float, WorkflowState | None]] = {}

    async def get_many(
        self, *, conn: asyncpg.Connection, tenant_id: uuid.UUID, names: set[str]
    ) -> dict[str, WorkflowState | None]:
        """Return the state of each named workflow (None when not registered)."""
        now = time.monotonic()
        found: dict[str, WorkflowState | None] = {}
        for name in names:
            entry = self._entries.get((tenant_id, name))
            if entry is not None and entry[0] > now:
                found[name] = entry[1]
        missing = names - found.keys()
        if missing:
            rows = await conn.fetch(_WORKFLOWS, tenant_id, list(missing))
            for name in missing:
                found[name] = None
            for row in rows:
                found[row["name"]] = WorkflowState(
                    row["active"],
                    frozenset(row["killed_vendors"]),
                    tuple(
                        window
                        for window in windows_from_json(row["windows"])
                        if fnmatchcase(name, window.matchers.workflow)
                    ),
                )
            if self._ttl_s > 0:
                if len(self._entries) > 10_000:
                    self._entries.clear()
                for name in missing:
                    self._entries[(tenant_id, name)] = (now + self._ttl_s, found[name])
        return found

    def forget(self, tenant_id: uuid.UUID) -> None:
        """Forget the tenant's cached entries (its registry or kill switches changed)."""
        for key in [key for key in self._entries if key[0] == tenant_id]:
            del self._entries[key]
