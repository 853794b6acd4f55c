"""Migrations run on SQLite and PostgreSQL, and carry data forward (not just the schema)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from orgmail.db.session import upgrade_database
from orgmail.db.tables import Base
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_admin


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
        return
    name = f"orgmail_mig_{uuid.uuid4().hex[:10]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_0003_lowercases_suppressions_and_keeps_the_oldest_spelling(empty_database):
    upgrade_database(empty_database, "0002")
    engine = create_async_engine(empty_database)
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO orgs (id, name, created_at) VALUES ('org_1', 'A', CURRENT_TIMESTAMP)")
        )
        for sup_id, email in [("sup_1", "Foo@x.example"), ("sup_2", "foo@x.example"), ("sup_3", "Bar@x.example")]:
            await connection.execute(
                text(
                    "INSERT INTO suppressions (id, org_id, email, reason, created_at) "
                    "VALUES (:id, 'org_1', :email, 'manual', CURRENT_TIMESTAMP)"
                ),
                {"id": sup_id, "email": email},
            )
    upgrade_database(empty_database)
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT id, email FROM suppressions ORDER BY id"))).all()
    await engine.dispose()
    assert [tuple(r) for r in rows] == [("sup_1", "foo@x.example"), ("sup_3", "bar@x.example")]


async def test_migrated_schema_matches_the_tables(empty_database):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade_database(empty_database)
    engine = create_async_engine(empty_database)
    async with engine.connect() as connection:
        diff = await connection.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    await engine.dispose()
    assert diff == []
