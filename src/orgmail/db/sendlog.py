"""The send log's hot path: the statements a send runs, behind one small interface, two implementations.

Every send reads the suppression list, INSERTs its `queued` row and UPDATEs it with the outcome (and,
with an idempotency key, looks the key up first). Through the SQLAlchemy ORM each of those statements
costs several times what it costs straight on asyncpg with its prepared-statement cache, and at
hundreds of sends per second that difference is a large share of a core (the README's Performance
section has the figures), so:

- `PostgresSendLog` runs them on asyncpg directly, on a small pool of its own, and runs the
  suppression checks, INSERTs and outcome UPDATEs of concurrent sends together (`Batcher`);
- `SqlAlchemySendLog` runs the same statements as SQLAlchemy Core (SQLite, the embedded default).

Both take and return `SendLogRow`s, plain objects that never join an ORM session. The same tests run
on both databases, so the two stay in step.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, cast

import asyncpg
from sqlalchemy import Column, Table, bindparam, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orgmail.db.session import asyncpg_dsn, connect_pool
from orgmail.db.tables import Message, MessageEvent, Suppression, utcnow
from orgmail.ids import new_id


@dataclass(slots=True)
class SendLogRow:
    """One row of `messages`, as the send path reads and writes it."""

    id: str
    org_id: str
    from_address: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    reply_to: list[str]
    subject: str
    status: str
    message_id: str
    domain: str
    dkim_selector: str | None
    suppressed_recipients: list[str]
    rejected_recipients: list[dict[str, Any]]
    tags: dict[str, str]
    size_bytes: int
    relay_response: str | None
    error_code: str | None
    error_message: str | None
    idempotency_key: str | None
    request_hash: str | None
    raw: bytes | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    last_event: str | None = None
    source: str = "api"  # "smtp" for a message that came in over submission (DESIGN.md §10)


@dataclass(frozen=True, slots=True)
class EventRow:
    """One row of `message_events`: something that happened to a message (DESIGN.md §9)."""

    id: str
    org_id: str
    message_id: str
    type: str
    recipient: str | None = None
    bounce_type: str | None = None
    smtp_status: str | None = None
    diagnostic: str | None = None
    report_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)


_MESSAGES = cast(Table, Message.__table__)
_SUPPRESSIONS = cast(Table, Suppression.__table__)
_EVENTS = cast(Table, MessageEvent.__table__)
EVENT_COLUMNS = tuple(f.name for f in fields(EventRow))
assert set(EVENT_COLUMNS) == {c.key for c in _EVENTS.columns}, "EventRow must mirror the message_events table"
COLUMNS = tuple(f.name for f in fields(SendLogRow))
JSON_COLUMNS = frozenset({"to", "cc", "bcc", "reply_to", "suppressed_recipients", "rejected_recipients", "tags"})
assert set(COLUMNS) == {c.key for c in _MESSAGES.columns}, "SendLogRow must mirror the messages table"


class SendLog(Protocol):
    async def find(self, *, org_id: str, idempotency_key: str) -> SendLogRow | None:
        """The org's row with this idempotency key, if any."""

    async def find_by_message_id(self, *, org_id: str, message_id: str, since: datetime) -> SendLogRow | None:
        """The org's oldest row since `since` with this Message-ID header (an SMTP resubmission's)."""

    async def get(self, row_id: str) -> SendLogRow | None: ...

    async def suppressed_among(self, *, org_id: str, emails: Iterable[str]) -> set[str]:
        """The given addresses (as given) that the org suppresses, matched case-insensitively."""

    async def insert(self, row: SendLogRow, *, events: Sequence[EventRow] = ()) -> bool:
        """Write a new row (with `events`, atomically, queued for webhooks); False (and nothing
        written) if the org already has its idempotency key."""

    async def update(
        self, row_id: str, values: Mapping[str, Any], *, if_status: str | None = None, events: Sequence[EventRow] = ()
    ) -> bool:
        """Set `values` on the row (only while its status is `if_status`, if given): did it change?
        `events` are written with the change, atomically, and queued for the org's webhooks that want
        them; events already written (the same ids: an outcome written again) are not written twice."""

    async def record_bounces(
        self,
        row_id: str,
        values: Mapping[str, Any],
        *,
        org_id: str,
        emails: list[str],
        note: str,
        events: Sequence[EventRow] = (),
    ) -> None:
        """The row's outcome, its events and a `bounce` suppression per address, in one transaction."""

    async def fail_queued_before(
        self, cutoff: datetime, values: Mapping[str, Any], *, event: Callable[[str, str], EventRow]
    ) -> int:
        """Set `values` on every row still `queued` since before `cutoff`, each with the event that
        `event(row id, org id)` makes; how many were."""

    async def close(self) -> None: ...


