"""Alembic migrations; `models.migrate` runs them programmatically."""
