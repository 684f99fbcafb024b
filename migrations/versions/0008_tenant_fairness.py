"""per-tenant fairness caps: open incidents, new incidents per minute, concurrent callbacks

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

Tenants may override the global caps (NULL: the setting applies). Events above a cap are stored
with `remediation = 'deferred'`; their incident starts once the tenant is back under the cap.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REMEDIATION = "remediation IN ('normal', 'suppressed', 'deferred')"
REMEDIATION_0001 = "remediation IN ('normal', 'suppressed')"
CAPS = ("max_open_incidents", "max_new_incidents_per_minute", "max_concurrent_callbacks")


def upgrade() -> None:
    for column in CAPS:
        op.add_column('tenants', sa.Column(column, sa.Integer(), nullable=True))
    op.drop_constraint(op.f('ck_events_remediation'), 'events', type_='check')
    op.create_check_constraint(op.f('ck_events_remediation'), 'events', sa.text(REMEDIATION))
    # How many incidents a tenant opened in the last minute (the dispatcher asks every pass).
    op.create_index('ix_incidents_tenant_id_created_at', 'incidents', ['tenant_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_incidents_tenant_id_created_at', table_name='incidents')
    op.drop_constraint(op.f('ck_events_remediation'), 'events', type_='check')
    op.create_check_constraint(op.f('ck_events_remediation'), 'events', sa.text(REMEDIATION_0001))
    for column in reversed(CAPS):
        op.drop_column('tenants', column)
