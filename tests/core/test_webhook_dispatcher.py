"""The webhook dispatcher against a real HTTP endpoint (tests/webhook_receiver.py) that verifies every
signature with the Standard Webhooks library: retries with the same id and bytes, redirects not
followed, the delivery log, giving up, restarts, two dispatchers racing over one queue, the address
rule at delivery time, and a database outage.

The queue lives in a database of this module's own (per backend), so no app's dispatcher shares it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orgmail.api.messages import mail_message
from orgmail.api.webhooks import EVENT_DATA
from orgmail.config import load_settings
from orgmail.core import orgs, webhooks
from orgmail.core.messages import get_message
from orgmail.core.suppressions import add_suppression, remove_suppression
from orgmail.core.webhook_dispatcher import Dispatcher, Schedule, start
from orgmail.db.sendlog import EventRow, write_events
from orgmail.db.session import create_engine, create_session_factory, upgrade_database
from orgmail.db.tables import Message, Webhook, WebhookDelivery, WebhookJob
from orgmail.ids import new_id
from orgmail.mail.dkim import KeyVault
from orgmail.mail.webhook_client import WebhookClient, address_refusal, resolve
from tests.fresh_database import fresh_database
from tests.postgres_server import PrivatePostgres
from tests.sent_message import sent_message

FAST = Schedule(backoff=(0.2, 0.2, 0.2), repeat_every=0.2, give_up_after=3600)


@pytest.fixture(scope="module")
async def queue_database(database_url, tmp_path_factory) -> AsyncIterator[str]:
    async with fresh_database(database_url, tmp_path_factory.mktemp("webhooks"), "webhooks") as url:
        yield url


class CountingClient(WebhookClient):
    """The real client, counting the POSTs it made."""

    posts = 0

    async def post(self, url: str, **kwargs):
        self.posts += 1
        return await super().post(url, **kwargs)


@dataclass
class Queue:
    """The module's database, an org in it, and the dispatchers a test started (stopped after it)."""

    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    vault: KeyVault
    org_id: str
    dispatchers: list[Dispatcher] = field(default_factory=list)
    clients: list[CountingClient] = field(default_factory=list)

    async def webhook(self, url: str, events: list[str] | None = None) -> tuple[str, str]:
        async with self.session_factory() as session:
            created = await webhooks.create_webhook(
                session, org_id=self.org_id, url=url, events=events, vault=self.vault, allow_private=True
            )
        return created.webhook.id, created.secret

    async def test_event(self, webhook_id: str) -> str:
        async with self.session_factory() as session:
            return await webhooks.send_test_event(session, org_id=self.org_id, webhook_id=webhook_id)

    async def start(self, *, allow_private: bool = True, timeout: float = 10.0, **options) -> Dispatcher:
        client = CountingClient(allow_private=allow_private, timeout_seconds=timeout)
        self.clients.append(client)
        state = SimpleNamespace(engine=self.engine, vault=self.vault, settings=None)
        options = {"schedule": FAST, "idle_seconds": 0.05, **options}
        dispatcher = await start(state, event_data=EVENT_DATA, client=client, **options)
        self.dispatchers.append(dispatcher)
        return dispatcher

    async def deliveries(self, webhook_id: str) -> list[WebhookDelivery]:
        async with self.session_factory() as session:
            rows = await session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id).order_by(WebhookDelivery.id)
            )
            return list(rows)

    async def jobs(self, webhook_id: str) -> list[WebhookJob]:
        async with self.session_factory() as session:
            return list(await session.scalars(select(WebhookJob).where(WebhookJob.webhook_id == webhook_id)))

    async def wait_until(self, condition, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.05)


