"""A database of a test module's own, on the session's backend: for tests whose queue no other
app (and no other app's background worker) may share."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from orgmail.db.session import upgrade_database
from tests.conftest import _postgres_admin


@asynccontextmanager
async def fresh_database(database_url: str, folder: Path, prefix: str) -> AsyncIterator[str]:
    """A migrated SQLite file in `folder`, or a PostgreSQL database beside `database_url`'s (dropped after)."""
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{folder / f'{prefix}.db'}"
        upgrade_database(url)
        yield url
        return
    name = f"orgmail_{prefix}_{uuid.uuid4().hex[:10]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    url = f"{database_url.rsplit('/', 1)[0]}/{name}"
    try:
        upgrade_database(url)
        yield url
    finally:
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
