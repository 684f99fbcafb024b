"""least-privilege application role

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Creates the NOLOGIN group role `awfdrs_app` (cluster-wide, once) and grants it what the API
and the worker need in this database, and nothing more: SELECT, INSERT, UPDATE and DELETE on
the mutable tables; SELECT and INSERT only on the append-only tables `events`, `decisions`
and `incident_transitions` and on their partitions; USAGE on the sequences. Never ownership,
TRUNCATE, TRIGGER or REFERENCES: a member of the role cannot disable the append-only triggers,
empty a table or change the schema. Migrations and `awfdrs retention` keep running as the
owner of the tables.

The application logs in as a member: `CREATE ROLE awfdrs_service LOGIN PASSWORD '…' IN ROLE
awfdrs_app` (`awfdrs migrate --ensure-app-login` does it for the role named in
AWFDRS_DATABASE_URL).

Tables the owner creates later get SELECT and INSERT by default privilege. That covers the
monthly partitions `awfdrs retention` adds (the application reads and writes them through
their parent, whose privileges are the ones checked), and it means a later migration that
adds a mutable table must `GRANT UPDATE, DELETE ON <table> TO awfdrs_app` itself.

Downgrade revokes every privilege given here; the role stays, since other databases of the
cluster may use it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"
APPEND_ONLY = ("events", "decisions", "incident_transitions")
READ_WRITE = "SELECT, INSERT, UPDATE, DELETE"
APPEND = "SELECT, INSERT"

# CREATE ROLE needs CREATEROLE: say what to do rather than fail with a bare "permission denied".
CREATE_GROUP_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            RAISE EXCEPTION 'role {APP_ROLE} does not exist and % may not create roles',
                current_user
                USING HINT = 'As an administrator run CREATE ROLE {APP_ROLE} NOLOGIN, '
                             'then migrate again';
        END IF;
        CREATE ROLE {APP_ROLE} NOLOGIN;
    END IF;
END
$$
"""
# Tables of the current schema, partitions included, with their partitioned root.
TABLES = """
SELECT quote_ident(c.relname), coalesce(pg_partition_root(c.oid), c.oid)::regclass::text
FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
  AND c.relname <> 'alembic_version'
"""


def _schema() -> str:
    return str(op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar())


def upgrade() -> None:
    op.execute(CREATE_GROUP_ROLE)
    schema = _schema()
    op.execute(f"GRANT USAGE ON SCHEMA {schema} TO {APP_ROLE}")
    for table, root in op.get_bind().execute(sa.text(TABLES)).all():
        privileges = APPEND if root in APPEND_ONLY else READ_WRITE
        op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {APP_ROLE}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {APPEND} ON TABLES TO {APP_ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}"
    )


def downgrade() -> None:
    schema = _schema()
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} REVOKE ALL ON SEQUENCES FROM {APP_ROLE}"
    )
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} REVOKE ALL ON TABLES FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA {schema} FROM {APP_ROLE}")
