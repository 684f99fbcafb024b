"""a workflow's own escalation policy (typed responder targets), stored sealed

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

The policy's JSON holds PagerDuty routing keys, Opsgenie API keys and webhook URLs, so the
column holds it encrypted by `SecretBox` (NULL: the default policy of rules/escalation.yaml).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('workflows', sa.Column('escalation_policy', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('workflows', 'escalation_policy')
