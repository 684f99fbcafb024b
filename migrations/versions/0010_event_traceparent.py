"""events.traceparent: the W3C trace context of the request that reported the event

Revision ID: 0010
Revises: 0009_responders
Create Date: 2026-12-07

Nullable: tracing is off by default, and events stored before this revision have none. The
dispatcher continues this trace when it delivers the event to its incident.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009_responders'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On the partitioned parent: every monthly partition gains the column too.
    op.add_column('events', sa.Column('traceparent', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('events', 'traceparent')
