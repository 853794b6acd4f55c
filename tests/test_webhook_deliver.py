"""Webhook delivery in a process of its own: `orgmail webhook deliver` (the real binary, a real signal)
delivers the shared queue; `orgmail serve` runs one beside its workers, niced, started again if it
dies and gone with `serve`; with ORGMAIL_WEBHOOK_DELIVERY=0 it queues events but delivers none."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from orgmail.app import create_app
from orgmail.config import load_settings
from orgmail.core import orgs, webhooks
from orgmail.db.session import create_engine, create_session_factory
from orgmail.db.tables import WebhookDelivery, WebhookJob
from orgmail.mail.dkim import KeyVault
from tests.fresh_database import fresh_database
from tests.processes import BIN, OrgmailServer, alive, children, wait_for
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
        own_session_nice = _autogroup_nice("self")
        process = subprocess.Popen(  # in this session, not leading one of its own
            [str(BIN / "orgmail"), "webhook", "deliver", "--nice", "3"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            [post] = await receiver.wait_for("/apart", 1, timeout=30)
            assert post.verified and post.headers["webhook-id"] == event_id
            assert os.getpriority(os.PRIO_PROCESS, process.pid) - os.getpriority(os.PRIO_PROCESS, 0) == 3
            assert _autogroup_nice("self") == own_session_nice  # a shared session's nice is left alone
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


async def _delivery_process(server: OrgmailServer, *, other_than: int | None = None) -> int:
    assert server.process is not None
    found: list[int] = []

    def started() -> bool:
        found[:] = [pid for pid, command in children(server.process.pid).items() if "webhook deliver" in command]
        return len(found) == 1 and found[0] != other_than

    await wait_for(started, timeout=20, what="serve's webhook delivery process")
    return found[0]


def _autogroup_nice(pid: int | str) -> int | None:
    """The nice of the process's session (its autogroup: `/autogroup-42 nice 19`); None where the session
    has no autogroup of its own (the file reads empty: init's session, in which CI's container runs)."""
    try:
        shown = Path(f"/proc/{pid}/autogroup").read_text().split()
    except OSError:
        return None
    return int(shown[-1]) if shown else None


async def _niced(pid: int, *, by: int, below: int) -> None:
    """The process lowers its priority as it starts (`webhook deliver --nice`): by `by`, below `below`'s,
    and, leading a session of its own, that session's too, so the priority counts against every other
    session on the host (with autogroup, a nice counts only within its session)."""

    def lowered() -> bool:
        return os.getpriority(os.PRIO_PROCESS, pid) - os.getpriority(os.PRIO_PROCESS, below) == by

    await wait_for(lowered, timeout=20, what=f"process {pid} to run {by} below its parent")
    assert os.getsid(pid) == pid
    if _autogroup_nice(pid) is not None:  # a kernel with autogroup gives a new session an autogroup of its own
        assert _autogroup_nice(pid) == by


def _served_env(url: str, tmp_path) -> dict[str, str]:
    return {
        "ORGMAIL_DATABASE_URL": url,
        "ORGMAIL_DATA_DIR": str(tmp_path),
        "ORGMAIL_SECRET_KEY": "served-delivery-secret",
        "ORGMAIL_WEBHOOK_ALLOW_PRIVATE": "1",
    }


async def test_serve_delivers_from_one_process_beside_its_workers_at_a_lower_priority(database_url, tmp_path, receiver):
    async with fresh_database(database_url, tmp_path, "served") as url:
        env = _served_env(url, tmp_path)
        server = OrgmailServer(env, tmp_path / "serve.log", options=("--workers", "2"))
        try:
            await server.start()
            assert server.process is not None
            delivery = await _delivery_process(server)
            await _niced(delivery, by=19, below=server.process.pid)  # ORGMAIL_WEBHOOK_NICE's default
            workers = [
                pid
                for pid, command in children(server.process.pid).items()
                if " serve " in command and "--parent" in command
            ]
            assert len(workers) == 2
            for worker in workers:  # the workers leave delivery to that process
                assert b"ORGMAIL_WEBHOOK_DELIVERY=0" in Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
            _webhook_id, event_id = await _queued_test_event(url, load_settings(env).secret_key, receiver, "/served")
            [post] = await receiver.wait_for("/served", 1, timeout=30)
            assert post.verified and post.headers["webhook-id"] == event_id
        finally:
            server.stop()


async def test_serve_starts_its_delivery_process_again_and_takes_it_along_when_it_goes(tmp_path):
    env = {**_served_env(f"sqlite+aiosqlite:///{tmp_path / 'orgmail.db'}", tmp_path), "ORGMAIL_WEBHOOK_NICE": "5"}
    server = OrgmailServer(env, tmp_path / "serve.log")
    try:
        await server.start()
        assert server.process is not None
        first = await _delivery_process(server)
        os.kill(first, signal.SIGKILL)
        second = await _delivery_process(server, other_than=first)  # after a second's pause
        await _niced(second, by=5, below=server.process.pid)
        assert "webhook delivery process exited (status -9); starting it again in 1 s" in server.log()

        server.process.kill()  # no chance to stop it: the process sees its parent gone
        await wait_for(lambda: not alive(second), timeout=15, what="the delivery process to stop")
        assert server.log().splitlines().count("stopped") == 1  # it stopped as on SIGTERM, not killed
    finally:
        server.stop()
