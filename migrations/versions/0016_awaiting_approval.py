"""incidents may be awaiting_approval (an approval gate holds the next callback)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

`awaiting_approval` is longer than the 16 characters a status had: incidents and their
transitions take 32. Downgrade turns incidents awaiting approval into `waiting` (and their
transitions likewise) so the older check and width hold.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = (
    "'open', 'analyzing', 'remediating', 'waiting', 'paused', 'escalated', 'acknowledged', "
    "'resolved', 'killed', 'suppressed', 'below_threshold'"
)


def _width(length: int) -> None:
    for table in ('incidents', 'incident_transitions'):
        op.alter_column(table, 'status', type_=sa.String(length=length), existing_nullable=False)


def upgrade() -> None:
    _width(32)
    op.drop_constraint(op.f('ck_incidents_status'), 'incidents', type_='check')
    op.create_check_constraint(
        op.f('ck_incidents_status'), 'incidents', f"status IN ({STATUSES}, 'awaiting_approval')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f('ck_incidents_status'), 'incidents', type_='check')
    for table in ('incidents', 'incident_transitions'):
        op.execute(f"UPDATE {table} SET status = 'waiting' WHERE status = 'awaiting_approval'")
    _width(16)
    op.create_check_constraint(op.f('ck_incidents_status'), 'incidents', f"status IN ({STATUSES})")
