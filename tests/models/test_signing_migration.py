"""Migration 0006 seals the secrets already stored, with the key from the environment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from models.migrate import downgrade_database, upgrade_database
from models.secret_box import SecretBox
from models.signing import hmac_secret_of, last4_of
from models.stored_secrets import SIGNING_SECRETS, WEBHOOK_URLS
from settings import Settings, SettingsError, load_settings

LEGACY_SECRET = uuid.uuid4().hex + uuid.uuid4().hex  # as 0001's tenants got them
WEBHOOK = f"https://hooks.example.com/services/T0KEN-{uuid.uuid4().hex}"


@pytest.fixture
async def at_0005(settings: Settings) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A database of its own at 0005 holding a tenant and a webhook in plaintext; its URL."""
    name = f"signing_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.plain_database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = settings.plain_database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        await asyncio.to_thread(upgrade_database, _async(url), "0005")
        conn = await asyncpg.connect(url)
        try:
            await _seed(conn)
            yield conn, _async(url)
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def _seed(conn: asyncpg.Connection) -> None:
    tenant_id = await conn.fetchval(
        "INSERT INTO tenants (id, name, hmac_secret) VALUES (gen_random_uuid(), 't', $1) "
        "RETURNING id",
        LEGACY_SECRET,
    )
    await conn.execute(
        "INSERT INTO workflows (id, tenant_id, name, description, callback_url, "
        "escalation_webhook_url) "
        "VALUES (gen_random_uuid(), $1, 'billing', '', 'http://127.0.0.1:9/cb', $2)",
        tenant_id,
        WEBHOOK,
    )


def _async(url: str) -> str:
    return load_settings(database_url=url).async_database_url


async def test_upgrade_seals_existing_rows_and_downgrade_opens_them(
    at_0005: tuple[asyncpg.Connection, str], settings: Settings
) -> None:
    conn, url = at_0005
    await asyncio.to_thread(upgrade_database, url)
    box = SecretBox.from_settings(settings)
    row = await conn.fetchrow("SELECT tenant_id, secret_encrypted, last4 FROM signing_secrets")
    secret = box.decrypt(row["secret_encrypted"], context=SIGNING_SECRETS.context(row["tenant_id"]))
    # The same key: receivers verifying X-AWFDRS-Signature with their secret keep verifying.
    assert hmac_secret_of(secret) == LEGACY_SECRET
    assert row["last4"] == last4_of(secret)
    sealed = await conn.fetchval("SELECT escalation_webhook_url FROM workflows")
    assert WEBHOOK not in sealed
    assert box.decrypt(sealed, context=WEBHOOK_URLS.context(row["tenant_id"])) == WEBHOOK
    columns = "SELECT column_name FROM information_schema.columns WHERE table_name = 'tenants'"
    assert "hmac_secret" not in {r["column_name"] for r in await conn.fetch(columns)}

    await asyncio.to_thread(downgrade_database, url, "0005")
    assert await conn.fetchval("SELECT hmac_secret FROM tenants") == LEGACY_SECRET
    assert await conn.fetchval("SELECT escalation_webhook_url FROM workflows") == WEBHOOK


async def test_rows_to_seal_and_no_key_stop_the_migration_naming_the_variable(
    at_0005: tuple[asyncpg.Connection, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, url = at_0005
    monkeypatch.delenv("AWFDRS_SECRET_KEY")
    with pytest.raises(SettingsError, match=r"^AWFDRS_SECRET_KEY: must be set to encrypt the 1"):
        await asyncio.to_thread(upgrade_database, url)
    # Nothing changed: the plaintext is where it was, and the revision did not advance.
    assert await conn.fetchval("SELECT hmac_secret FROM tenants") == LEGACY_SECRET
    assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0005"
