"""The webhook delivery queue's statements (`webhook_jobs`, `webhook_deliveries`), behind one small
interface, two implementations, as the send log's are (`db.sendlog`).

Every send with a webhook brings a delivery, and the two share the database and the cores, so the
dispatcher's statements are batched and few: per claimed batch one claim and one or two reads of what
the bodies are made of; per group of ended attempts one statement that logs them and deletes or
reschedules their jobs (a rescheduled job keeps the body it was sent with).

- `PostgresWebhookQueue` runs them on asyncpg directly (a small pool of its own), each a single
  statement over parallel arrays (`unnest`): SQLAlchemy's statement handling cost the dispatcher
  more CPU than its POSTs (bench/webhooks.py, figures in the README);
- `SqlAlchemyWebhookQueue` runs the same as SQLAlchemy Core (SQLite, the embedded default).

The same dispatcher tests run on both databases.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

import asyncpg
from sqlalchemy import BindParameter, Row, Table, bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orgmail.db.sendlog import COLUMNS, JSON_COLUMNS, pg_array_type, quoted
from orgmail.db.session import asyncpg_dsn, connect_pool
from orgmail.db.tables import Message, MessageEvent, Suppression, Webhook, WebhookDelivery, WebhookJob

Key = tuple[str, str]  # (event id, webhook id): a job


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job leased to the claiming dispatcher, with its webhook as it is now."""

    event_id: str
    webhook_id: str
    org_id: str
    event_type: str
    payload: str | None  # the body, kept when an attempt failed; None: made at this attempt
    attempt: int  # this attempt's number, counted at the claim
    created_at: datetime  # the event's time
    url: str | None  # None: the webhook is gone
    enabled: bool
    secret_encrypted: bytes
    leased_until: datetime  # when the claim's lease runs out and another may claim it

    @property
    def key(self) -> Key:
        return (self.event_id, self.webhook_id)


