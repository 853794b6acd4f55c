"""Webhook delivery in a process of its own: `orgmail webhook deliver` (the real binary, a real signal)
delivers the shared queue, and `orgmail serve` with ORGMAIL_WEBHOOK_DELIVERY=0 queues events but
leaves their delivery to it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from dataclasses import replace

from sqlalchemy import select

from orgmail.app import create_app
from orgmail.config import load_settings
from orgmail.core import orgs, webhooks
from orgmail.db.session import create_engine, create_session_factory
from orgmail.db.tables import WebhookDelivery, WebhookJob
from orgmail.mail.dkim import KeyVault
from tests.fresh_database import fresh_database
from tests.processes import BIN
from tests.webhook_receiver import WebhookReceiver


async def _queued_test_event(url: str, secret_key: bytes, receiver: WebhookReceiver, path: str) -> tuple[str, str]:
    """An org with a webhook to `receiver` at `path`, and a test event queued for it: (webhook id, event id)."""
    engine = create_engine(url)
    try:
        session_factory = create_session_factory(engine)
        async with session_factory() as session:
            org = await orgs.create_org(session, name="Apart")
        async with session_factory() as session:
            created = await webhooks.create_webhook(
                session, org_id=org.id, url=receiver.url(path), vault=KeyVault(secret_key), allow_private=True
            )
        receiver.expect(path, created.secret)
        async with session_factory() as session:
            event_id = await webhooks.send_test_event(session, org_id=org.id, webhook_id=created.webhook.id)
        return created.webhook.id, event_id
    finally:
        await engine.dispose()


async def _rows(url: str, table, webhook_id: str) -> list:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            return list(await session.scalars(select(table).where(table.webhook_id == webhook_id)))
    finally:
        await engine.dispose()


async def test_webhook_deliver_delivers_the_queue_until_sigterm(database_url, tmp_path, receiver):
    async with fresh_database(database_url, tmp_path, "deliver") as url:
        env = {
            "ORGMAIL_DATABASE_URL": url,
            "ORGMAIL_DATA_DIR": str(tmp_path),
            "ORGMAIL_SECRET_KEY": "deliver-apart-secret",
            "ORGMAIL_WEBHOOK_ALLOW_PRIVATE": "1",
        }
        webhook_id, event_id = await _queued_test_event(url, load_settings(env).secret_key, receiver, "/apart")
        process = subprocess.Popen(
            [str(BIN / "orgmail"), "webhook", "deliver"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            [post] = await receiver.wait_for("/apart", 1, timeout=30)
            assert post.verified and post.headers["webhook-id"] == event_id
            for _ in range(100):  # the attempt is recorded (group commit: within a few tens of ms)
                if await _rows(url, WebhookDelivery, webhook_id):
                    break
                await asyncio.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            _stdout, stderr = await asyncio.to_thread(process.communicate, timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, stderr
        assert "delivering webhooks from" in stderr and "stopped" in stderr and "Traceback" not in stderr
        [delivery] = await _rows(url, WebhookDelivery, webhook_id)
        assert (delivery.event_id, delivery.attempt, delivery.status_code) == (event_id, 1, 200)
        assert await _rows(url, WebhookJob, webhook_id) == []


async def test_serve_with_delivery_off_queues_events_and_delivers_none(settings, database_url, tmp_path, receiver):
    async with fresh_database(database_url, tmp_path, "no_delivery") as url:
        application = create_app(replace(settings, database_url=url, webhook_delivery=False))
        async with application.router.lifespan_context(application):
            assert application.state.webhook_dispatcher is None
            webhook_id, _event_id = await _queued_test_event(url, settings.secret_key, receiver, "/left")
            await asyncio.sleep(1.5)  # longer than a dispatcher's idle poll
        [job] = await _rows(url, WebhookJob, webhook_id)
        assert job.attempts == 0 and receiver.posts_to("/left") == []
