"""The send log's hot path (db/sendlog.py) on both databases: what concurrent sends rely on.

On PostgreSQL, concurrent statements are batched (group commit); these tests send many at once so
that batches really form, and check that each caller still gets its own, correct answer.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from orgmail.core.suppressions import add_suppression
from orgmail.db.sendlog import Batcher, EventRow, SendLogRow
from orgmail.db.tables import MessageEvent, utcnow
from orgmail.ids import new_id


def _row(org_id: str, *, key: str | None = None, row_id: str | None = None) -> SendLogRow:
    now = utcnow()
    row_id = row_id or new_id("msg")
    return SendLogRow(
        id=row_id,
        org_id=org_id,
        from_address="Ann <ann@example.com>",
        to=["bob@example.net"],
        cc=[],
        bcc=[],
        reply_to=[],
        subject="Hello",
        status="queued",
        message_id=f"<{row_id}@example.com>",
        domain="example.com",
        dkim_selector="sel",
        suppressed_recipients=[],
        rejected_recipients=[],
        tags={"k": "v"},
        size_bytes=3,
        relay_response=None,
        error_code=None,
        error_message=None,
        idempotency_key=key,
        request_hash="h",
        raw=b"raw",
        created_at=now,
        updated_at=now,
        sent_at=None,
    )


@pytest.fixture
def send_log(app):
    return app.state.send_log


async def test_concurrent_inserts_and_updates_each_land(send_log, tenant):
    rows = [_row(tenant.org_id) for _ in range(40)]
    assert await asyncio.gather(*(send_log.insert(row) for row in rows)) == [True] * 40
    sent_at = utcnow()
    updates = [
        send_log.update(row.id, {"status": "sent", "relay_response": f"250 {row.id}", "sent_at": sent_at})
        for row in rows
    ]
    assert await asyncio.gather(*updates) == [True] * 40
    stored = await asyncio.gather(*(send_log.get(row.id) for row in rows))
    assert [(s.status, s.relay_response) for s in stored] == [("sent", f"250 {row.id}") for row in rows]
    assert stored[0].to == ["bob@example.net"] and stored[0].tags == {"k": "v"} and stored[0].raw == b"raw"
    assert stored[0].sent_at == sent_at


async def test_one_idempotency_key_inserts_once_even_within_one_batch(send_log, tenant):
    rows = [_row(tenant.org_id, key="same-key") for _ in range(10)]
    assert sorted(await asyncio.gather(*(send_log.insert(row) for row in rows))) == [False] * 9 + [True]
    found = await send_log.find(org_id=tenant.org_id, idempotency_key="same-key")
    assert found is not None and found.id in {row.id for row in rows}


async def test_a_message_id_finds_the_oldest_row_of_its_org_within_the_window(send_log, tenant, other_tenant):
    first, second, foreign = _row(tenant.org_id), _row(tenant.org_id), _row(other_tenant.org_id)
    for row in (first, second, foreign):
        row.message_id = "<same@client.example>"
        row.created_at = utcnow()
        await send_log.insert(row)
    found = await send_log.find_by_message_id(
        org_id=tenant.org_id, message_id="<same@client.example>", since=first.created_at
    )
    assert found is not None and found.id == first.id
    later = await send_log.find_by_message_id(org_id=tenant.org_id, message_id="<same@client.example>", since=utcnow())
    assert later is None


async def test_a_row_is_written_with_its_events_or_not_at_all(app, send_log, tenant):
    first, twin = _row(tenant.org_id, key="with-events"), _row(tenant.org_id, key="with-events")
    for row in (first, twin):
        event = EventRow(id=new_id("evt"), org_id=tenant.org_id, message_id=row.id, type="suppressed")
        row.status = "suppressed"
        assert await send_log.insert(row, events=[event]) == (row is first)
    assert (await send_log.get(first.id)) is not None and (await send_log.get(twin.id)) is None
    async with app.state.session_factory() as session:
        events = (
            await session.scalars(
                select(MessageEvent.message_id).where(MessageEvent.message_id.in_([first.id, twin.id]))
            )
        ).all()
    assert events == [first.id]


async def test_a_row_the_database_refuses_fails_alone(send_log, tenant):
    good = [_row(tenant.org_id) for _ in range(9)]
    bad = _row("org_that_does_not_exist")  # the foreign key refuses it
    results = await asyncio.gather(
        *(send_log.insert(row) for row in [*good[:5], bad, *good[5:]]), return_exceptions=True
    )
    assert isinstance(results[5], (asyncpg.ForeignKeyViolationError, IntegrityError)), results[5]
    assert results[:5] + results[6:] == [True] * 9
    assert await send_log.get(bad.id) is None


async def test_an_update_only_if_status_changes_the_row_once(send_log, tenant):
    row = _row(tenant.org_id)
    row.status = "failed"
    await send_log.insert(row)
    claims = [send_log.update(row.id, {"status": "queued"}, if_status="failed") for _ in range(5)]
    assert sorted(await asyncio.gather(*claims)) == [False] * 4 + [True]


async def test_suppression_checks_answer_for_their_own_org_only(send_log, app, tenant, other_tenant):
    async with app.state.session_factory() as session:
        await add_suppression(session, org_id=tenant.org_id, email="Gone@Example.net")
    checks = [
        send_log.suppressed_among(org_id=org, emails=["gone@example.net", "GONE@example.net", "here@example.net"])
        for org in [tenant.org_id, other_tenant.org_id] * 10
    ]
    answers = await asyncio.gather(*checks)
    assert answers == [{"gone@example.net", "GONE@example.net"}, set()] * 10


async def test_the_batcher_groups_what_arrives_while_a_batch_is_in_flight():
    batches: list[list[int]] = []

    async def write_many(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)
        return [item * 2 for item in items]

    batcher: Batcher[int, int] = Batcher(write_many)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.001)  # the first batch is in flight
    rest = await asyncio.gather(*(batcher.submit(n) for n in range(2, 6)))
    assert await first == 2 and rest == [4, 6, 8, 10]
    assert batches == [[1], [2, 3, 4, 5]]


async def test_a_lingering_batcher_groups_a_steady_trickle():
    async def trickle(batcher: Batcher[int, int]) -> None:
        submitted = []
        for n in range(30):  # one item every 3 ms: 90 ms in all
            submitted.append(asyncio.ensure_future(batcher.submit(n)))
            await asyncio.sleep(0.003)
        assert await asyncio.gather(*submitted) == list(range(30))

    def batcher(batches: list[list[int]], **options) -> Batcher[int, int]:
        async def write_many(items: list[int]) -> list[int]:
            batches.append(items)
            await asyncio.sleep(0.005)  # a round trip, during which more arrive
            return items

        return Batcher(write_many, **options)

    eager: list[list[int]] = []
    await trickle(batcher(eager))
    lingering: list[list[int]] = []
    await trickle(batcher(lingering, linger_seconds=0.02))
    # Without lingering, what arrives during a write goes out next, in ones and twos.
    assert sorted(n for batch in lingering for n in batch) == list(range(30))
    assert len(lingering) * 2 <= len(eager)
