"""incidents may end below_threshold (a retry policy's open_after was not reached)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

A retry policy's `open_after: {count, within_s}` holds remediation until enough failures
arrive; an incident that never gets there closes `below_threshold`. Downgrade turns those
incidents into `suppressed` (closed, nothing called) so the older check holds.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INCIDENT_STATUSES = (
    "'open', 'analyzing', 'remediating', 'waiting', 'paused', 'escalated', 'acknowledged', "
    "'resolved', 'killed', 'suppressed'"
)


def upgrade() -> None:
    op.drop_constraint(op.f('ck_incidents_status'), 'incidents', type_='check')
    op.create_check_constraint(
        op.f('ck_incidents_status'),
        'incidents',
        f"status IN ({INCIDENT_STATUSES}, 'below_threshold')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f('ck_incidents_status'), 'incidents', type_='check')
    op.execute("UPDATE incidents SET status = 'suppressed' WHERE status = 'below_threshold'")
    op.create_check_constraint(
        op.f('ck_incidents_status'), 'incidents', f"status IN ({INCIDENT_STATUSES})"
    )
