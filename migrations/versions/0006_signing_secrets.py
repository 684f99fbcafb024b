"""signing secrets, encrypted at rest

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Tenants sign outbound requests with any number of secrets (Standard Webhooks, rotated by
adding one and retiring the old), kept in `signing_secrets` sealed with AES-256-GCM under
AWFDRS_SECRET_KEY. Each tenant's former `hmac_secret` becomes its first signing secret (the
same key, so receivers keep verifying), and the column goes. `workflows.escalation_webhook_url`
is sealed the same way, and becomes TEXT since a sealed value is longer than its URL.

Existing rows are sealed with the key read from the environment (AWFDRS_SECRET_KEY, as the
application reads it); with rows to seal and no key the migration stops, naming the
variable. Downgrade opens them again (it needs the key as well) and restores the columns.
"""

from collections.abc import Sequence
from secrets import token_hex
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

from models.secret_box import KEY_VARIABLE, SecretBox
from models.signing import hmac_secret_of, last4_of, secret_for_key
from models.stored_secrets import SIGNING_SECRETS, WEBHOOK_URLS
from settings import SettingsError, load_settings

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rows(sql: str, **params: Any) -> list[Any]:
    return list(op.get_bind().execute(sa.text(sql), params).all())


def _box(to_do: str) -> SecretBox:
    settings = load_settings()
    if settings.secret_key is None:
        raise SettingsError(
            f"{KEY_VARIABLE}: must be set to {to_do} (base64 of 32 random bytes; the API and "
            "the worker need the same key; `awfdrs up` generates one before migrating)"
        )
    return SecretBox.from_settings(settings)


def _create_table() -> None:
    op.create_table('signing_secrets',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('secret_encrypted', sa.Text(), nullable=False),
    sa.Column('last4', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
              nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                            name=op.f('fk_signing_secrets_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signing_secrets'))
    )
    op.create_index('ix_signing_secrets_tenant_id_created_at', 'signing_secrets',
                    ['tenant_id', 'created_at'], unique=False)


def _seal_existing() -> None:
    tenants = _rows("SELECT id, hmac_secret FROM tenants")
    webhooks = _rows(
        "SELECT id, tenant_id, escalation_webhook_url AS url FROM workflows "
        "WHERE escalation_webhook_url IS NOT NULL"
    )
    if not tenants and not webhooks:
        return
    box = _box(
        f"encrypt the {len(tenants)} tenant secret(s) and {len(webhooks)} escalation "
        "webhook URL(s) already stored"
    )
    for tenant in tenants:
        secret = secret_for_key(tenant.hmac_secret.encode())
        op.get_bind().execute(
            sa.text(
                "INSERT INTO signing_secrets (id, tenant_id, secret_encrypted, last4) "
                "VALUES (gen_random_uuid(), :tenant_id, :sealed, :last4)"
            ),
            {
                "tenant_id": tenant.id,
                "sealed": box.encrypt(secret, context=SIGNING_SECRETS.context(tenant.id)),
                "last4": last4_of(secret),
            },
        )
    for row in webhooks:
        sealed = box.encrypt(row.url, context=WEBHOOK_URLS.context(row.tenant_id))
        op.get_bind().execute(
            sa.text("UPDATE workflows SET escalation_webhook_url = :sealed WHERE id = :id"),
            {"sealed": sealed, "id": row.id},
        )


def upgrade() -> None:
    _create_table()
    op.alter_column('workflows', 'escalation_webhook_url', type_=sa.Text(),
                    existing_type=sqlmodel.sql.sqltypes.AutoString(length=2048),
                    existing_nullable=True)
    _seal_existing()
    op.drop_column('tenants', 'hmac_secret')


def _open_existing() -> None:
    # Each tenant's oldest active secret becomes its single `hmac_secret` again.
    secrets = _rows(
        "SELECT DISTINCT ON (tenant_id) tenant_id, secret_encrypted FROM signing_secrets "
        "ORDER BY tenant_id, retired_at IS NOT NULL, created_at"
    )
    webhooks = _rows(
        "SELECT id, tenant_id, escalation_webhook_url AS sealed FROM workflows "
        "WHERE escalation_webhook_url IS NOT NULL"
    )
    if not secrets and not webhooks:
        return
    box = _box(f"decrypt the {len(secrets) + len(webhooks)} secret(s) stored")
    for row in secrets:
        secret = box.decrypt(row.secret_encrypted, context=SIGNING_SECRETS.context(row.tenant_id))
        op.get_bind().execute(
            sa.text("UPDATE tenants SET hmac_secret = :secret WHERE id = :id"),
            {"secret": hmac_secret_of(secret), "id": row.tenant_id},
        )
    for row in webhooks:
        url = box.decrypt(row.sealed, context=WEBHOOK_URLS.context(row.tenant_id))
        op.get_bind().execute(
            sa.text("UPDATE workflows SET escalation_webhook_url = :url WHERE id = :id"),
            {"url": url, "id": row.id},
        )


def downgrade() -> None:
    op.add_column('tenants', sa.Column('hmac_secret', sqlmodel.sql.sqltypes.AutoString(length=128),
                                       nullable=True))
    _open_existing()
    # A tenant without any secret (none is created so) gets a fresh one, as 0001 would.
    for (tenant_id,) in _rows("SELECT id FROM tenants WHERE hmac_secret IS NULL"):
        op.get_bind().execute(
            sa.text("UPDATE tenants SET hmac_secret = :secret WHERE id = :id"),
            {"secret": token_hex(32), "id": tenant_id},
        )
    op.alter_column('tenants', 'hmac_secret', nullable=False)
    op.alter_column('workflows', 'escalation_webhook_url',
                    type_=sqlmodel.sql.sqltypes.AutoString(length=2048),
                    existing_type=sa.Text(), existing_nullable=True)
    op.drop_index('ix_signing_secrets_tenant_id_created_at', table_name='signing_secrets')
    op.drop_table('signing_secrets')