@dataclass(frozen=True, slots=True)
class BodySources:
    """What bodies are made of, each row by its id as a mapping of column to value: events, the
    messages they are about, suppressions. A message's signed bytes and request hash are not read."""

    events: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    messages: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    suppressions: dict[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndedAttempt:
    """One attempt's row in the delivery log and what becomes of its job: rescheduled to
    `next_attempt_at`, or (None) deleted, delivered or given up."""

    job: ClaimedJob
    delivery_id: str
    status_code: int | None
    duration_ms: int | None
    error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    body: str | None = None  # what was sent: kept with a rescheduled job that has none yet


class WebhookQueue(Protocol):
    async def claim(self, *, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedJob]:
        """Up to `limit` jobs due at `now` (oldest first), their next attempt pushed to
        `lease_until` and their attempt counted; none that another dispatcher holds."""
        ...

    async def body_sources(self, *, event_ids: set[str], suppression_ids: set[str]) -> BodySources: ...

    async def record(self, attempts: Sequence[EndedAttempt]) -> None:
        """The attempts' delivery-log rows, and their jobs deleted or rescheduled (keeping the body
        sent, unless they have one), at once. A job rescheduled only if no other dispatcher has
        claimed it since (its lease ran out): that one decides. A deleted webhook's attempts are not
        logged (its log went with it)."""
        ...

    async def release(self, jobs: Sequence[ClaimedJob], *, now: datetime) -> None:
        """Give claims back unattempted: due again at `now`, their attempt not counted (unless
        claimed again since)."""
        ...

    async def drop(self, key: Key) -> None: ...

    async def close(self) -> None: ...


_MESSAGE_COLUMNS = tuple(name for name in COLUMNS if name not in ("raw", "request_hash"))
_EVENT_COLUMNS = tuple(column.key for column in cast(Table, MessageEvent.__table__).columns)
_SUPPRESSION_COLUMNS = tuple(column.key for column in cast(Table, Suppression.__table__).columns)
_DELIVERIES = cast(Table, WebhookDelivery.__table__)
_DELIVERY_COLUMNS = tuple(column.key for column in _DELIVERIES.columns)


def _delivery_values(attempt: EndedAttempt) -> dict[str, Any]:
    job = attempt.job
    return dict(
        id=attempt.delivery_id,
        org_id=job.org_id,
        webhook_id=job.webhook_id,
        event_id=job.event_id,
        event_type=job.event_type,
        attempt=job.attempt,
        status_code=attempt.status_code,
        duration_ms=attempt.duration_ms,
        error=attempt.error,
        next_attempt_at=attempt.next_attempt_at,
        created_at=attempt.created_at,
    )


def _message(row: Mapping[str, Any]) -> dict[str, Any]:
    """A messages row with its JSON columns (text on asyncpg) decoded."""
    message = dict(row)
    for name in JSON_COLUMNS:
        message[name] = json.loads(message[name])
    return message


# --- PostgreSQL: asyncpg, one statement each -----------------------------------------------------

# The due rows are updated by their ctid (a TID scan), not joined back by key: with LIMIT a parameter
# the planner cannot tell that the batch is small, and its generic plan hashed the whole queue for
# each claim (EXPLAIN ANALYZE; the README has the figures).
_PG_CLAIM = """
WITH claimed AS (
    UPDATE webhook_jobs AS j SET next_attempt_at = $2, attempts = j.attempts + 1
    WHERE j.ctid = ANY(ARRAY(
        SELECT ctid FROM webhook_jobs WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $3
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING j.event_id, j.webhook_id, j.org_id, j.event_type, j.payload, j.attempts, j.created_at
)
SELECT c.*, w.url, w.enabled, w.secret_encrypted
FROM claimed AS c LEFT JOIN webhooks AS w ON w.id = c.webhook_id
ORDER BY c.created_at
"""
_PG_EVENTS = f"SELECT {', '.join(_EVENT_COLUMNS)} FROM message_events WHERE id = ANY($1::text[])"
_PG_MESSAGES = f"SELECT {', '.join(quoted(c) for c in _MESSAGE_COLUMNS)} FROM messages WHERE id = ANY($1::text[])"
_PG_SUPPRESSIONS = f"SELECT {', '.join(_SUPPRESSION_COLUMNS)} FROM suppressions WHERE id = ANY($1::text[])"
_PG_RECORD = f"""
WITH finished AS (
    DELETE FROM webhook_jobs AS j USING unnest($1::text[], $2::text[]) AS x(e, w)
    WHERE j.event_id = x.e AND j.webhook_id = x.w
), rescheduled AS (
    UPDATE webhook_jobs AS j SET next_attempt_at = x.next_at, payload = coalesce(j.payload, x.body)
    FROM unnest($3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::text[]) AS x(e, w, a, next_at, body)
    WHERE j.event_id = x.e AND j.webhook_id = x.w AND j.attempts = x.a
)
INSERT INTO webhook_deliveries ({", ".join(_DELIVERY_COLUMNS)})
SELECT x.* FROM unnest({
    ", ".join(f"${i}::{pg_array_type(_DELIVERIES.c[name])}" for i, name in enumerate(_DELIVERY_COLUMNS, start=8))
}) AS x({", ".join(_DELIVERY_COLUMNS)})
WHERE EXISTS (SELECT 1 FROM webhooks AS w WHERE w.id = x.webhook_id)
"""
_PG_RELEASE = """
UPDATE webhook_jobs AS j SET next_attempt_at = $1, attempts = j.attempts - 1
FROM unnest($2::text[], $3::text[], $4::int[]) AS x(e, w, a)
WHERE j.event_id = x.e AND j.webhook_id = x.w AND j.attempts = x.a
"""
_PG_DROP = "DELETE FROM webhook_jobs WHERE event_id = $1 AND webhook_id = $2"


def _claimed(row: Mapping[str, Any], leased_until: datetime) -> ClaimedJob:
    return ClaimedJob(
        event_id=row["event_id"],
        webhook_id=row["webhook_id"],
        org_id=row["org_id"],
        event_type=row["event_type"],
        payload=row["payload"],
        attempt=row["attempts"],
        created_at=row["created_at"],
        url=row["url"],
        enabled=bool(row["enabled"]),
        secret_encrypted=row["secret_encrypted"] or b"",
        leased_until=leased_until,
    )


def _columns(rows: Iterable[Mapping[str, Any]], names: Sequence[str]) -> list[list[Any]]:
    listed = list(rows)
    return [[row[name] for row in listed] for name in names]


class PostgresWebhookQueue:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str) -> PostgresWebhookQueue:
        # A statement that hangs (a silent network partition) is an outage the dispatcher waits out,
        # not a claim loop stuck for good.
        return cls(await connect_pool(dsn, name="orgmail webhooks", max_size=4, command_timeout=30.0))

    async def claim(self, *, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedJob]:
        return [_claimed(row, lease_until) for row in await self._pool.fetch(_PG_CLAIM, now, lease_until, limit)]

    async def body_sources(self, *, event_ids: set[str], suppression_ids: set[str]) -> BodySources:
        sources = BodySources()
        async with self._pool.acquire() as connection:
            if event_ids:
                events = await connection.fetch(_PG_EVENTS, list(event_ids))
                sources.events.update((row["id"], dict(row)) for row in events)
                messages = await connection.fetch(_PG_MESSAGES, list({row["message_id"] for row in events}))
                sources.messages.update((row["id"], _message(row)) for row in messages)
            if suppression_ids:
                rows = await connection.fetch(_PG_SUPPRESSIONS, list(suppression_ids))
                sources.suppressions.update((row["id"], dict(row)) for row in rows)
        return sources

    async def record(self, attempts: Sequence[EndedAttempt]) -> None:
        finished = [a.job.key for a in attempts if a.next_attempt_at is None]
        retried = [a for a in attempts if a.next_attempt_at is not None]
        arguments = (
            [k[0] for k in finished],
            [k[1] for k in finished],
            [a.job.event_id for a in retried],
            [a.job.webhook_id for a in retried],
            [a.job.attempt for a in retried],
            [a.next_attempt_at for a in retried],
            [a.body for a in retried],
            *_columns((_delivery_values(a) for a in attempts), _DELIVERY_COLUMNS),
        )
        try:
            await self._pool.execute(_PG_RECORD, *arguments)
        except asyncpg.ForeignKeyViolationError:
            # A webhook deleted while the statement ran (its snapshot still saw it): once more, and
            # the new snapshot leaves that webhook's attempts out.
            await self._pool.execute(_PG_RECORD, *arguments)

    async def release(self, jobs: Sequence[ClaimedJob], *, now: datetime) -> None:
        await self._pool.execute(
            _PG_RELEASE, now, [j.event_id for j in jobs], [j.webhook_id for j in jobs], [j.attempt for j in jobs]
        )

    async def drop(self, key: Key) -> None:
        await self._pool.execute(_PG_DROP, *key)

    async def close(self) -> None:
        await self._pool.close()


