"""two-way responders: inbound webhook credentials and receipts

Revision ID: 0009_responders
Revises: 0008
Create Date: 2026-12-07

`responder_secrets` holds, per tenant, the PagerDuty Webhooks v3 signing secrets and Opsgenie
inbound tokens that authenticate webhooks acknowledging or resolving incidents (sealed like
`signing_secrets`; several may be active during a rotation). `responder_receipts` records each
acted-on delivery: who, which system, what AWFDRS did; unique per delivery, so a redelivery
does nothing twice.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0009_responders'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"
SYSTEM = "system IN ('pagerduty', 'opsgenie')"


def _create_secrets() -> None:
    op.create_table('responder_secrets',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('system', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('secret_encrypted', sa.Text(), nullable=False),
    sa.Column('last4', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
              nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(SYSTEM, name=op.f('ck_responder_secrets_system')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                            name=op.f('fk_responder_secrets_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_responder_secrets'))
    )
    op.create_index('ix_responder_secrets_tenant_id_system_created_at', 'responder_secrets',
                    ['tenant_id', 'system', 'created_at'], unique=False)


def _create_receipts() -> None:
    op.create_table('responder_receipts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('system', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('delivery_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('event_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('signal', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('actor_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
              nullable=False),
    sa.CheckConstraint(SYSTEM, name=op.f('ck_responder_receipts_system')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'],
                            name=op.f('fk_responder_receipts_incident_id_incidents')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                            name=op.f('fk_responder_receipts_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_responder_receipts')),
    sa.UniqueConstraint('tenant_id', 'system', 'delivery_id',
                        name=op.f('uq_responder_receipts_tenant_id_system_delivery_id'))
    )
    op.create_index('ix_responder_receipts_tenant_id_incident_id_received_at',
                    'responder_receipts', ['tenant_id', 'incident_id', 'received_at'],
                    unique=False)


def upgrade() -> None:
    _create_secrets()
    _create_receipts()
    # Tables created after 0007 get SELECT and INSERT by default; these two are mutable.
    op.execute(f"GRANT UPDATE, DELETE ON responder_secrets, responder_receipts TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_index('ix_responder_receipts_tenant_id_incident_id_received_at',
                  table_name='responder_receipts')
    op.drop_table('responder_receipts')
    op.drop_index('ix_responder_secrets_tenant_id_system_created_at',
                  table_name='responder_secrets')
    op.drop_table('responder_secrets')
