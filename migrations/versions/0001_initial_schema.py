"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 10:40:59.822942
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_TABLES = ("events", "decisions")

# Audit rows are evidence: the database itself refuses to change or remove them, whatever
# the application (or an operator with psql) tries.
REJECT_MUTATION = """
CREATE FUNCTION awfdrs_reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""


def upgrade() -> None:
    op.create_table('tenants',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('ingest_rate_per_s', sa.Integer(), server_default='5000', nullable=False),
    sa.Column('hmac_secret', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants')),
    sa.UniqueConstraint('name', name=op.f('uq_tenants_name'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('display_prefix', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("scope IN ('ingest', 'operator')", name=op.f('ck_api_keys_scope')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_keys_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_index(op.f('ix_api_keys_tenant_id'), 'api_keys', ['tenant_id'], unique=False)
    op.create_table('events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('body_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('workflow', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('event_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('step', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('vendor', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('error_message', sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=True),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('signature', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('incident_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('remediation', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='normal', nullable=False),
    sa.Column('correlation_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("event_type IN ('step.failed', 'step.succeeded', 'workflow.failed', 'workflow.succeeded', 'workflow.started')", name=op.f('ck_events_event_type')),
    sa.CheckConstraint("remediation IN ('normal', 'suppressed')", name=op.f('ck_events_remediation')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_events_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('tenant_id', 'idempotency_key', name=op.f('uq_events_tenant_id_idempotency_key'))
    )
    op.create_index('ix_events_tenant_id_error_code_occurred_at', 'events', ['tenant_id', 'error_code', 'occurred_at'], unique=False)
    op.create_index('ix_events_tenant_id_event_type_occurred_at', 'events', ['tenant_id', 'event_type', 'occurred_at'], unique=False)
    op.create_index('ix_events_tenant_id_incident_key_occurred_at', 'events', ['tenant_id', 'incident_key', 'occurred_at'], unique=False)
    op.create_index('ix_events_tenant_id_occurred_at', 'events', ['tenant_id', 'occurred_at'], unique=False)
    op.create_index('ix_events_tenant_id_workflow_occurred_at', 'events', ['tenant_id', 'workflow', 'occurred_at'], unique=False)
    op.create_table('incidents',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='open', nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='medium', nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('source_workflow', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('step', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('signature', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('vendor', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('event_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("severity IN ('critical', 'high', 'medium', 'low', 'info')", name=op.f('ck_incidents_severity')),
    sa.CheckConstraint("status IN ('open', 'analyzing', 'remediating', 'waiting', 'paused', 'escalated', 'acknowledged', 'resolved', 'killed', 'suppressed')", name=op.f('ck_incidents_status')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_incidents_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents')),
    sa.UniqueConstraint('workflow_id', 'run_id', name=op.f('uq_incidents_workflow_id_run_id'))
    )
    op.create_index('ix_incidents_tenant_id_error_code_last_seen_at', 'incidents', ['tenant_id', 'error_code', 'last_seen_at'], unique=False)
    op.create_index('ix_incidents_tenant_id_first_seen_at', 'incidents', ['tenant_id', 'first_seen_at'], unique=False)
    op.create_index('ix_incidents_tenant_id_severity_last_seen_at', 'incidents', ['tenant_id', 'severity', 'last_seen_at'], unique=False)
    op.create_index('ix_incidents_tenant_id_signature', 'incidents', ['tenant_id', 'signature'], unique=False)
    op.create_index('ix_incidents_tenant_id_source_workflow_last_seen_at', 'incidents', ['tenant_id', 'source_workflow', 'last_seen_at'], unique=False)
    op.create_index('ix_incidents_tenant_id_status_last_seen_at', 'incidents', ['tenant_id', 'status', 'last_seen_at'], unique=False)
    op.create_index('ix_incidents_tenant_id_vendor_last_seen_at', 'incidents', ['tenant_id', 'vendor', 'last_seen_at'], unique=False)
    op.create_table('kill_switches',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('workflow', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('vendor', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('deactivated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deactivated_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_kill_switches_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kill_switches'))
    )
    op.create_index('ix_kill_switches_active_scope', 'kill_switches', ['tenant_id', 'workflow', 'vendor'], unique=False, postgresql_where=sa.text('active'))
    op.create_index('ix_kill_switches_tenant_id_created_at', 'kill_switches', ['tenant_id', 'created_at'], unique=False)
    op.create_table('vendors',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('settings', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_vendors_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vendors')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_vendors_tenant_id_name'))
    )
    op.create_table('workflows',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('callback_url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
    sa.Column('escalation_webhook_url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True),
    sa.Column('retry_policy', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_workflows_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflows')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_workflows_tenant_id_name'))
    )
    op.create_table('actions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('action_type', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='pending', nullable=False),
    sa.Column('parameters', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('is_reversible', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')", name=op.f('ck_actions_status')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_actions_incident_id_incidents')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_actions_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actions')),
    sa.UniqueConstraint('tenant_id', 'idempotency_key', name=op.f('uq_actions_tenant_id_idempotency_key'))
    )
    op.create_index('ix_actions_tenant_id_created_at', 'actions', ['tenant_id', 'created_at'], unique=False)
    op.create_index('ix_actions_tenant_id_incident_id_attempt', 'actions', ['tenant_id', 'incident_id', 'attempt'], unique=False)
    op.create_index('ix_actions_tenant_id_status_created_at', 'actions', ['tenant_id', 'status', 'created_at'], unique=False)
    op.create_table('decisions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('decision_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('decision_type', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('reasoning', sa.Text(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('ai_model', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('input_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('output', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_decisions_incident_id_incidents')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_decisions_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decisions')),
    sa.UniqueConstraint('incident_id', 'decision_key', name=op.f('uq_decisions_incident_id_decision_key'))
    )
    op.create_index('ix_decisions_tenant_id_created_at', 'decisions', ['tenant_id', 'created_at'], unique=False)
    op.create_index('ix_decisions_tenant_id_incident_id_created_at', 'decisions', ['tenant_id', 'incident_id', 'created_at'], unique=False)
    op.create_table('event_outbox',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('incident_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_outbox_event_id_events')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_event_outbox_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_outbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_event_outbox_event_id'))
    )
    op.create_index('ix_event_outbox_available_at_id', 'event_outbox', ['available_at', 'id'], unique=False)

    op.execute(REJECT_MUTATION)
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION awfdrs_reject_mutation()"
        )

def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute("DROP FUNCTION IF EXISTS awfdrs_reject_mutation()")
    op.drop_index('ix_event_outbox_available_at_id', table_name='event_outbox')
    op.drop_table('event_outbox')
    op.drop_index('ix_decisions_tenant_id_incident_id_created_at', table_name='decisions')
    op.drop_index('ix_decisions_tenant_id_created_at', table_name='decisions')
    op.drop_table('decisions')
    op.drop_index('ix_actions_tenant_id_status_created_at', table_name='actions')
    op.drop_index('ix_actions_tenant_id_incident_id_attempt', table_name='actions')
    op.drop_index('ix_actions_tenant_id_created_at', table_name='actions')
    op.drop_table('actions')
    op.drop_table('workflows')
    op.drop_table('vendors')
    op.drop_index('ix_kill_switches_tenant_id_created_at', table_name='kill_switches')
    op.drop_index('ix_kill_switches_active_scope', table_name='kill_switches', postgresql_where=sa.text('active'))
    op.drop_table('kill_switches')
    op.drop_index('ix_incidents_tenant_id_vendor_last_seen_at', table_name='incidents')
    op.drop_index('ix_incidents_tenant_id_status_last_seen_at', table_name='incidents')
    op.drop_index('ix_incidents_tenant_id_source_workflow_last_seen_at', table_name='incidents')
    op.drop_index('ix_incidents_tenant_id_signature', table_name='incidents')
    op.drop_index('ix_incidents_tenant_id_severity_last_seen_at', table_name='incidents')
    op.drop_index('ix_incidents_tenant_id_first_seen_at', table_name='incidents')
    op.drop_index('ix_incidents_tenant_id_error_code_last_seen_at', table_name='incidents')
    op.drop_table('incidents')
    op.drop_index('ix_events_tenant_id_workflow_occurred_at', table_name='events')
    op.drop_index('ix_events_tenant_id_occurred_at', table_name='events')
    op.drop_index('ix_events_tenant_id_incident_key_occurred_at', table_name='events')
    op.drop_index('ix_events_tenant_id_event_type_occurred_at', table_name='events')
    op.drop_index('ix_events_tenant_id_error_code_occurred_at', table_name='events')
    op.drop_table('events')
    op.drop_index(op.f('ix_api_keys_tenant_id'), table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_table('tenants')
