"""The sealed columns of the schema: their contexts, the startup key check and re-sealing."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from models.db import UNAVAILABLE_ERRORS, create_engine
from models.secret_box import KEY_VARIABLE, SecretBox
from settings import Settings

log = logging.getLogger("awfdrs.secrets")
# What stops the startup check without saying anything about the key: the database is down,
# or not migrated yet.
_CANNOT_CHECK: tuple[type[BaseException], ...] = (DBAPIError, *UNAVAILABLE_ERRORS)


@dataclass(frozen=True)
class SealedColumn:
    """A column whose values are sealed by `SecretBox`, bound to their purpose and tenant."""

    table: str
    column: str
    purpose: str
    tenant_column: str = "tenant_id"  # `id` in the tenants table itself

    def context(self, tenant_id: uuid.UUID | str) -> str:
        """Return the associated data a value of this column is sealed with."""
        # Normalised, so a tenant id given as text or as a UUID seals and opens alike.
        return f"{self.purpose}:{uuid.UUID(str(tenant_id))}"

    @property
    def name(self) -> str:
        """Return `table.column`."""
        return f"{self.table}.{self.column}"


SIGNING_SECRETS = SealedColumn("signing_secrets", "secret_encrypted", "signing_secret")
WEBHOOK_URLS = SealedColumn("workflows", "escalation_webhook_url", "escalation_webhook_url")
RESPONDER_SECRETS = SealedColumn("responder_secrets", "secret_encrypted", "responder_secret")
# A workflow's own escalation policy: JSON holding routing keys, API keys and webhook URLs.
ESCALATION_POLICIES = SealedColumn("workflows", "escalation_policy", "escalation_policy")
# A tenant's own escalation policy and notification rules, under every workflow's.
TENANT_ESCALATION_POLICIES = SealedColumn(
    "tenants", "escalation_policy", "tenant_escalation_policy", tenant_column="id"
)
# A tenant's named escalation policies, which workflows refer to by name.
NAMED_ESCALATION_POLICIES = SealedColumn(
    "escalation_policies", "policy_encrypted", "named_escalation_policy"
)
SEALED_COLUMNS = (
    SIGNING_SECRETS,
    WEBHOOK_URLS,
    RESPONDER_SECRETS,
    ESCALATION_POLICIES,
    TENANT_ESCALATION_POLICIES,
    NAMED_ESCALATION_POLICIES,
)


def _one_per_key_id(column: SealedColumn) -> str:
    return (
        f"SELECT DISTINCT ON (split_part({column.column}, ':', 2)) "
        f"{column.tenant_column} AS tenant_id, "
        f"{column.column} AS sealed FROM {column.table} WHERE {column.column} IS NOT NULL"
    )


async def check_secret_key(engine: AsyncEngine, box: SecretBox) -> int:
    """Open one stored value per key id of each sealed column; return how many were opened.

    Raises `SecretKeyError` (naming AWFDRS_SECRET_KEY) when a configured key is wrong or the
    key a value was sealed with is not configured.
    """
    opened = 0
    async with engine.connect() as conn:
        for column in SEALED_COLUMNS:
            for row in (await conn.execute(text(_one_per_key_id(column)))).all():
                box.decrypt(row.sealed, context=column.context(row.tenant_id))
                opened += 1
    return opened


async def check_secret_key_at_startup(settings: Settings, box: SecretBox) -> None:
    """Stop a process whose key cannot open the stored secrets; tolerate a database outage."""
    engine = create_engine(settings, pool_size=1)
    try:
        opened = await check_secret_key(engine, box)
    except _CANNOT_CHECK as exc:
        # Processes start while PostgreSQL is down; the first use then fails on its own.
        log.warning(
            "could not check %s against the stored secrets (%s)", KEY_VARIABLE, type(exc).__name__
        )
        return
    finally:
        await engine.dispose()
    log.info("%s opens the stored secrets (%d checked)", KEY_VARIABLE, opened)


async def reseal_all(engine: AsyncEngine, box: SecretBox) -> dict[str, int]:
    """Seal every value not under the current key again under it; return counts per column."""
    return {column.name: await _reseal(engine, box, column) for column in SEALED_COLUMNS}


async def _reseal(engine: AsyncEngine, box: SecretBox, column: SealedColumn) -> int:
    select = text(
        f"SELECT id, {column.tenant_column} AS tenant_id, {column.column} AS sealed "
        f"FROM {column.table} "
        f"WHERE {column.column} IS NOT NULL AND split_part({column.column}, ':', 2) <> :key_id "
        "FOR UPDATE"
    )
    update = text(f"UPDATE {column.table} SET {column.column} = :sealed WHERE id = :id")
    async with engine.begin() as conn:
        rows = (await conn.execute(select, {"key_id": box.current_key_id})).all()
        for row in rows:
            context = column.context(row.tenant_id)
            plaintext = box.decrypt(row.sealed, context=context)
            sealed = box.encrypt(plaintext, context=context)
            await conn.execute(update, {"sealed": sealed, "id": row.id})
    return len(rows)
