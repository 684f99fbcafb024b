"""open incidents by tenant, vendor and creation time (vendor incidents opened by count)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

Before a gate check, an incident naming a vendor counts the tenant's open incidents naming it
opened within the vendor's `degraded_after` window (activities/vendor_count.py); this partial
index holds only open incidents, so the count reads a handful of entries.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f('ix_incidents_open_by_vendor'),
        'incidents',
        ['tenant_id', 'vendor', 'created_at'],
        postgresql_where=sa.text('closed_at IS NULL'),
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_incidents_open_by_vendor'), table_name='incidents')
