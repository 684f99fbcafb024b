"""dispatch integrity: dead letters, ordered outbox, watermarks, open-incident lookup

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STEP_SUCCESS = "event_type = 'step.succeeded'"
WORKFLOW_SUCCESS = "event_type = 'workflow.succeeded'"


def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('incident_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('event_ids', postgresql.ARRAY(sa.Uuid()), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), server_default='', nullable=False),
    sa.Column('first_queued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replayed_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_dead_letters_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters'))
    )
    op.create_index('ix_dead_letters_tenant_id_created_at', 'dead_letters', ['tenant_id', 'created_at'], unique=False)
    op.add_column('event_outbox', sa.Column('failures', sa.Integer(), server_default='0', nullable=False))
    op.add_column('event_outbox', sa.Column('last_error', sa.Text(), nullable=True))
    op.create_index('ix_event_outbox_incident_key_id', 'event_outbox', ['incident_key', 'id'], unique=False)
    op.add_column('incidents', sa.Column('watermarks', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False))
    op.create_index('ix_incidents_open_by_workflow', 'incidents', ['tenant_id', 'source_workflow', 'step'], unique=False, postgresql_where=sa.text('closed_at IS NULL'))
    op.create_index('ix_events_step_successes', 'events', ['tenant_id', 'workflow', 'step', 'occurred_at'], unique=False, postgresql_where=sa.text(STEP_SUCCESS))
    op.create_index('ix_events_workflow_successes', 'events', ['tenant_id', 'workflow', 'occurred_at'], unique=False, postgresql_where=sa.text(WORKFLOW_SUCCESS))


def downgrade() -> None:
    op.drop_index('ix_events_workflow_successes', table_name='events', postgresql_where=sa.text(WORKFLOW_SUCCESS))
    op.drop_index('ix_events_step_successes', table_name='events', postgresql_where=sa.text(STEP_SUCCESS))
    op.drop_index('ix_incidents_open_by_workflow', table_name='incidents', postgresql_where=sa.text('closed_at IS NULL'))
    op.drop_column('incidents', 'watermarks')
    op.drop_index('ix_event_outbox_incident_key_id', table_name='event_outbox')
    op.drop_column('event_outbox', 'last_error')
    op.drop_column('event_outbox', 'failures')
    op.drop_index('ix_dead_letters_tenant_id_created_at', table_name='dead_letters')
    op.drop_table('dead_letters')
