"""workflow mode (live | dry_run); actions may end skipped_dry_run

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

A dry-run workflow runs its whole lifecycle, but each callback and page is recorded as an
action `skipped_dry_run` holding what would have been sent, and nothing is called. Downgrade
turns those actions into `cancelled` (nothing was sent) so the older check holds.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTION_STATUSES = "'pending', 'running', 'succeeded', 'failed', 'cancelled'"


def upgrade() -> None:
    op.add_column(
        'workflows',
        sa.Column('mode', sa.String(length=16), server_default='live', nullable=False),
    )
    op.create_check_constraint(
        op.f('ck_workflows_mode'), 'workflows', "mode IN ('live', 'dry_run')"
    )
    op.drop_constraint(op.f('ck_actions_status'), 'actions', type_='check')
    op.create_check_constraint(
        op.f('ck_actions_status'),
        'actions',
        f"status IN ({ACTION_STATUSES}, 'skipped_dry_run')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f('ck_actions_status'), 'actions', type_='check')
    op.execute("UPDATE actions SET status = 'cancelled' WHERE status = 'skipped_dry_run'")
    op.create_check_constraint(
        op.f('ck_actions_status'), 'actions', f"status IN ({ACTION_STATUSES})"
    )
    op.drop_constraint(op.f('ck_workflows_mode'), 'workflows', type_='check')
    op.drop_column('workflows', 'mode')
