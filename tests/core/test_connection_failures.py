"""What counts as the database being unreachable (an outage: 503 now, a retry later) and what is a
refused statement, on real connection attempts: a host name that does not resolve is an outage, as a
refused port is; a statement the server rejects is not."""

from __future__ import annotations

import errno
import socket

import asyncpg
import pytest
from sqlalchemy import text

from orgmail.db.session import create_engine, is_connection_failure
from tests.processes import free_port


async def _failure_of(attempt) -> BaseException:
    with pytest.raises(Exception) as raised:
        await attempt
    return raised.value


async def test_a_database_host_that_does_not_resolve_is_an_outage():
    failure = await _failure_of(asyncpg.connect("postgresql://orgmail@orgmail-database.invalid/orgmail", timeout=10))
    assert is_connection_failure(failure), repr(failure)


async def test_a_database_host_that_does_not_resolve_is_an_outage_through_sqlalchemy():
    engine = create_engine("postgresql+asyncpg://orgmail@orgmail-database.invalid/orgmail")
    try:
        failure = await _failure_of(engine.connect().start())
    finally:
        await engine.dispose()
    assert is_connection_failure(failure), repr(failure)


@pytest.mark.parametrize(
    "raised",
    [
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),  # the resolver is down
        OSError(errno.EHOSTUNREACH, "No route to host"),
        OSError(errno.ENETUNREACH, "Network is unreachable"),
    ],
)
def test_no_name_or_no_route_is_an_outage_however_it_is_wrapped(raised):
    """As the kernel and resolver report them (a real attempt above gives one of them, whichever this
    machine's resolver answers); also as the cause of what a driver raises instead."""
    assert is_connection_failure(raised)
    wrapper = RuntimeError("connect failed")
    wrapper.__cause__ = raised
    assert is_connection_failure(wrapper)
    assert not is_connection_failure(OSError(errno.EACCES, "Permission denied"))


async def test_a_refused_port_is_an_outage():
    failure = await _failure_of(asyncpg.connect(f"postgresql://orgmail@127.0.0.1:{free_port()}/orgmail", timeout=10))
    assert is_connection_failure(failure), repr(failure)


async def test_a_statement_the_database_refuses_is_not_an_outage(database_url):
    if database_url.startswith("sqlite"):
        pytest.skip(
            "SQLite raises one OperationalError for a refused statement and a locked file: both count as transient"
        )
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            failure = await _failure_of(connection.execute(text("SELECT * FROM no_such_table")))
    finally:
        await engine.dispose()
    assert not is_connection_failure(failure), repr(failure)
