"""maintenance windows, kill switch expiry, events held by a window

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

`maintenance_windows` holds, per tenant, one-off or recurring (RFC 5545 RRULE) windows whose
matching failure events are suppressed or held; ending one sets `ended_at`/`ended_by`, the row
stays. `kill_switches.expires_at` lets a switch lapse on its own. `events.remediation` gains
`held`: the event opened or joined an incident whose calls wait for the window's end.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"
REMEDIATION = "remediation IN ('normal', 'suppressed', 'deferred', 'held')"
REMEDIATION_0008 = "remediation IN ('normal', 'suppressed', 'deferred')"


def _text(name: str, length: int, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def _create_windows() -> None:
    op.create_table('maintenance_windows',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    _text('workflow', 200),
    _text('vendor', 200),
    _text('error_code', 200),
    _text('step', 200),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_s', sa.Integer(), nullable=True),
    _text('recurrence', 500, nullable=True),
    _text('mode', 16),
    _text('reason', 2000),
    _text('actor', 200),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
              nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    _text('ended_by', 200, nullable=True),
    sa.CheckConstraint("mode IN ('suppress', 'hold')", name=op.f('ck_maintenance_windows_mode')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                            name=op.f('fk_maintenance_windows_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_maintenance_windows'))
    )
    op.create_index('ix_maintenance_windows_live', 'maintenance_windows', ['tenant_id'],
                    unique=False, postgresql_where=sa.text('ended_at IS NULL'))
    op.create_index('ix_maintenance_windows_tenant_id_created_at', 'maintenance_windows',
                    ['tenant_id', 'created_at'], unique=False)


def upgrade() -> None:
    _create_windows()
    # Tables created after 0007 get SELECT and INSERT by default; like every table that is not
    # append-only, this one is mutable (ending a window updates it).
    op.execute(f"GRANT UPDATE, DELETE ON maintenance_windows TO {APP_ROLE}")
    op.add_column('kill_switches',
                  sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f('ck_events_remediation'), 'events', type_='check')
    op.create_check_constraint(op.f('ck_events_remediation'), 'events', sa.text(REMEDIATION))


def downgrade() -> None:
    # `events` is append-only: a database that stored `held` events cannot go back past 0011.
    op.drop_constraint(op.f('ck_events_remediation'), 'events', type_='check')
    op.create_check_constraint(op.f('ck_events_remediation'), 'events', sa.text(REMEDIATION_0008))
    op.drop_column('kill_switches', 'expires_at')
    op.drop_index('ix_maintenance_windows_tenant_id_created_at', table_name='maintenance_windows')
    op.drop_index('ix_maintenance_windows_live', table_name='maintenance_windows')
    op.drop_table('maintenance_windows')
