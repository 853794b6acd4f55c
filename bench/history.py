"""A past for the bench's fresh database: N messages already sent, each with its `sent` event, then
ANALYZE, so the statements the service prepares are planned as a running deployment's would be.

Why (found with pg_stat_statements and auto_explain in bench/send.py): asyncpg prepares every
statement, and after five runs PostgreSQL keeps a generic plan made from the statistics it has. On a
database created seconds before, the tables look empty, so the plans scanned whole tables (the
outcome UPDATE hashed all of `messages`; the dispatcher's event lookup read all of `message_events`,
3.4 ms per batch at 15,000 rows and growing). A deployment gets index plans once autovacuum first
analyzes its tables (within a minute or two of them filling); a 20 s bench on a new database never did.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import sqlalchemy

from orgmail.db.tables import Message, MessageEvent, utcnow
from orgmail.ids import new_id


def _rows(org_id: str, domain: str, count: int) -> tuple[list[dict], list[dict]]:
    sent_at = utcnow() - timedelta(days=1)
    messages, events = [], []
    for _ in range(count):
        message_id = new_id("msg")
        messages.append(
            {
                "id": message_id, "org_id": org_id, "from_address": f"Shop <orders@{domain}>",
                "to": ["customer@example.net"], "cc": [], "bcc": [], "reply_to": [],
                "subject": "Your order has shipped", "status": "sent", "message_id": f"<{message_id}@{domain}>",
                "domain": domain, "dkim_selector": "bench", "suppressed_recipients": [], "rejected_recipients": [],
                "tags": {}, "size_bytes": 2300, "relay_response": "250 2.0.0 Ok: queued", "created_at": sent_at,
                "updated_at": sent_at, "sent_at": sent_at, "last_event": "sent", "source": "api",
            }
        )  # fmt: skip
        events.append(
            {"id": new_id("evt"), "org_id": org_id, "message_id": message_id, "type": "sent", "created_at": sent_at}
        )
    return messages, events


async def write_history(database_url: str, *, org_id: str, domain: str, count: int) -> None:
    """`count` sent messages and their events in the org's past, then ANALYZE (both databases)."""
    if count <= 0:
        return
    messages, events = _rows(org_id, domain, count)
    if database_url.startswith("sqlite"):
        await asyncio.to_thread(_write_sqlite, database_url, messages, events)
        return
    import asyncpg

    def records(rows: list[dict]) -> list[tuple]:  # COPY takes JSON columns as text
        return [tuple(json.dumps(v) if isinstance(v, list | dict) else v for v in row.values()) for row in rows]

    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for table, rows in (("messages", messages), ("message_events", events)):
            await connection.copy_records_to_table(table, records=records(rows), columns=list(rows[0]))
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def _write_sqlite(database_url: str, messages: list[dict], events: list[dict]) -> None:
    """Through SQLAlchemy's tables, so dates and JSON are stored as the service stores them."""
    engine = sqlalchemy.create_engine(database_url.replace("sqlite+aiosqlite://", "sqlite://"))
    with engine.begin() as connection:
        connection.execute(sqlalchemy.insert(Message.__table__), messages)
        connection.execute(sqlalchemy.insert(MessageEvent.__table__), events)
        connection.execute(sqlalchemy.text("ANALYZE"))
    engine.dispose()
