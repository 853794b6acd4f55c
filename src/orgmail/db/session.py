"""The async engine and session factory, for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def create_engine(database_url: str, **options) -> AsyncEngine:
    """`options` go to SQLAlchemy's create_async_engine (e.g. isolation_level="AUTOCOMMIT")."""
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": 30}, **options)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            # WAL lets readers (Dovecot included) run beside our writer; FKs are off by default in SQLite.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # No pre-ping: with asyncpg it is three round trips (BEGIN, a query, ROLLBACK) on every checkout,
    # a third of a send's database time. A database restart costs instead at most the request that
    # meets a dead connection (503 `unavailable`): the disconnect error invalidates the whole pool,
    # so the next checkouts open fresh connections.
    # Short connect and pool timeouts: an outage answers 503 in seconds instead of hanging clients.
    return create_async_engine(
        database_url,
        pool_size=10,
        max_overflow=10,
        pool_recycle=1800,
        pool_timeout=10,
        connect_args={"timeout": 5},
        **options,
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def is_connection_failure(exc: BaseException) -> bool:
    """The database cannot be reached or dropped the connection (not a refused statement): worth a
    retry later, and a 503 now. Covers SQLAlchemy's wrapped errors and asyncpg's own (the send log's
    hot path runs on asyncpg directly)."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):  # refused, reset, or a pool/connect timeout
        return True
    return isinstance(
        exc,
        (
            asyncpg.PostgresConnectionError,  # the connection broke mid-statement
            asyncpg.exceptions.OperatorInterventionError,  # the server is shutting down or starting up
            asyncpg.TooManyConnectionsError,
            asyncpg.exceptions.ConnectionDoesNotExistError,
        ),
    ) or (isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc))


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