def suppression_rows(org_id: str, emails: Iterable[str], *, reason: str, note: str | None) -> list[dict[str, Any]]:
    """One `suppressions` row per address, lower-cased and each once."""
    now = utcnow()
    return [
        dict(id=new_id("sup"), org_id=org_id, email=email, reason=reason, note=note, created_at=now)
        for email in dict.fromkeys(e.lower() for e in emails)
    ]


def suppressions_insert(dialect_name: str, rows: list[dict[str, Any]]):
    """Insert-or-ignore, safe under concurrent sends that bounce on the same address (SQLAlchemy)."""
    insert = pg_insert if dialect_name == "postgresql" else sqlite_insert
    return insert(_SUPPRESSIONS).values(rows).on_conflict_do_nothing(index_elements=["org_id", "email"])


async def add_suppressions(
    connection: AsyncConnection, *, org_id: str, emails: Iterable[str], reason: str, note: str | None = None
) -> int:
    """Insert-or-ignore the org's suppressions, and queue `suppression.created` for the new ones (their
    event id is the suppression's: `sup_X` → `evt_X`), in the caller's transaction; how many were new.
    The one way suppressions are added: by hand, by a refusal at send time, by a report."""
    rows = suppression_rows(org_id, emails, reason=reason, note=note)
    if not rows:
        return 0
    statement = suppressions_insert(connection.dialect.name, rows).returning(_SUPPRESSIONS.c.id)
    new_ids = list((await connection.execute(statement)).scalars())
    if new_ids:
        await connection.execute(_QUEUE_NEW_SUPPRESSIONS[connection.dialect.name], {"ids": new_ids})
    return len(new_ids)


# Queues each new event for the org's enabled webhooks that want it (none listed: every type), in the
# statement or transaction that writes the event: a send pays no extra round trip for its webhooks.
# A job already queued is left alone: writing an outcome again (after a lost commit reply) queues nothing twice.
_WANTS_EVENT = {
    "postgresql": "EXISTS (SELECT 1 FROM json_array_elements_text(w.events) AS t(type) WHERE t.type = {event_type})",
    "sqlite": "EXISTS (SELECT 1 FROM json_each(w.events) WHERE json_each.value = {event_type})",
}
_MESSAGE_EVENT = ("e.id", "'message.' || e.type")  # (event id, event type) of a message_events row
_SUPPRESSION_CREATED = ("'evt_' || substr(e.id, 5)", "'suppression.created'")  # of a suppressions row


def _queue_for_webhooks(dialect_name: str, source: str, kind: tuple[str, str] = _MESSAGE_EVENT) -> str:
    """INSERT of one webhook job per (row of `source`, webhook of its org that wants its event)."""
    event_id, event_type = kind
    wants = _WANTS_EVENT[dialect_name].format(event_type=event_type)
    return (
        "INSERT INTO webhook_jobs (event_id, webhook_id, org_id, event_type, attempts, next_attempt_at, created_at) "
        f"SELECT {event_id}, w.id, e.org_id, {event_type}, 0, e.created_at, e.created_at "
        f"FROM {source} AS e JOIN webhooks AS w ON w.org_id = e.org_id "
        f"WHERE w.enabled AND (json_array_length(w.events) = 0 OR {wants}) "
        "ON CONFLICT (event_id, webhook_id) DO NOTHING"
    )


def _queue_listed(dialect_name: str, source: str, kind: tuple[str, str] = _MESSAGE_EVENT):
    """`_queue_for_webhooks` for the rows of `source` whose ids are in the parameter `ids`."""
    where = " AND e.id = ANY(:ids)" if dialect_name == "postgresql" else " AND e.id IN :ids"
    statement = _queue_for_webhooks(dialect_name, source, kind).replace(" ON CONFLICT", where + " ON CONFLICT")
    expanding = dialect_name != "postgresql"
    return text(statement).bindparams(bindparam("ids", expanding=expanding))


