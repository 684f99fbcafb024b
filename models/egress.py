"""Per-tenant egress allow-lists (admin-managed), and the worker's short-lived cache of them."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from typing import ClassVar

from sqlalchemy import Column, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from models.base import timestamp_field
from rules.addresses import parse_network
from rules.egress_lists import TenantEgress, parse_entry

log = logging.getLogger("awfdrs.egress")
# Admin changes reach the worker's next vetting within this long (the API forgets at once).
TENANT_EGRESS_TTL_S = 5.0
_MAX_CACHED = 10_000
_LOOKUP = text("SELECT hosts, networks FROM tenant_egress WHERE tenant_id = :tenant_id")


def _text_array() -> Column[list[str]]:
    return Column(ARRAY(Text), nullable=False, server_default="{}")


class TenantEgressList(SQLModel, table=True):
    """The hosts and internal networks one tenant may call beyond the global allow-list."""

    __tablename__: ClassVar[str] = "tenant_egress"

    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", primary_key=True)
    hosts: list[str] = Field(default_factory=list, sa_column=_text_array())
    networks: list[str] = Field(default_factory=list, sa_column=_text_array())
    updated_at: datetime | None = timestamp_field()


def to_tenant_egress(hosts: list[str], networks: list[str]) -> TenantEgress:
    """Parse stored entries; one that no longer parses is skipped and logged, never fatal."""
    entries, parsed = [], []
    for host in hosts:
        try:
            entries.append(parse_entry(host))
        except ValueError as exc:
            log.warning("ignoring a stored egress host: %s", exc)
    for network in networks:
        try:
            parsed.append(parse_network(network))
        except ValueError as exc:
            log.warning("ignoring a stored egress network: %s", exc)
    return TenantEgress(tuple(entries), tuple(parsed))


class StoredEgressLists:
    """Reads tenants' allow-lists from PostgreSQL, caching each for a few seconds."""

    def __init__(self, engine: AsyncEngine, *, ttl_s: float = TENANT_EGRESS_TTL_S) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, TenantEgress]] = {}

    async def get(self, tenant_id: str) -> TenantEgress:
        """Return the tenant's lists (empty when it has none)."""
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._engine.connect() as conn:
            row = (await conn.execute(_LOOKUP, {"tenant_id": uuid.UUID(tenant_id)})).first()
        lists = to_tenant_egress(list(row.hosts), list(row.networks)) if row else TenantEgress()
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[tenant_id] = (time.monotonic() + self._ttl_s, lists)
        return lists

    def forget(self, tenant_id: str) -> None:
        """Drop one tenant's cached lists (after an admin changed them in this process)."""
        self._cache.pop(tenant_id, None)
