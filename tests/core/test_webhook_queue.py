"""The webhook queue's statements (`db.webhook_queue`) on each database: leases, bodies kept with a retry,
what a record does to jobs and the delivery log, and what bodies are made of."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orgmail.core import orgs, webhooks
from orgmail.core.suppressions import add_suppression
from orgmail.db.sendlog import EventRow, write_events
from orgmail.db.session import asyncpg_dsn, create_engine, create_session_factory
from orgmail.db.tables import WebhookDelivery, WebhookJob, utcnow
from orgmail.db.webhook_queue import ClaimedJob, EndedAttempt, WebhookQueue, open_webhook_queue
from orgmail.ids import new_id
from orgmail.mail.dkim import KeyVault
from tests.fresh_database import fresh_database
from tests.sent_message import sent_message


@pytest.fixture(scope="module")
async def queue_database(database_url, tmp_path_factory) -> AsyncIterator[str]:
    async with fresh_database(database_url, tmp_path_factory.mktemp("queue"), "queue") as url:
        yield url


@dataclass
class Setup:
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    queue: WebhookQueue
    org_id: str
    webhook_id: str

    async def test_event(self) -> str:
        async with self.session_factory() as session:
            return await webhooks.send_test_event(session, org_id=self.org_id, webhook_id=self.webhook_id)

    async def claim(self, *, lease_seconds: float = 60.0, at=None) -> list[ClaimedJob]:
        now = at or utcnow()
        return await self.queue.claim(now=now, lease_until=now + timedelta(seconds=lease_seconds), limit=50)

    async def jobs(self) -> list[WebhookJob]:
        async with self.session_factory() as session:
            return list(await session.scalars(select(WebhookJob).where(WebhookJob.webhook_id == self.webhook_id)))

    async def deliveries(self) -> list[WebhookDelivery]:
        async with self.session_factory() as session:
            query = select(WebhookDelivery).where(WebhookDelivery.org_id == self.org_id)
            return list(await session.scalars(query.order_by(WebhookDelivery.id)))


@pytest.fixture
async def setup(queue_database) -> AsyncIterator[Setup]:
    engine = create_engine(queue_database)
    session_factory = create_session_factory(engine)
    async with session_factory() as session, session.begin():
        await session.execute(delete(WebhookJob))  # an earlier test's jobs are not this test's
    async with session_factory() as session:
        org = await orgs.create_org(session, name="Queue")
    async with session_factory() as session:
        created = await webhooks.create_webhook(
            session, org_id=org.id, url="http://127.0.0.1:9/hook", vault=KeyVault(b"k"), allow_private=True
        )
    queue = await open_webhook_queue(engine)
    yield Setup(engine, session_factory, queue, org.id, created.webhook.id)
    await queue.close()
    await engine.dispose()


def _ended(
    job: ClaimedJob, *, status: int | None = 204, retry_in: float | None = None, body: str | None = "{}"
) -> EndedAttempt:
    now = utcnow()
    return EndedAttempt(
        job=job,
        delivery_id=new_id("whd"),
        status_code=status,
        duration_ms=3,
        error=None if status == 204 else "HTTP 500",
        next_attempt_at=None if retry_in is None else now + timedelta(seconds=retry_in),
        created_at=now,
        body=body,
    )


async def test_a_claimed_job_is_leased_and_its_attempt_counted(setup):
    event_id = await setup.test_event()
    [job] = await setup.claim(lease_seconds=30)
    assert (job.event_id, job.webhook_id, job.attempt) == (event_id, setup.webhook_id, 1)
    assert job.event_type == "webhook.test" and job.url == "http://127.0.0.1:9/hook" and job.enabled
    assert job.payload is None and job.secret_encrypted
    assert await setup.claim() == []  # held by its lease
    [again] = await setup.claim(at=utcnow() + timedelta(seconds=31))  # the lease ran out
    assert again.attempt == 2


async def test_a_failed_attempt_keeps_its_body_for_every_retry(setup):
    await setup.test_event()
    [job] = await setup.claim()
    await setup.queue.record([_ended(job, status=500, retry_in=0, body='{"first":1}')])
    [again] = await setup.claim(at=utcnow() + timedelta(seconds=1))
    assert again.attempt == 2 and again.payload == '{"first":1}'
    await setup.queue.record([_ended(again, status=500, retry_in=0, body='{"made again":2}')])
    [third] = await setup.claim(at=utcnow() + timedelta(seconds=1))
    assert third.attempt == 3 and third.payload == '{"first":1}'  # the first body kept is the one sent


async def test_a_released_claim_is_due_at_once_with_its_attempt_not_counted(setup):
    await setup.test_event()
    [job] = await setup.claim()
    await setup.queue.release([job], now=utcnow())
    [again] = await setup.claim()
    assert again.key == job.key and again.attempt == 1


async def test_a_record_logs_each_attempt_and_deletes_or_reschedules_its_job(setup):
    await setup.test_event()
    await setup.test_event()
    delivered, failed = await setup.claim()
    await setup.queue.record([_ended(delivered), _ended(failed, status=500, retry_in=300)])
    [left] = await setup.jobs()
    assert left.event_id == failed.event_id and left.next_attempt_at > utcnow() + timedelta(seconds=290)
    logged = {(d.event_id, d.status_code, d.next_attempt_at is not None) for d in await setup.deliveries()}
    assert logged == {(delivered.event_id, 204, False), (failed.event_id, 500, True)}


async def test_a_job_claimed_again_since_is_not_rescheduled_by_the_older_attempt(setup):
    await setup.test_event()
    [first] = await setup.claim(lease_seconds=1)
    [second] = await setup.claim(lease_seconds=600, at=utcnow() + timedelta(seconds=2))
    await setup.queue.record([_ended(first, status=500, retry_in=5)])  # attempt 1 ends late
    [job] = await setup.jobs()
    assert job.attempts == second.attempt == 2 and job.next_attempt_at > utcnow() + timedelta(seconds=500)


async def test_the_attempts_of_a_deleted_webhook_are_not_logged(setup):
    await setup.test_event()
    [job] = await setup.claim()
    async with setup.session_factory() as session:
        await webhooks.delete_webhook(session, org_id=setup.org_id, webhook_id=setup.webhook_id)
    await setup.queue.record([_ended(job)])  # no foreign key error: the attempt is simply not logged
    assert await setup.deliveries() == []


async def test_an_attempt_recorded_while_its_webhook_is_being_deleted_is_not_logged_and_not_an_error(setup):
    """PostgreSQL: the record's snapshot still sees the webhook, its foreign key check no longer does;
    the statement is run again, and the new snapshot leaves the attempt out."""
    if setup.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: the record cannot run while a deletion is under way")
    await setup.test_event()
    [job] = await setup.claim()
    deleting = await asyncpg.connect(asyncpg_dsn(setup.engine))
    try:
        transaction = deleting.transaction()
        await transaction.start()
        await deleting.execute("DELETE FROM webhooks WHERE id = $1", setup.webhook_id)  # not committed yet
        recording = asyncio.create_task(setup.queue.record([_ended(job)]))
        await asyncio.sleep(0.5)
        assert not recording.done()  # waiting for the deleting transaction's row locks
        await transaction.commit()
        await asyncio.wait_for(recording, timeout=10)  # no ForeignKeyViolationError
    finally:
        await deleting.close()
    assert await setup.deliveries() == [] and await setup.jobs() == []


async def test_body_sources_are_the_event_its_message_and_the_suppression(setup):
    message_id, event_id = new_id("msg"), new_id("evt")
    async with setup.session_factory() as session, session.begin():
        session.add(sent_message(message_id, setup.org_id, tags={"order": "42"}, raw=b"the signed bytes"))
    async with setup.engine.begin() as connection:
        await write_events(connection, [EventRow(id=event_id, org_id=setup.org_id, message_id=message_id, type="sent")])
    async with setup.session_factory() as session:
        suppression = await add_suppression(session, org_id=setup.org_id, email="x@example.net", reason="manual")
    sources = await setup.queue.body_sources(event_ids={event_id, "evt_missing"}, suppression_ids={suppression.id})
    assert set(sources.events) == {event_id} and sources.events[event_id]["type"] == "sent"
    message = sources.messages[message_id]
    assert message["to"] == ["bob@example.net"] and message["tags"] == {"order": "42"}  # JSON read as values
    assert "raw" not in message and "request_hash" not in message
    assert sources.suppressions[suppression.id]["email"] == "x@example.net"