_QUEUE_LISTED_EVENTS = {name: _queue_listed(name, "message_events") for name in ("postgresql", "sqlite")}
_QUEUE_NEW_SUPPRESSIONS = {
    name: _queue_listed(name, "suppressions", _SUPPRESSION_CREATED) for name in ("postgresql", "sqlite")
}


# Built once (on the send path: every outcome writes its events), values bound at execution.
_INSERT_EVENTS = {
    "postgresql": pg_insert(_EVENTS).on_conflict_do_nothing(index_elements=["id"]),
    "sqlite": sqlite_insert(_EVENTS).on_conflict_do_nothing(index_elements=["id"]),
}


async def write_events(connection: AsyncConnection, events: Sequence[EventRow]) -> None:
    """The events and their webhook jobs, through SQLAlchemy, in the caller's transaction; an event
    already written (same id) is skipped, so an outcome written twice has its events once."""
    if not events:
        return
    await connection.execute(_INSERT_EVENTS[connection.dialect.name], [asdict(event) for event in events])
    await connection.execute(_QUEUE_LISTED_EVENTS[connection.dialect.name], {"ids": [event.id for event in events]})


def _matching(given: Iterable[str], found: Iterable[str]) -> set[str]:
    lowered = set(found)
    return {email for email in given if email.lower() in lowered}


