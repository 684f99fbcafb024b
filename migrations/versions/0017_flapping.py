"""incidents may be flapping (a signature that keeps resolving and re-opening)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

A retry policy's `flap` setting: an incident whose signature resolved `reopens` times within
`within_s` before it opened is `flapping`, and remediation waits for a quiet period. Planning
counts those earlier incidents by tenant, signature and `closed_at`: the new index serves it.
Downgrade turns flapping incidents (and their transitions) into `waiting` so the older check
holds.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = (
    "'open', 'analyzing', 'remediating', 'waiting', 'paused', 'escalated', 'acknowledged', "
    "'resolved', 'killed', 'suppressed', 'below_threshold', 'awaiting_approval'"
)
INDEX = 'ix_incidents_tenant_id_signature_closed_at'


def upgrade() -> None:
    op.drop_constraint(op.f('ck_incidents_status'), 'incidents', type_='check')
    op.create_check_constraint(
        op.f('ck_incidents_status'), 'incidents', f"status IN ({STATUSES}, 'flapping')"
    )
    op.create_index(
        INDEX,
        'incidents',
        ['tenant_id', 'signature', 'closed_at'],
        unique=False,
        postgresql_where=sa.text('closed_at IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name='incidents', postgresql_where=sa.text('closed_at IS NOT NULL'))
    op.drop_constraint(op.f('ck_incidents_status'), 'incidents', type_='check')
    for table in ('incidents', 'incident_transitions'):
        op.execute(f"UPDATE {table} SET status = 'waiting' WHERE status = 'flapping'")
    op.create_check_constraint(op.f('ck_incidents_status'), 'incidents', f"status IN ({STATUSES})")
