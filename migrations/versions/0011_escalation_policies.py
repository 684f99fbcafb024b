"""escalation policies (typed responder targets) of a workflow and of a tenant, stored sealed

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

The policy's JSON holds PagerDuty routing keys, Opsgenie API keys and webhook URLs, so the
columns hold it encrypted by `SecretBox`. A workflow's levels come first, then the tenant's,
then rules/escalation.yaml; notification rules of all three apply.
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
    op.add_column('tenants', sa.Column('escalation_policy', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('tenants', 'escalation_policy')
    op.drop_column('workflows', 'escalation_policy')