# --- group commit --------------------------------------------------------------------------------
Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Statements that arrive while one is in flight go out together in the next (group commit).

    Under load a worker has dozens of sends between two database round trips; writing their rows
    in one statement and one commit costs both PostgreSQL and this process a fraction of what one
    statement per row does (figures in the README's Performance section). An idle service gains
    nothing and waits for nothing: a lone statement goes out on the next turn of the event loop
    (unless `linger_seconds` has each batch wait that long for company).

    `write_many` takes a batch and returns one result per item. If a batch fails, each of its
    items is written again on its own, so one bad row fails only its own send.
    """

    def __init__(
        self,
        write_many: Callable[[list[Item]], Awaitable[Sequence[Result]]],
        *,
        max_batch: int = 100,
        key: Callable[[Item], object] = id,
        linger_seconds: float = 0.0,
    ):
        self._write_many = write_many
        self._max_batch = max_batch
        self._linger = linger_seconds  # how long each batch short of full waits for company
        self._key = key  # two items with one key never share a batch (two UPDATEs of one row)
        self._queue: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._writer: asyncio.Task | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())
        return await future

    def _next_batch(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        keys: set[object] = set()
        while self._queue and len(batch) < self._max_batch and self._key(self._queue[0][0]) not in keys:
            keys.add(self._key(self._queue[0][0]))
            batch.append(self._queue.popleft())
        return batch

    async def _drain(self) -> None:
        try:
            while self._queue:
                if self._linger and len(self._queue) < self._max_batch:
                    await asyncio.sleep(self._linger)
                batch = self._next_batch()
                try:
                    await self._write_batch(batch)
                except BaseException:  # cancelled with the event loop: nobody may wait forever
                    for _item, future in batch:
                        future.cancel()
                    raise
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        if len(batch) == 1:
            await self._write_alone(*batch[0])
            return
        try:
            results = await self._write_many([item for item, _ in batch])
        except Exception:
            # One bad row must not fail the others: each is tried again on its own.
            await asyncio.gather(*(self._write_alone(item, future) for item, future in batch))
            return
        for (_item, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _write_alone(self, item: Item, future: asyncio.Future[Result]) -> None:
        try:
            (result,) = await self._write_many([item])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)


# --- PostgreSQL: asyncpg -------------------------------------------------------------------------
def quoted(name: str) -> str:
    return f'"{name}"'  # "to" is a reserved word


# Array types for unnest(): without lengths, so that a value too long for its column is refused by
# the INSERT instead of cut short by the cast (an explicit cast to varchar(n) truncates).
_PG_ARRAY_TYPES = {
    "VARCHAR": "text[]",
    "TEXT": "text[]",
    "JSON": "json[]",
    "INTEGER": "int[]",
    "BYTEA": "bytea[]",
    "TIMESTAMP WITH TIME ZONE": "timestamptz[]",
}


def pg_array_type(column: Column[Any]) -> str:
    """The array type a column's values are sent as to unnest()."""
    declared = column.type.compile(dialect=postgresql.dialect())
    return _PG_ARRAY_TYPES[declared.split("(")[0]]


_PG_ARRAY_TYPE = {name: pg_array_type(_MESSAGES.c[name]) for name in COLUMNS}


_PG_COLUMN_LIST = ", ".join(quoted(c) for c in COLUMNS)
_PG_INSERT_MANY = (
    f"INSERT INTO messages ({_PG_COLUMN_LIST}) "
    f"SELECT * FROM unnest({', '.join(f'${i}::{_PG_ARRAY_TYPE[c]}' for i, c in enumerate(COLUMNS, start=1))}) "
    "ON CONFLICT (org_id, idempotency_key) DO NOTHING RETURNING id"
)
_PG_SELECT = f"SELECT {_PG_COLUMN_LIST} FROM messages"
_PG_SUPPRESSED_MANY = (
    "SELECT s.org_id, s.email FROM suppressions AS s "
    "JOIN unnest($1::text[], $2::text[]) AS q(org_id, email) ON s.org_id = q.org_id AND s.email = q.email"
)
_PG_SUPPRESS = (  # the new ones queued as suppression.created, as `add_suppressions` does
    "WITH e AS (INSERT INTO suppressions (id, org_id, email, reason, note, created_at) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) "
    "ON CONFLICT (org_id, email) DO NOTHING RETURNING id, org_id, created_at), "
    f"jobs AS ({_queue_for_webhooks('postgresql', 'e', _SUPPRESSION_CREATED)}) "
    "SELECT count(*) FROM e"
)


def _pg_update_many(names: tuple[str, ...], *, with_events: bool = False) -> str:
    """UPDATE of `names` for many rows at once: ids and new values as parallel arrays; `with_events`:
    the rows' new events (and their webhook jobs) in the same statement, as the arrays that follow."""
    sources = ", ".join(
        f"${i}::{kind}" for i, kind in enumerate(["text[]", *(_PG_ARRAY_TYPE[n] for n in names)], start=1)
    )
    update = (
        f"UPDATE messages AS m SET {', '.join(f'{quoted(n)} = v.{quoted(n)}' for n in names)} "
        f"FROM unnest({sources}) AS v(id, {', '.join(quoted(n) for n in names)}) "
        "WHERE m.id = v.id RETURNING m.id"
    )
    if not with_events:
        return update
    return f"WITH updated AS ({update}), {_pg_new_events(first=len(names) + 2)} SELECT id FROM updated"


# message_events' columns as arrays for unnest(), in EventRow's order
_PG_EVENT_ARRAY_TYPES = ["timestamptz[]" if name == "created_at" else "text[]" for name in EVENT_COLUMNS]


def _pg_new_events(*, first: int) -> str:
    """Two CTEs: the events given as arrays from parameter `first` on, and their webhook jobs."""
    sources = ", ".join(f"${i}::{kind}" for i, kind in enumerate(_PG_EVENT_ARRAY_TYPES, start=first))
    return (
        f"new_events AS (INSERT INTO message_events ({', '.join(EVENT_COLUMNS)}) SELECT * FROM unnest({sources}) "
        "ON CONFLICT (id) DO NOTHING RETURNING id, org_id, type, created_at), "
        f"new_jobs AS ({_queue_for_webhooks('postgresql', 'new_events')})"
    )


_PG_ADD_EVENTS = f"WITH {_pg_new_events(first=1)} SELECT count(*) FROM new_events"


def _event_arrays(events: Iterable[EventRow]) -> list[list[Any]]:
    listed = list(events)
    return [[getattr(event, name) for event in listed] for name in EVENT_COLUMNS]


async def _add_events(connection: asyncpg.Connection, events: Sequence[EventRow]) -> None:
    """The events and their webhook jobs, in the connection's transaction (an event already written: skipped)."""
    await connection.fetchval(_PG_ADD_EVENTS, *_event_arrays(events))


def _to_database(name: str, value: Any) -> Any:
    # json, not jsonb: stored as the text given. json.dumps' own spelling is what the recipient
    # filter of messages/list searches for, as it is for rows written through SQLAlchemy.
    return json.dumps(value) if name in JSON_COLUMNS else value


def _from_record(record) -> SendLogRow:
    return SendLogRow(*(json.loads(v) if n in JSON_COLUMNS else v for n, v in zip(COLUMNS, record, strict=True)))


class PostgresSendLog:
    def __init__(self, pool):
        self._pool = pool
        self._inserts: Batcher[SendLogRow, bool] = Batcher(self._insert_many)
        self._suppression_checks: Batcher[tuple[str, list[str]], set[str]] = Batcher(self._suppressed_many)
        self._updates: dict[tuple[object, ...], Batcher] = {}  # one per (with events?, *columns changed)

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = 10) -> PostgresSendLog:
        return cls(await connect_pool(dsn, name="orgmail send log", max_size=max_size))

    async def find(self, *, org_id: str, idempotency_key: str) -> SendLogRow | None:
        record = await self._pool.fetchrow(
            f"{_PG_SELECT} WHERE org_id = $1 AND idempotency_key = $2", org_id, idempotency_key
        )
        return _from_record(record) if record is not None else None

    async def find_by_message_id(self, *, org_id: str, message_id: str, since: datetime) -> SendLogRow | None:
        record = await self._pool.fetchrow(
            f"{_PG_SELECT} WHERE org_id = $1 AND message_id = $2 AND created_at >= $3 ORDER BY created_at, id LIMIT 1",
            org_id,
            message_id,
            since,
        )
        return _from_record(record) if record is not None else None

    async def get(self, row_id: str) -> SendLogRow | None:
        record = await self._pool.fetchrow(f"{_PG_SELECT} WHERE id = $1", row_id)
        return _from_record(record) if record is not None else None

    async def suppressed_among(self, *, org_id: str, emails: Iterable[str]) -> set[str]:
        given = list(dict.fromkeys(emails))
        if not given:
            return set()
        found = await self._suppression_checks.submit((org_id, sorted({e.lower() for e in given})))
        return _matching(given, found)

    async def _suppressed_many(self, checks: list[tuple[str, list[str]]]) -> list[set[str]]:
        orgs = [org_id for org_id, emails in checks for _ in emails]
        emails = [email for _org_id, emails in checks for email in emails]
        found = {(record[0], record[1]) for record in await self._pool.fetch(_PG_SUPPRESSED_MANY, orgs, emails)}
        return [{email for email in emails if (org_id, email) in found} for org_id, emails in checks]

    async def insert(self, row: SendLogRow, *, events: Sequence[EventRow] = ()) -> bool:
        if not events:  # the hot path: batched with the other sends' rows
            return await self._inserts.submit(row)
        async with self._pool.acquire() as connection, connection.transaction():
            columns = [[_to_database(name, getattr(row, name))] for name in COLUMNS]
            if not await connection.fetch(_PG_INSERT_MANY, *columns):
                return False
            await _add_events(connection, events)
            return True

    async def _insert_many(self, rows: list[SendLogRow]) -> list[bool]:
        columns = [[_to_database(name, getattr(row, name)) for row in rows] for name in COLUMNS]
        inserted = {record[0] for record in await self._pool.fetch(_PG_INSERT_MANY, *columns)}
        return [row.id in inserted for row in rows]

    async def update(
        self, row_id: str, values: Mapping[str, Any], *, if_status: str | None = None, events: Sequence[EventRow] = ()
    ) -> bool:
        if if_status is not None:  # a claim: rare, and its answer must be its own
            if not events:
                return await self._update(self._pool, row_id, values, if_status=if_status)
            async with self._pool.acquire() as connection, connection.transaction():
                changed = await self._update(connection, row_id, values, if_status=if_status)
                if changed:
                    await _add_events(connection, events)
                return changed
        shape = (bool(events), *values)
        group = self._updates.get(shape)
        if group is None:
            names = tuple(values)
            statement = _pg_update_many(names, with_events=bool(events))
            group = self._updates[shape] = Batcher(
                lambda batch: self._update_many(statement, names, batch), key=lambda item: item[0]
            )
        return await group.submit((row_id, values, events))

    async def _update_many(
        self,
        statement: str,
        names: tuple[str, ...],
        batch: list[tuple[str, Mapping[str, Any], Sequence[EventRow]]],
    ) -> list[bool]:
        arrays = [[row_id for row_id, _, _ in batch]]
        arrays += [[_to_database(name, values[name]) for _, values, _ in batch] for name in names]
        if any(events for _, _, events in batch):
            arrays += _event_arrays(event for _, _, events in batch for event in events)
        updated = {record[0] for record in await self._pool.fetch(statement, *arrays)}
        return [row_id in updated for row_id, _, _ in batch]

    async def record_bounces(
        self,
        row_id: str,
        values: Mapping[str, Any],
        *,
        org_id: str,
        emails: list[str],
        note: str,
        events: Sequence[EventRow] = (),
    ) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            await self._update(connection, row_id, values)
            if events:
                await _add_events(connection, events)
            rows = suppression_rows(org_id, emails, reason="bounce", note=note)
            if rows:
                await connection.fetchval(_PG_SUPPRESS, *([row[name] for row in rows] for name in rows[0]))

    @staticmethod
    async def _update(executor, row_id: str, values: Mapping[str, Any], *, if_status: str | None = None) -> bool:
        names = list(values)
        first = 2 if if_status is None else 3
        assignments = ", ".join(f"{quoted(n)} = ${i}" for i, n in enumerate(names, start=first))
        condition = "id = $1" if if_status is None else "id = $1 AND status = $2"
        arguments = [row_id] if if_status is None else [row_id, if_status]
        status = await executor.execute(
            f"UPDATE messages SET {assignments} WHERE {condition}",
            *arguments,
            *(_to_database(n, values[n]) for n in names),
        )
        return status == "UPDATE 1"

    async def fail_queued_before(
        self, cutoff: datetime, values: Mapping[str, Any], *, event: Callable[[str, str], EventRow]
    ) -> int:
        names = list(values)
        assignments = ", ".join(f"{quoted(n)} = ${i}" for i, n in enumerate(names, start=2))
        async with self._pool.acquire() as connection, connection.transaction():
            settled = await connection.fetch(
                f"UPDATE messages SET {assignments} WHERE status = 'queued' AND updated_at < $1 RETURNING id, org_id",
                cutoff,
                *(_to_database(n, values[n]) for n in names),
            )
            if settled:
                await _add_events(connection, [event(*record) for record in settled])
        return len(settled)

    async def close(self) -> None:
        await self._pool.close()


