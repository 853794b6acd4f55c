"""The SQLite copy of the Postfix views: what Postfix reads on SQLite deployments (DESIGN.md §10).

Postfix runs as its own user and cannot read orgmail's database: a SQLite file in WAL mode opens
read-only for another user only while its `-shm` file exists, i.e. while orgmail runs. So orgmail keeps
a second, small SQLite file beside its database, in rollback-journal mode (readable by anyone allowed to
read the file), holding just the two lists of `postfix_domains` and `postfix_mailboxes`.

The copy is updated in place, in one transaction (never replaced by a rename: Postfix's processes keep
the file open and would go on reading the old one), right after every change to the lists (domain
verify and delete, mailbox create and delete), at `orgmail serve` start, and by `orgmail postfix-config`,
which creates it. Until it exists nothing maintains it: a deployment without Postfix pays nothing.
A crash mid-update leaves a hot journal that Postfix cannot roll back: its look-ups then fail
temporarily (4xx, the sender retries) until orgmail's next update rolls it back.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import URL, make_url

log = logging.getLogger("orgmail.postfix")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS domains (name TEXT PRIMARY KEY NOT NULL)",
    "CREATE TABLE IF NOT EXISTS mailboxes (address TEXT PRIMARY KEY NOT NULL)",
)
# What Postfix's sqlite: tables ask (Postfix folds the key to lower case; orgmail stores it so).
DOMAIN_QUERY = "SELECT name FROM domains WHERE name = '%s'"
MAILBOX_QUERY = "SELECT address FROM mailboxes WHERE address = '%s'"


def copy_path(database: Path) -> Path:
    """Where the copy of the database file `database` lives: beside it (`orgmail.db` → `orgmail-postfix.sqlite`)."""
    return database.with_name(f"{database.stem}-postfix.sqlite")


def sqlite_database(database_url: str | URL) -> Path | None:
    """The SQLite database file a URL names (None for PostgreSQL or an in-memory database)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


def rebuild(database: Path, *, create: bool) -> Path | None:
    """Make the copy hold what the views hold now; the copy's path, or None when there is none to keep
    (no copy yet and `create` false)."""
    target = copy_path(database)
    if not create and not target.exists():
        return None
    if not database.exists():  # sqlite3.connect would create an empty database and the views would be missing
        raise FileNotFoundError(f"no database at {database}")
    with closing(sqlite3.connect(target, isolation_level=None, timeout=30)) as copy:
        copy.execute("PRAGMA journal_mode=DELETE")  # WAL readers need write access: Postfix has none
        for statement in _SCHEMA:
            copy.execute(statement)
        # The copy's write lock comes before reading the views, so that of two concurrent updates the
        # one that writes last also read last: the copy never goes back to an older state.
        copy.execute("BEGIN IMMEDIATE")
        try:
            with closing(sqlite3.connect(database, timeout=30)) as source:
                domains = source.execute("SELECT name FROM postfix_domains").fetchall()
                mailboxes = source.execute("SELECT address FROM postfix_mailboxes").fetchall()
            copy.execute("DELETE FROM domains")
            copy.executemany("INSERT INTO domains (name) VALUES (?)", domains)
            copy.execute("DELETE FROM mailboxes")
            copy.executemany("INSERT INTO mailboxes (address) VALUES (?)", mailboxes)
            copy.execute("COMMIT")
        except BaseException:
            copy.execute("ROLLBACK")
            raise
    return target


async def refresh(database_url: str | URL) -> None:
    """After a committed change to domains or mailboxes: update the copy, if this database has one.

    Never raises: the change is committed already; a copy left behind is logged, and the next change
    or start puts it right.
    """
    database = sqlite_database(database_url)
    if database is None or not copy_path(database).exists():
        return  # PostgreSQL (Postfix queries the views themselves), or no Postfix set up
    try:
        await asyncio.to_thread(rebuild, database, create=False)
    except (OSError, sqlite3.Error) as error:
        log.error("the Postfix copy %s is out of date (%s): run `orgmail postfix-config`", copy_path(database), error)
