"""incident transitions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('incident_transitions',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reason', sa.Text(), server_default='', nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_transitions_incident_id_incidents')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_incident_transitions_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_transitions'))
    )
    op.create_index('ix_incident_transitions_tenant_id_incident_id_at', 'incident_transitions', ['tenant_id', 'incident_id', 'at'], unique=False)
    op.create_index('ix_incidents_tenant_id_last_seen_at', 'incidents', ['tenant_id', 'last_seen_at'], unique=False)
    # Transitions are audit evidence, like events and decisions (function from 0001).
    op.execute(
        "CREATE TRIGGER incident_transitions_append_only BEFORE UPDATE OR DELETE ON "
        "incident_transitions FOR EACH ROW EXECUTE FUNCTION awfdrs_reject_mutation()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS incident_transitions_append_only ON incident_transitions")
    op.drop_index('ix_incidents_tenant_id_last_seen_at', table_name='incidents')
    op.drop_index('ix_incident_transitions_tenant_id_incident_id_at', table_name='incident_transitions')
    op.drop_table('incident_transitions')