# --- any SQLAlchemy database (SQLite): Core statements -------------------------------------------


class SqlAlchemySendLog:
    def __init__(self, engine: AsyncEngine, autocommit_engine: AsyncEngine):
        self._engine = engine  # for the one transaction: an outcome with its bounce suppressions
        # Single statements are atomic on their own: no BEGIN/COMMIT around them. An engine of its
        # own, as switching a pooled connection to autocommit and back costs two more trips to
        # aiosqlite's thread per statement.
        self._autocommit_engine = autocommit_engine
        self._insert_ignoring = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        # Built once, values bound at execution: building a statement per call (and its cache key)
        # cost more than running it.
        self._insert_row = self._insert_ignoring(_MESSAGES).on_conflict_do_nothing(
            index_elements=["org_id", "idempotency_key"]
        )
        self._suppressed = select(_SUPPRESSIONS.c.email).where(
            _SUPPRESSIONS.c.org_id == bindparam("org_id"),
            _SUPPRESSIONS.c.email.in_(bindparam("emails", expanding=True)),
        )
        self._updates: dict[tuple[object, ...], Any] = {}  # (if_status given?, *column names) -> UPDATE

    async def find(self, *, org_id: str, idempotency_key: str) -> SendLogRow | None:
        return await self._one(
            select(_MESSAGES).where(_MESSAGES.c.org_id == org_id, _MESSAGES.c.idempotency_key == idempotency_key)
        )

    async def find_by_message_id(self, *, org_id: str, message_id: str, since: datetime) -> SendLogRow | None:
        return await self._one(
            select(_MESSAGES)
            .where(_MESSAGES.c.org_id == org_id, _MESSAGES.c.message_id == message_id, _MESSAGES.c.created_at >= since)
            .order_by(_MESSAGES.c.created_at, _MESSAGES.c.id)
            .limit(1)
        )

    async def get(self, row_id: str) -> SendLogRow | None:
        return await self._one(select(_MESSAGES).where(_MESSAGES.c.id == row_id))

    async def suppressed_among(self, *, org_id: str, emails: Iterable[str]) -> set[str]:
        given = list(dict.fromkeys(emails))
        if not given:
            return set()
        parameters = {"org_id": org_id, "emails": sorted({e.lower() for e in given})}
        async with self._autocommit() as connection:
            return _matching(given, (await connection.execute(self._suppressed, parameters)).scalars())

    async def insert(self, row: SendLogRow, *, events: Sequence[EventRow] = ()) -> bool:
        values = {name: getattr(row, name) for name in COLUMNS}
        if not events:
            async with self._autocommit() as connection:
                return (await connection.execute(self._insert_row, values)).rowcount == 1
        async with self._engine.begin() as connection:
            if (await connection.execute(self._insert_row, values)).rowcount != 1:
                return False
            await write_events(connection, events)
            return True

    async def update(
        self, row_id: str, values: Mapping[str, Any], *, if_status: str | None = None, events: Sequence[EventRow] = ()
    ) -> bool:
        if not events:
            async with self._autocommit() as connection:
                return await self._update(connection, row_id, values, if_status=if_status)
        async with self._engine.begin() as connection:
            changed = await self._update(connection, row_id, values, if_status=if_status)
            if changed:
                await write_events(connection, events)
            return changed

    async def record_bounces(
        self,
        row_id: str,
        values: Mapping[str, Any],
        *,
        org_id: str,
        emails: list[str],
        note: str,
        events: Sequence[EventRow] = (),
    ) -> None:
        async with self._engine.begin() as connection:
            await self._update(connection, row_id, values)
            await write_events(connection, events)
            await add_suppressions(connection, org_id=org_id, emails=emails, reason="bounce", note=note)

    async def _update(
        self, connection, row_id: str, values: Mapping[str, Any], *, if_status: str | None = None
    ) -> bool:
        shape = (if_status is not None, *values)
        statement = self._updates.get(shape)
        if statement is None:
            statement = update(_MESSAGES).where(_MESSAGES.c.id == bindparam("row_id"))
            if if_status is not None:
                statement = statement.where(_MESSAGES.c.status == bindparam("if_status"))
            statement = self._updates[shape] = statement.values({name: bindparam(name) for name in values})
        result = await connection.execute(statement, {"row_id": row_id, "if_status": if_status, **values})
        return result.rowcount == 1

    async def _one(self, query) -> SendLogRow | None:
        async with self._autocommit() as connection:
            found = (await connection.execute(query)).first()
        return SendLogRow(**found._mapping) if found is not None else None

    async def fail_queued_before(
        self, cutoff: datetime, values: Mapping[str, Any], *, event: Callable[[str, str], EventRow]
    ) -> int:
        statement = (
            update(_MESSAGES)
            .where(_MESSAGES.c.status == "queued", _MESSAGES.c.updated_at < cutoff)
            .values(values)
            .returning(_MESSAGES.c.id, _MESSAGES.c.org_id)
        )
        async with self._engine.begin() as connection:
            settled = (await connection.execute(statement)).all()
            await write_events(connection, [event(row_id, org_id) for row_id, org_id in settled])
        return len(settled)

    def _autocommit(self):
        return self._autocommit_engine.connect()

    async def close(self) -> None:
        await self._autocommit_engine.dispose()


async def open_send_log(database_url: str, engine: AsyncEngine) -> SendLog:
    """asyncpg for PostgreSQL, SQLAlchemy Core for anything else (`engine` is the service's own)."""
    if engine.dialect.name == "postgresql":
        return await PostgresSendLog.connect(asyncpg_dsn(engine))
    from orgmail.db.session import create_engine

    return SqlAlchemySendLog(engine, create_engine(database_url, isolation_level="AUTOCOMMIT"))
