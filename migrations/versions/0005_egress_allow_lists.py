"""per-tenant egress allow-lists

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

One row per tenant that an admin gave its own egress entries: hosts (`host`, `*.suffix`,
`host:port`, `http://host`) and internal networks (CIDRs) its callbacks and webhooks may reach
beyond the global allow-list. Both are checked by the egress guard at registration and before
every call. Created before 0007, whose grants give the application role read and write on it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tenant_egress',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('hosts', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('networks', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tenant_egress_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_tenant_egress'))
    )


def downgrade() -> None:
    op.drop_table('tenant_egress')
