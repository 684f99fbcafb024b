"""escalation policies (typed responder targets): a workflow's, named ones, a tenant's; sealed

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

The policy's JSON holds PagerDuty routing keys, Opsgenie API keys and webhook URLs, so the
columns hold it encrypted by `SecretBox`. A workflow's own levels come first, then those of the
named policy it refers to, the tenant's, then rules/escalation.yaml; every rule applies.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


APP_ROLE = "awfdrs_app"


def upgrade() -> None:
    op.add_column('workflows', sa.Column('escalation_policy', sa.Text(), nullable=True))
    op.add_column('workflows', sa.Column('escalation_policy_name', sa.String(length=200), nullable=True))
    op.add_column('tenants', sa.Column('escalation_policy', sa.Text(), nullable=True))
    op.create_table(
        'escalation_policies',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('policy_encrypted', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_escalation_policies_tenant_id_tenants')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_escalation_policies')),
        sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_escalation_policies_tenant_id_name')),
    )
    # Operators replace and remove named policies (0007: a mutable table grants this itself).
    op.execute(f"GRANT UPDATE, DELETE ON escalation_policies TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_table('escalation_policies')
    op.drop_column('tenants', 'escalation_policy')
    op.drop_column('workflows', 'escalation_policy_name')
    op.drop_column('workflows', 'escalation_policy')
