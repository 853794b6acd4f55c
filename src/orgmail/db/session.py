"""The async engine and session factory, for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any, cast

import asyncpg
from sqlalchemy import CursorResult, Result, event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
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


def affected_rows(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE changed (its result is a CursorResult, typed as any Result)."""
    return cast(CursorResult[Any], result).rowcount or 0


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


# The exception types a lost or unreachable database raises, for an exception handler to catch:
# `is_connection_failure` then tells an outage from other errors of the same types.
CONNECTION_FAILURE_TYPES: tuple[type[Exception], ...] = (
    DBAPIError,  # OperationalError and InterfaceError among them
    SQLAlchemyTimeoutError,  # no connection free in the pool within its timeout
    OSError,  # ConnectionError and TimeoutError among them
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


def is_connection_failure(exc: BaseException) -> bool:
    """The database cannot be reached or dropped the connection (not a refused statement): worth a
    retry later, and a 503 now. Covers SQLAlchemy's wrapped errors and asyncpg's own (the send log's
    hot path runs on asyncpg directly).

    SQLAlchemy wraps what asyncpg raises while connecting in its generic DBAPIError ("the database
    system is starting up" is no OperationalError there), so the chain of causes is read too.
    """
    for cause in _causes(exc):
        if isinstance(cause, (OperationalError, InterfaceError)):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, (ConnectionError, TimeoutError, SQLAlchemyTimeoutError)):  # refused, reset, timed out
            return True
        if isinstance(cause, socket.gaierror) or (isinstance(cause, OSError) and cause.errno in _NO_ROUTE):
            return True  # the host's name does not resolve (now), or there is no route to it
        if isinstance(cause, _ASYNCPG_CONNECTION_FAILURES):
            return True
        if isinstance(cause, asyncpg.InterfaceError) and "connection is closed" in str(cause):
            return True
    return False


_NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN})
_ASYNCPG_CONNECTION_FAILURES = (
    asyncpg.PostgresConnectionError,  # the connection broke mid-statement
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up (CannotConnectNowError)
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    # A connection the server dropped mid-statement can leave asyncpg's protocol in a state it reports
    # as "cannot switch to state …; another operation is in progress": the connection is gone too.
    asyncpg.InternalClientError,
)


def _causes(exc: BaseException, depth: int = 5) -> list[BaseException]:
    """`exc`, what it wraps (SQLAlchemy's `.orig`) and what caused it, a few levels down."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < depth and current not in found:
        found.append(current)
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return found


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


def asyncpg_dsn(engine: AsyncEngine) -> str:
    """The PostgreSQL engine's URL as asyncpg takes it (for the pools that run on asyncpg directly)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _nothing_to_reset(_connection) -> None:
    """Pool connections carry no session state (no SET, LISTEN or advisory locks), so the default
    reset (one more round trip per release) has nothing to do. asyncpg still rolls back a
    transaction left open, e.g. by a cancelled request."""


async def connect_pool(
    dsn: str, *, name: str, max_size: int, connect_timeout: float = 5.0, command_timeout: float | None = None
) -> asyncpg.Pool:
    """A pool that opens its connections when first needed: the service starts, and answers 503,
    while the database is down. Its connections are named `name` (`application_name`), so
    `pg_stat_activity` tells whose they are; `command_timeout` bounds each statement (TimeoutError)."""
    pool = asyncpg.create_pool(
        dsn,
        server_settings={"application_name": name},
        command_timeout=command_timeout,
        min_size=0,
        max_size=max_size,
        max_inactive_connection_lifetime=300,
        reset=_nothing_to_reset,
        timeout=connect_timeout,
    )
    await pool  # with min_size=0 this opens no connection yet
    return pool
