"""operator identity: API key owners and the operator action audit trail

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

`api_keys.owner` names the person or team a key belongs to (optional); audit rows name a key
by its owner when it has one. `operator_actions` records every operator action (signals, kill
switches, vendor overrides) with the actor derived from the credential (`jwt:<sub>`,
`api-key:<owner or id>`); it is append-only, so the default SELECT and INSERT grants suffice.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('api_keys', sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=200),
                                        nullable=True))
    op.create_table('operator_actions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), server_default='{}',
              nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
              nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                            name=op.f('fk_operator_actions_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operator_actions'))
    )
    op.create_index('ix_operator_actions_tenant_id_created_at', 'operator_actions',
                    ['tenant_id', 'created_at'], unique=False)
    op.create_index('ix_operator_actions_tenant_id_target', 'operator_actions',
                    ['tenant_id', 'target'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_operator_actions_tenant_id_target', table_name='operator_actions')
    op.drop_index('ix_operator_actions_tenant_id_created_at', table_name='operator_actions')
    op.drop_table('operator_actions')
    op.drop_column('api_keys', 'owner')
