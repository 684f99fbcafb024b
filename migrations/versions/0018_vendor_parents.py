"""incidents may be held by a vendor incident (parent_incident_id)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

A vendor incident (`VendorIncidentWorkflow`, workflow id `vendor:{tenant}:{vendor}`) has an
incidents row of its own; each incident it holds names it in `parent_incident_id`. The index
answers "which incidents does this vendor incident hold" per tenant.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'incidents', sa.Column('parent_incident_id', postgresql.UUID(as_uuid=True), nullable=True)
    )
    op.create_index(
        op.f('ix_incidents_tenant_id_parent_incident_id'),
        'incidents',
        ['tenant_id', 'parent_incident_id'],
        postgresql_where=sa.text('parent_incident_id IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_incidents_tenant_id_parent_incident_id'), table_name='incidents')
    op.drop_column('incidents', 'parent_incident_id')