@pytest.fixture
async def queue(queue_database) -> AsyncIterator[Queue]:
    engine = create_engine(queue_database)
    session_factory = create_session_factory(engine)
    async with session_factory() as session, session.begin():
        await session.execute(delete(WebhookJob))  # whatever an earlier test left is not this test's
    async with session_factory() as session:
        org = await orgs.create_org(session, name="Hooks")
    queue = Queue(engine, session_factory, KeyVault(b"test-secret-key"), org.id)
    yield queue
    for dispatcher in queue.dispatchers:
        await dispatcher.stop()
    for client in queue.clients:
        await client.close()
    await engine.dispose()


async def test_a_test_event_arrives_signed_per_standard_webhooks(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/hook"))
    receiver.expect("/hook", secret)
    event_id = await queue.test_event(webhook_id)
    await queue.start()
    [post] = await receiver.wait_for("/hook", 1)
    assert post.verified
    assert post.headers["webhook-id"] == event_id and event_id.startswith("evt_")
    assert post.headers["webhook-signature"].startswith("v1,")
    assert abs(int(post.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 30
    assert post.headers["content-type"] == "application/json"
    body = post.event
    assert body["type"] == "webhook.test" and body["data"] == {"webhookId": webhook_id}
    assert datetime.fromisoformat(body["createdAt"]).tzinfo is not None and body["createdAt"].endswith("Z")
    await queue.wait_until(lambda: _has_deliveries(queue, webhook_id, 1))
    [delivery] = await queue.deliveries(webhook_id)
    assert (delivery.attempt, delivery.status_code, delivery.error, delivery.next_attempt_at) == (1, 200, None, None)
    assert delivery.event_id == event_id and delivery.event_type == "webhook.test" and delivery.duration_ms >= 0
    assert delivery.id.startswith("whd_") and delivery.org_id == queue.org_id
    assert await queue.jobs(webhook_id) == []


async def _has_deliveries(queue: Queue, webhook_id: str, count: int) -> bool:
    return len(await queue.deliveries(webhook_id)) >= count


async def test_failures_are_retried_with_the_same_id_and_bytes_and_redirects_are_not_followed(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/flaky"))
    receiver.expect("/flaky", secret, 500, 302)
    receiver.expect("/elsewhere", secret)
    await queue.test_event(webhook_id)
    await queue.start()
    first, second, third = await receiver.wait_for("/flaky", 3)
    assert [p.status for p in (first, second, third)] == [500, 302, 200]
    assert all(p.verified for p in (first, second, third))
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == third.headers["webhook-id"]
    assert first.body == second.body == third.body
    assert receiver.posts_to("/elsewhere") == []  # the 302's Location was not followed
    await queue.wait_until(lambda: _has_deliveries(queue, webhook_id, 3))
    one, two, three = await queue.deliveries(webhook_id)
    assert [d.attempt for d in (one, two, three)] == [1, 2, 3]
    assert [d.status_code for d in (one, two, three)] == [500, 302, 200]
    assert one.error == "answered 500: status 500"
    assert "redirect" in two.error and "/elsewhere" in two.error and "not followed" in two.error
    assert three.error is None and three.next_attempt_at is None
    assert one.next_attempt_at is not None and two.next_attempt_at is not None
    await asyncio.sleep(0.5)
    assert len(receiver.posts_to("/flaky")) == 3  # delivered: nothing more
    assert await queue.jobs(webhook_id) == []


async def test_an_endpoint_that_never_answers_times_out(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/slow"))
    receiver.expect("/slow", secret)
    receiver.endpoints["/slow"].stall = True
    await queue.test_event(webhook_id)
    await queue.start(timeout=0.5)
    await queue.wait_until(lambda: _has_deliveries(queue, webhook_id, 1))
    [delivery, *_] = await queue.deliveries(webhook_id)
    assert delivery.status_code is None and delivery.error == "no answer within 0.5 s"
    assert 400 <= delivery.duration_ms < 3000 and delivery.next_attempt_at is not None


async def test_an_event_is_given_up_after_the_retry_period(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/down"))
    receiver.expect("/down", secret, *([500] * 100))
    await queue.test_event(webhook_id)
    await queue.start(schedule=Schedule(backoff=(0.2,), repeat_every=0.2, give_up_after=1.0))
    await queue.wait_until(lambda: _no_jobs(queue, webhook_id))
    deliveries = await queue.deliveries(webhook_id)
    assert 2 <= len(deliveries) <= 8
    assert all(d.next_attempt_at is not None for d in deliveries[:-1])
    assert deliveries[-1].next_attempt_at is None and "given up" in deliveries[-1].error
    count = len(receiver.posts_to("/down"))
    await asyncio.sleep(0.6)
    assert len(receiver.posts_to("/down")) == count == len(deliveries)


async def _no_jobs(queue: Queue, webhook_id: str) -> bool:
    return await queue.jobs(webhook_id) == []


def test_the_schedule_backs_off_then_repeats_every_12_hours_for_3_days():
    schedule, event_at = Schedule(), datetime(2026, 12, 1, tzinfo=UTC)
    now, delays = event_at, []
    for attempt in range(1, 30):
        due = schedule.next_attempt(attempt=attempt, event_at=event_at, now=now)
        if due is None:
            break
        delays.append((due - now).total_seconds())
        now = due
    assert delays[:7] == [5, 30, 120, 600, 3600, 21600, 43200]
    assert set(delays[6:]) == {43200} and now <= event_at + timedelta(days=3) < now + timedelta(hours=12)


async def test_deliveries_pending_at_a_stop_are_made_after_a_restart(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/restart"))
    receiver.expect("/restart", secret, 500)
    event_id = await queue.test_event(webhook_id)
    first = await queue.start(schedule=Schedule(backoff=(0.5,)))
    await receiver.wait_for("/restart", 1)
    await first.stop()
    assert [job.attempts for job in await queue.jobs(webhook_id)] == [1]  # pending: the retry is queued
    later = await queue.test_event(webhook_id)  # and one more queued while nothing runs
    await asyncio.sleep(0.6)
    assert len(receiver.posts) == 1
    await queue.start()
    posts = await receiver.wait_for("/restart", 3)
    assert sorted(p.headers["webhook-id"] for p in posts) == sorted([event_id, event_id, later])
    assert all(p.verified for p in posts)
    await queue.wait_until(lambda: _no_jobs(queue, webhook_id))


async def test_two_dispatchers_deliver_each_of_50_jobs_exactly_once(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/race"))
    receiver.expect("/race", secret)
    # Slow enough that both take part even if one meets SQLite's write lock and pauses (1 s): alone, the
    # other needs 50 / 8 slots x 0.2 s = 1.25 s.
    receiver.endpoints["/race"].delay = 0.2
    event_ids = [await queue.test_event(webhook_id) for _ in range(50)]
    # Two engines, as two processes have: each dispatcher its own connections.
    other_engine = create_engine(str(queue.engine.url.render_as_string(hide_password=False)))
    try:
        other = Queue(other_engine, create_session_factory(other_engine), queue.vault, queue.org_id)
        await asyncio.gather(queue.start(idle_seconds=0.01, batch_size=4), other.start(idle_seconds=0.01, batch_size=4))
        await receiver.wait_for("/race", 50)
        await queue.wait_until(lambda: _no_jobs(queue, webhook_id))
        await asyncio.sleep(0.3)
        for dispatcher in other.dispatchers:
            await dispatcher.stop()
        for client in other.clients:
            await client.close()
    finally:
        await other_engine.dispose()
    received = Counter(p.headers["webhook-id"] for p in receiver.posts_to("/race"))
    assert received == Counter(event_ids)  # each once, none missing
    shares = [client.posts for client in queue.clients + other.clients]
    assert sum(shares) == 50 and min(shares) > 0, shares  # both took part
    deliveries = await queue.deliveries(webhook_id)
    assert len(deliveries) == 50 and {d.attempt for d in deliveries} == {1}


async def test_jobs_that_wait_for_a_slow_endpoint_past_their_lease_are_given_back_not_sent_twice(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/queueing"))
    receiver.expect("/queueing", secret)
    receiver.endpoints["/queueing"].delay = 0.4
    event_ids = [await queue.test_event(webhook_id) for _ in range(12)]
    # One POST at a time, 0.4 s each: the last four of one claim would begin 3.2 s in or later, past a
    # 3 s lease. The POST timeout leaves 0.6 s to spare on a loaded machine (a timeout is a retry, sent again).
    await queue.start(lease_seconds=3.0, timeout=1.0, per_endpoint=1)
    await receiver.wait_for("/queueing", 12, timeout=40)
    await queue.wait_until(lambda: _no_jobs(queue, webhook_id))
    await asyncio.sleep(0.5)
    sent = Counter(p.headers["webhook-id"] for p in receiver.posts_to("/queueing"))
    assert sent == Counter(event_ids)  # each once
    assert {d.attempt for d in await queue.deliveries(webhook_id)} == {1}  # a give-back counts no attempt


async def test_connections_are_reused_per_endpoint(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/reuse"))
    receiver.expect("/reuse", secret)
    await queue.start()
    for count in (1, 2, 3):
        await queue.test_event(webhook_id)
        await receiver.wait_for("/reuse", count)
    assert {p.connection for p in receiver.posts_to("/reuse")} == {1}


async def test_a_host_that_now_resolves_to_a_private_address_is_not_delivered_to(queue, receiver):
    """Accepted at create (the override was on, or DNS said otherwise then); refused at delivery."""
    literal_id, secret = await queue.webhook(receiver.url("/private"))
    receiver.expect("/private", secret)
    hooks = [literal_id, (await queue.webhook(f"http://localhost:{receiver.port}/private"))[0]]
    host = socket.gethostname()  # a name only the resolver (/etc/hosts here) makes loopback or private
    addresses = await resolve(host, 80)
    if addresses and all(address_refusal(address) for address in addresses):
        hooks.append((await queue.webhook(f"http://{host}:{receiver.port}/private"))[0])
    for webhook_id in hooks:
        await queue.test_event(webhook_id)
    await queue.start(allow_private=False)
    for webhook_id in hooks:
        await queue.wait_until(lambda webhook_id=webhook_id: _has_deliveries(queue, webhook_id, 1))
    literal, name, *resolved = [(await queue.deliveries(webhook_id))[0] for webhook_id in hooks]
    assert literal.error == "refused: 127.0.0.1 is a loopback address"
    assert name.error == "refused: localhost is a loopback name"
    for delivery in resolved:
        assert delivery.error.startswith(f"refused: {host} resolves to ")
    for delivery in (literal, name, *resolved):
        assert delivery.status_code is None and delivery.next_attempt_at is not None  # DNS may change back
    assert receiver.posts == []


async def test_a_disabled_webhooks_jobs_are_dropped_unsent(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/off"))
    receiver.expect("/off", secret)
    await queue.test_event(webhook_id)
    async with queue.session_factory() as session, session.begin():
        await session.execute(update(Webhook).where(Webhook.id == webhook_id).values(enabled=False))
    await queue.start()
    await queue.wait_until(lambda: _no_jobs(queue, webhook_id))
    await asyncio.sleep(0.2)
    assert receiver.posts == [] and await queue.deliveries(webhook_id) == []


async def test_a_deleted_webhook_gets_nothing(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/gone"))
    receiver.expect("/gone", secret)
    await queue.test_event(webhook_id)
    async with queue.session_factory() as session:
        await webhooks.delete_webhook(session, org_id=queue.org_id, webhook_id=webhook_id)
    assert await queue.jobs(webhook_id) == []
    await queue.start()
    await asyncio.sleep(0.3)
    assert receiver.posts == []


async def test_a_message_event_carries_the_event_and_the_message_as_the_api_shows_them(queue, receiver):
    wanted, secret = await queue.webhook(receiver.url("/sent"), events=["message.sent"])
    receiver.expect("/sent", secret)
    unwanted, _ = await queue.webhook(receiver.url("/bounced"), events=["message.bounced"])
    message_id = new_id("msg")
    event = EventRow(id=new_id("evt"), org_id=queue.org_id, message_id=message_id, type="sent")
    async with queue.session_factory() as session, session.begin():
        session.add(sent_message(message_id, queue.org_id))
    async with queue.engine.begin() as connection:
        await write_events(connection, [event])  # as the send pipeline does: the event and its jobs
    assert [job.event_type for job in await queue.jobs(wanted)] == ["message.sent"]
    assert await queue.jobs(unwanted) == []
    await queue.start()
    [post] = await receiver.wait_for("/sent", 1)
    body = post.event
    assert post.verified and post.headers["webhook-id"] == event.id
    assert body["type"] == "message.sent"
    assert body["data"]["event"]["id"] == event.id and body["data"]["event"]["type"] == "sent"
    assert body["data"]["event"]["messageId"] == message_id
    assert body["createdAt"] == body["data"]["event"]["createdAt"]
    async with queue.session_factory() as session:
        view = await get_message(session, org_id=queue.org_id, message_id=message_id)
    assert body["data"]["message"] == json.loads(mail_message(view).model_dump_json(by_alias=True))


async def test_a_retry_sends_the_bytes_of_the_failed_attempt_though_the_message_changed_since(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/changed"), events=["message.sent"])
    receiver.expect("/changed", secret, 500)
    message_id = new_id("msg")
    async with queue.session_factory() as session, session.begin():
        session.add(sent_message(message_id, queue.org_id))
    async with queue.engine.begin() as connection:
        await write_events(
            connection, [EventRow(id=new_id("evt"), org_id=queue.org_id, message_id=message_id, type="sent")]
        )
    await queue.start(schedule=Schedule(backoff=(1.0,)))
    [first] = await receiver.wait_for("/changed", 1)
    async with queue.session_factory() as session, session.begin():  # a bounce comes back before the retry
        await session.execute(
            update(Message).where(Message.id == message_id).values(status="bounced", last_event="bounced")
        )
    first_post, retry = await receiver.wait_for("/changed", 2)
    assert first_post.event["data"]["message"]["status"] == "sent"
    assert retry.status == 200 and retry.body == first.body  # the event as it was first sent, not rebuilt


async def test_suppression_created_carries_the_suppression_under_a_stable_event_id(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/sup"), events=["suppression.created"])
    receiver.expect("/sup", secret)
    async with queue.session_factory() as session:
        row = await add_suppression(session, org_id=queue.org_id, email="Gone@Example.com", note="left")
        await add_suppression(session, org_id=queue.org_id, email="gone@example.com")  # kept: no second event
    [job] = await queue.jobs(webhook_id)
    assert job.event_id == "evt_" + row.id.removeprefix("sup_") and job.event_type == "suppression.created"
    await queue.start()
    [post] = await receiver.wait_for("/sup", 1)
    assert post.verified and post.headers["webhook-id"] == job.event_id
    assert post.event["type"] == "suppression.created"
    suppression = post.event["data"]["suppression"]
    assert suppression == {
        "id": row.id,
        "orgId": queue.org_id,
        "email": "gone@example.com",
        "reason": "manual",
        "note": "left",
        "createdAt": suppression["createdAt"],
    }
    assert post.event["createdAt"] == suppression["createdAt"]


async def test_a_suppression_removed_before_its_first_attempt_is_logged_not_sent(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/undo"), events=["suppression.created"])
    receiver.expect("/undo", secret)
    async with queue.session_factory() as session:
        await add_suppression(session, org_id=queue.org_id, email="undo@example.com")
        await remove_suppression(session, org_id=queue.org_id, email="undo@example.com")
    await queue.start()
    await queue.wait_until(lambda: _has_deliveries(queue, webhook_id, 1))
    [delivery] = await queue.deliveries(webhook_id)
    assert "removed" in delivery.error and delivery.next_attempt_at is None
    assert receiver.posts == [] and await queue.jobs(webhook_id) == []


async def test_the_dispatcher_survives_a_database_outage(receiver, caplog, tmp_path):
    """A private PostgreSQL stopped under the dispatcher: one log line, no crash, delivery once it is back."""
    server = await asyncio.to_thread(PrivatePostgres().create)
    url = server.url.replace("postgresql://", "postgresql+asyncpg://")
    try:
        await asyncio.to_thread(upgrade_database, url)
        settings = load_settings({}, data_dir=tmp_path, database_url=url, secret_key=b"k", webhook_allow_private=True)
        engine = create_engine(url)
        session_factory = create_session_factory(engine)
        vault = KeyVault(settings.secret_key)
        async with session_factory() as session:
            org = await orgs.create_org(session, name="Outage")
        async with session_factory() as session:
            created = await webhooks.create_webhook(
                session, org_id=org.id, url=receiver.url("/outage"), vault=vault, allow_private=True
            )
        receiver.expect("/outage", created.secret)
        state = SimpleNamespace(engine=engine, vault=vault, settings=settings)
        dispatcher = await start(state, event_data=EVENT_DATA, idle_seconds=0.05)
        try:
            caplog.set_level(logging.WARNING, logger="orgmail.webhooks")
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(3)  # several polls meet the outage
            assert dispatcher.running
            unreachable = [r for r in caplog.records if "database unreachable" in r.getMessage()]
            assert len(unreachable) == 1 and not unreachable[0].exc_info
            await asyncio.to_thread(server.start)
            async with asyncio.timeout(60):
                while True:  # the first statements after a restart may meet dead pooled connections
                    try:
                        async with session_factory() as session:
                            await webhooks.send_test_event(session, org_id=org.id, webhook_id=created.webhook.id)
                        break
                    except Exception:
                        await asyncio.sleep(0.2)
            [post] = await receiver.wait_for("/outage", 1, timeout=60)
            assert post.verified and dispatcher.running
            assert any("reachable again" in r.getMessage() for r in caplog.records)
        finally:
            await dispatcher.stop()
            await engine.dispose()
    finally:
        try:
            server.stop()
        except Exception:
            pass
        await asyncio.to_thread(_remove, server)


def _remove(server: PrivatePostgres) -> None:
    import shutil

    shutil.rmtree(server.folder, ignore_errors=True)


async def test_a_claim_whose_bodies_cannot_be_made_is_given_back_not_counted(queue, receiver):
    webhook_id, secret = await queue.webhook(receiver.url("/given-back"))
    receiver.expect("/given-back", secret)
    dispatcher = await queue.start(lease_seconds=600)  # a lease left to run out would outlast the test
    real_body_sources, failures = dispatcher.queue.body_sources, []

    async def fails_once(**ids):
        if not failures:
            failures.append(ids)
            raise RuntimeError("the reads failed")
        return await real_body_sources(**ids)

    dispatcher.queue.body_sources = fails_once  # type: ignore[method-assign]
    await queue.test_event(webhook_id)
    await receiver.wait_for("/given-back", 1)
    await queue.wait_until(lambda: _logged(queue, webhook_id))
    [delivery] = await queue.deliveries(webhook_id)
    assert failures and delivery.attempt == 1 and delivery.status_code == 200


async def test_unexpected_errors_in_a_claim_are_logged_and_survived(queue, receiver, caplog):
    webhook_id, secret = await queue.webhook(receiver.url("/odd"))
    receiver.expect("/odd", secret)
    dispatcher = await queue.start()
    calls = 0
    claim = dispatcher._claim

    async def failing_once(limit: int):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return await claim(limit)

    dispatcher._claim = failing_once  # type: ignore[method-assign]
    await queue.test_event(webhook_id)
    await receiver.wait_for("/odd", 1)
    assert dispatcher.running and any("a bug" in r.getMessage() for r in caplog.records)


async def _logged(queue: Queue, webhook_id: str) -> bool:
    return bool(await queue.deliveries(webhook_id))
