"""Persistence: SQLAlchemy tables, the async engine, Alembic migrations."""