# --- any SQLAlchemy database (SQLite): Core statements -------------------------------------------

_JOBS = cast(Table, WebhookJob.__table__)
_CLAIMED_JOB = [
    _JOBS.c[name] for name in ("event_id", "webhook_id", "org_id", "event_type", "payload", "attempts", "created_at")
]
_CLAIMED_WEBHOOK = [cast(Table, Webhook.__table__).c[name] for name in ("id", "url", "enabled", "secret_encrypted")]
_RESCHEDULE = (  # unless claimed again since (its attempts counted once more)
    update(_JOBS)
    .where(_JOBS.c.event_id == bindparam("e"), _JOBS.c.webhook_id == bindparam("w"), _JOBS.c.attempts == bindparam("a"))
    .values(next_attempt_at=bindparam("next_at"), payload=func.coalesce(_JOBS.c.payload, bindparam("body")))
)
_RELEASE = (
    update(_JOBS)
    .where(_JOBS.c.event_id == bindparam("e"), _JOBS.c.webhook_id == bindparam("w"), _JOBS.c.attempts == bindparam("a"))
    .values(next_attempt_at=bindparam("now"), attempts=_JOBS.c.attempts - 1)
)
_JOB_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)
_DELETE_JOBS = delete(_JOBS).where(tuple_(_JOBS.c.event_id, _JOBS.c.webhook_id).in_(_JOB_KEYS))
_LOG_ATTEMPTS = insert(cast(Table, WebhookDelivery.__table__))
_ROWS_BY_ID = {
    "events": select(*(cast(Table, MessageEvent.__table__).c[c] for c in _EVENT_COLUMNS)).where(
        MessageEvent.id.in_(bindparam("ids", expanding=True))
    ),
    "messages": select(*(cast(Table, Message.__table__).c[c] for c in _MESSAGE_COLUMNS)).where(
        Message.id.in_(bindparam("ids", expanding=True))
    ),
    "suppressions": select(*(cast(Table, Suppression.__table__).c[c] for c in _SUPPRESSION_COLUMNS)).where(
        Suppression.id.in_(bindparam("ids", expanding=True))
    ),
}


