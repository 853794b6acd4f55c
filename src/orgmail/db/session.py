"""The async engine and session factory, for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def create_engine(database_url: str) -> AsyncEngine:
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            # WAL lets readers (Dovecot included) run beside our writer; FKs are off by default in SQLite.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # pre_ping: after a database restart the pool hands out a fresh connection instead of a dead one.
    # Short connect and pool timeouts: an outage answers 503 in seconds instead of hanging clients.
    return create_async_engine(
        database_url, pool_size=10, max_overflow=10, pool_pre_ping=True, pool_recycle=1800,
        pool_timeout=10, connect_args={"timeout": 5},
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _alembic_config(database_url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Run Alembic migrations up to `revision` (blocking; call before the event loop serves)."""
    from alembic import command

    command.upgrade(_alembic_config(database_url), revision)