class SqlAlchemyWebhookQueue:
    def __init__(self, engine: AsyncEngine):
        self._engine = engine
        due = (
            select(_JOBS.c.event_id, _JOBS.c.webhook_id)
            .where(_JOBS.c.next_attempt_at <= bindparam("now"))
            .order_by(_JOBS.c.next_attempt_at)
            .limit(bindparam("limit"))
        )
        if engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        # SQLite runs the claim under its single write lock: atomic across processes too.
        self._claim = (
            update(_JOBS)
            .where(tuple_(_JOBS.c.event_id, _JOBS.c.webhook_id).in_(due))
            .values(next_attempt_at=bindparam("lease_until"), attempts=_JOBS.c.attempts + 1)
            .returning(*_CLAIMED_JOB)
        )

    async def claim(self, *, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedJob]:
        async with self._engine.begin() as connection:
            claimed = (await connection.execute(self._claim, dict(now=now, lease_until=lease_until, limit=limit))).all()
            if not claimed:
                return []
            webhooks = {
                row.id: row
                for row in await connection.execute(
                    select(*_CLAIMED_WEBHOOK).where(Webhook.id.in_({row.webhook_id for row in claimed}))
                )
            }
        jobs = []
        for row in claimed:
            webhook = webhooks.get(row.webhook_id)
            values = {**row._mapping, "url": None, "enabled": False, "secret_encrypted": b""}
            if webhook is not None:
                values.update(webhook._mapping)
            jobs.append(_claimed(values, lease_until))
        return sorted(jobs, key=lambda job: job.created_at)

    async def body_sources(self, *, event_ids: set[str], suppression_ids: set[str]) -> BodySources:
        sources = BodySources()
        async with self._engine.connect() as connection:
            sources.events.update(await _rows_by_id(connection, "events", event_ids))
            message_ids = {event["message_id"] for event in sources.events.values()}
            messages = await _rows_by_id(connection, "messages", message_ids)
            sources.messages.update(messages)
            sources.suppressions.update(await _rows_by_id(connection, "suppressions", suppression_ids))
        return sources

    async def record(self, attempts: Sequence[EndedAttempt]) -> None:
        finished = [a.job.key for a in attempts if a.next_attempt_at is None]
        retried = [
            dict(e=a.job.event_id, w=a.job.webhook_id, a=a.job.attempt, next_at=a.next_attempt_at, body=a.body)
            for a in attempts
            if a.next_attempt_at is not None
        ]
        async with self._engine.begin() as connection:
            if finished:
                await connection.execute(_DELETE_JOBS, dict(keys=finished))
            if retried:
                await connection.execute(_RESCHEDULE, retried)
            webhook_ids = {a.job.webhook_id for a in attempts}
            present = set((await connection.execute(select(Webhook.id).where(Webhook.id.in_(webhook_ids)))).scalars())
            logged = [_delivery_values(a) for a in attempts if a.job.webhook_id in present]
            if logged:
                await connection.execute(_LOG_ATTEMPTS, logged)

    async def release(self, jobs: Sequence[ClaimedJob], *, now: datetime) -> None:
        if jobs:
            async with self._engine.begin() as connection:
                await connection.execute(
                    _RELEASE, [dict(e=j.event_id, w=j.webhook_id, a=j.attempt, now=now) for j in jobs]
                )

    async def drop(self, key: Key) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(_DELETE_JOBS, dict(keys=[key]))

    async def close(self) -> None:
        """The engine is the service's: it is disposed with the service."""


async def _rows_by_id(connection, kind: str, ids: set[str]) -> dict[str, Mapping[str, Any]]:
    """The rows of that kind whose id is among `ids`, by id; no query when there are none."""
    if not ids:
        return {}
    rows: Iterable[Row[Any]] = await connection.execute(_ROWS_BY_ID[kind], dict(ids=list(ids)))
    return {row.id: dict(row._mapping) for row in rows}


async def open_webhook_queue(engine: AsyncEngine) -> WebhookQueue:
    """asyncpg for PostgreSQL, SQLAlchemy Core for anything else (`engine` is the service's own)."""
    if engine.dialect.name == "postgresql":
        return await PostgresWebhookQueue.connect(asyncpg_dsn(engine))
    return SqlAlchemyWebhookQueue(engine)
