"""The webhook dispatcher (DESIGN.md §9): the long-lived worker that delivers the queue in
`webhook_jobs`. `handle = await start(app.state, event_data=…)` in the app's lifespan, once the
database is open; `await handle.stop()` before it closes.

A job's life:
1. Claim. One UPDATE … RETURNING, in a short transaction of its own, takes up to a batch of due
   jobs (`next_attempt_at <= now`), pushes their `next_attempt_at` one lease ahead and counts the
   attempt. On PostgreSQL the jobs are picked `FOR UPDATE SKIP LOCKED`, so the processes sharing the
   queue never wait for, nor take, one another's. On SQLite the same statement runs under SQLite's
   single write lock, which makes it atomic across processes too: one process is the embedded
   default, but a second dispatcher on the same file delivers nothing twice (the tests race two).
   A dispatcher that dies mid-attempt leaves its lease to run out, and the job is attempted again
   then: delivery is at least once.
2. Body. At the first attempt the JSON body is made (the event and its message as they are now)
   and stored in `payload` before anything is sent, so every retry sends the same bytes.
3. POST, signed with the webhook's secret (`mail.webhook_client`, which checks the address again).
4. Record. Every attempt writes a `webhook_deliveries` row. A 2xx deletes the job; anything else
   sets its next attempt by the backoff (5 s, 30 s, 2 min, 10 min, 1 h, 6 h, then every 12 h) until
   3 days after the event, when it is given up (deleted). A disabled webhook's jobs are dropped
   unsent; a deleted webhook's went with it.

A lost database is one log line and a growing pause (up to 30 s) between tries; the worker never
raises into the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orgmail.config import Settings
from orgmail.core.events import MessageEventView
from orgmail.core.messages import get_message
from orgmail.core.webhooks import SUPPRESSION_CREATED, WEBHOOK_TEST, EventData, SuppressionView
from orgmail.db.session import affected_rows, is_connection_failure
from orgmail.db.tables import MessageEvent, Suppression, Webhook, WebhookDelivery, WebhookJob, utcnow
from orgmail.errors import NotFound
from orgmail.ids import new_id
from orgmail.mail.dkim import KeyVault
from orgmail.mail.webhook_client import DeliveryResult, WebhookClient

log = logging.getLogger("orgmail.webhooks")

BACKOFF_SECONDS = (5.0, 30.0, 120.0, 600.0, 3600.0, 6 * 3600.0)  # after attempts 1 to 6
REPEAT_EVERY_SECONDS = 12 * 3600.0  # after that
GIVE_UP_AFTER_SECONDS = 3 * 86400.0  # since the event


class AppState(Protocol):
    """What the dispatcher takes from the app (`app.state`)."""

    session_factory: async_sessionmaker[AsyncSession]
    settings: Settings
    vault: KeyVault


@dataclass(frozen=True, slots=True)
class Schedule:
    """When the next attempt is due after a failed one, or None: given up."""

    backoff: Sequence[float] = BACKOFF_SECONDS
    repeat_every: float = REPEAT_EVERY_SECONDS
    give_up_after: float = GIVE_UP_AFTER_SECONDS

    def next_attempt(self, *, attempt: int, event_at: datetime, now: datetime) -> datetime | None:
        delay = self.backoff[attempt - 1] if attempt <= len(self.backoff) else self.repeat_every
        due = now + timedelta(seconds=delay)
        return due if due <= event_at + timedelta(seconds=self.give_up_after) else None


@dataclass(frozen=True, slots=True)
class _Job:
    event_id: str
    webhook_id: str
    org_id: str
    event_type: str
    payload: str | None
    attempt: int  # this attempt's number, counted at the claim
    created_at: datetime  # the event's time
    url: str | None = None  # None: the webhook is gone
    enabled: bool = False
    secret_encrypted: bytes = b""


class _Undeliverable(Exception):
    """The event's body cannot be made (what it is about no longer exists)."""


def _timestamp(moment: datetime) -> str:
    """ISO 8601 UTC as the API writes it (Pydantic): `2026-12-01T10:00:00.123456Z`."""
    return moment.isoformat().replace("+00:00", "Z")


class Dispatcher:
    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        vault: KeyVault,
        client: WebhookClient,
        event_data: EventData,
        schedule: Schedule = Schedule(),
        lease_seconds: float = 60.0,
        idle_seconds: float = 1.0,
        batch_size: int = 32,
        max_in_flight: int = 64,
        own_client: bool = False,
    ):
        self.session_factory = session_factory
        self.vault = vault
        self.client = client
        self.event_data = event_data
        self.schedule = schedule
        self.lease = timedelta(seconds=lease_seconds)
        self.idle_seconds = idle_seconds
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self._own_client = own_client
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._outage_since: datetime | None = None
        self._pause = 0.0

    # --- the loop ---------------------------------------------------------------------------------
    def begin(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Something was queued: look now rather than at the next idle poll."""
        self._wake.set()

    async def stop(self, *, grace_seconds: float | None = None) -> None:
        """Stop claiming; let attempts in flight finish (up to the POST timeout and a little more)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._in_flight:
            grace = self.client.timeout_seconds + 5.0 if grace_seconds is None else grace_seconds
            _done, pending = await asyncio.wait(set(self._in_flight), timeout=grace)
            for task in pending:  # their leases run out and they are attempted again
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._own_client:
            await self.client.close()

    async def _run(self) -> None:
        while True:
            free = self.max_in_flight - len(self._in_flight)
            if free <= 0:
                await asyncio.wait(set(self._in_flight), return_when=asyncio.FIRST_COMPLETED)
                continue
            wanted = min(free, self.batch_size)
            self._wake.clear()  # a wake-up from here on ends the idle wait below at once
            try:
                jobs = await self._claim(wanted)
            except Exception as exc:  # the worker outlives any failure; the claim is simply tried again
                await self._trouble(exc)
                continue
            self._recovered()
            for job in jobs:
                task = asyncio.create_task(self._attempt(job))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if len(jobs) < wanted:  # nothing more is due: idle until the next poll or a wake-up
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.idle_seconds)
            else:
                await asyncio.sleep(0)

    async def _trouble(self, exc: Exception) -> None:
        if is_connection_failure(exc):
            if self._outage_since is None:
                self._outage_since = utcnow()
                log.warning("webhook dispatcher: database unreachable (%s); retrying", exc.__class__.__name__)
        else:
            log.error("webhook dispatcher: claiming jobs failed: %s: %s", exc.__class__.__name__, exc)
        self._pause = min(30.0, max(1.0, self._pause * 2))
        await asyncio.sleep(self._pause)

    def _recovered(self) -> None:
        if self._outage_since is not None:
            log.warning("webhook dispatcher: database reachable again after %s", utcnow() - self._outage_since)
            self._outage_since = None
        self._pause = 0.0

    # --- one claim, one attempt -------------------------------------------------------------------
    async def _claim(self, limit: int) -> list[_Job]:
        now = utcnow()
        due = (
            select(WebhookJob.event_id, WebhookJob.webhook_id)
            .where(WebhookJob.next_attempt_at <= now)
            .order_by(WebhookJob.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer and no such clause
        )
        claim = (
            update(WebhookJob)
            .where(tuple_(WebhookJob.event_id, WebhookJob.webhook_id).in_(due))
            .values(next_attempt_at=now + self.lease, attempts=WebhookJob.attempts + 1)
            .returning(
                WebhookJob.event_id,
                WebhookJob.webhook_id,
                WebhookJob.org_id,
                WebhookJob.event_type,
                WebhookJob.payload,
                WebhookJob.attempts,
                WebhookJob.created_at,
            )
            .execution_options(synchronize_session=False)
        )
        async with self.session_factory() as session, session.begin():
            claimed = (await session.execute(claim)).all()
            if not claimed:
                return []
            webhooks = {
                row.id: row
                for row in (
                    await session.execute(
                        select(Webhook.id, Webhook.url, Webhook.enabled, Webhook.secret_encrypted).where(
                            Webhook.id.in_({row.webhook_id for row in claimed})
                        )
                    )
                ).all()
            }
        jobs = []
        for row in claimed:
            webhook = webhooks.get(row.webhook_id)
            jobs.append(
                _Job(
                    event_id=row.event_id,
                    webhook_id=row.webhook_id,
                    org_id=row.org_id,
                    event_type=row.event_type,
                    payload=row.payload,
                    attempt=row.attempts,
                    created_at=row.created_at,
                    url=webhook.url if webhook else None,
                    enabled=bool(webhook and webhook.enabled),
                    secret_encrypted=webhook.secret_encrypted if webhook else b"",
                )
            )
        return jobs

    async def _attempt(self, job: _Job) -> None:
        try:
            if job.url is None:
                return  # the webhook was deleted after the claim, and its jobs with it
            if not job.enabled:
                await self._drop(job)
                return
            try:
                body = job.payload if job.payload is not None else await self._store_body(job)
            except _Undeliverable as exc:
                await self._record(job, DeliveryResult(None, 0, str(exc)), give_up=True)
                return
            try:
                secret = self.vault.decrypt(job.secret_encrypted).decode()
            except Exception:  # Fernet's InvalidToken: encrypted under another secret key
                error = "the webhook's secret cannot be decrypted (has the service's secret key changed?)"
                await self._record(job, DeliveryResult(None, 0, error))
                return
            result = await self.client.post(job.url, secret=secret, event_id=job.event_id, body=body)
            await self._record(job, result)
        except Exception as exc:  # the lease runs out and the job is attempted again
            if is_connection_failure(exc):
                log.warning("webhook dispatcher: database unreachable (%s) during an attempt", exc.__class__.__name__)
            else:
                log.exception("webhook dispatcher: attempt %d of %s failed", job.attempt, job.event_id)

    async def _store_body(self, job: _Job) -> str:
        """Make the body once and keep it; if another dispatcher kept one first, that one is sent."""
        async with self.session_factory() as session, session.begin():
            body = await self._make_body(session, job)
            key = (WebhookJob.event_id == job.event_id, WebhookJob.webhook_id == job.webhook_id)
            stored = await session.execute(
                update(WebhookJob).where(*key, WebhookJob.payload.is_(None)).values(payload=body)
            )
            if affected_rows(stored) == 0:
                kept = await session.scalar(select(WebhookJob.payload).where(*key))
                body = kept or body
        return body

    async def _make_body(self, session: AsyncSession, job: _Job) -> str:
        if job.event_type.startswith("message."):
            event = await session.scalar(
                select(MessageEvent).where(MessageEvent.id == job.event_id, MessageEvent.org_id == job.org_id)
            )
            if event is None:
                raise _Undeliverable("the event no longer exists")
            try:
                message = await get_message(session, org_id=job.org_id, message_id=event.message_id)
            except NotFound:
                raise _Undeliverable("the event's message no longer exists") from None
            data = self.event_data.message_event(MessageEventView.of(event), message)
        elif job.event_type == SUPPRESSION_CREATED:
            suppression = await session.scalar(
                select(Suppression).where(
                    Suppression.id == "sup_" + job.event_id.partition("_")[2], Suppression.org_id == job.org_id
                )
            )
            if suppression is None:
                raise _Undeliverable("the suppression was removed before its event could be delivered")
            data = self.event_data.suppression_created(
                SuppressionView(
                    id=suppression.id,
                    org_id=suppression.org_id,
                    email=suppression.email,
                    reason=suppression.reason,
                    note=suppression.note,
                    created_at=suppression.created_at,
                )
            )
        elif job.event_type == WEBHOOK_TEST:
            data = self.event_data.webhook_test(job.webhook_id)
        else:
            raise _Undeliverable(f"unknown event type {job.event_type!r}")
        body = {"type": job.event_type, "createdAt": _timestamp(job.created_at), "data": data}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    async def _record(self, job: _Job, result: DeliveryResult, *, give_up: bool = False) -> None:
        """The attempt's delivery row, and the job deleted (delivered, given up) or rescheduled."""
        now = utcnow()
        next_at = None
        if not result.delivered and not give_up:
            next_at = self.schedule.next_attempt(attempt=job.attempt, event_at=job.created_at, now=now)
        error = result.error
        if error is not None and next_at is None and not give_up:
            error += "; given up: the retry period after the event is over"
        key = (WebhookJob.event_id == job.event_id, WebhookJob.webhook_id == job.webhook_id)
        try:
            async with self.session_factory() as session, session.begin():
                if next_at is None:
                    await session.execute(delete(WebhookJob).where(*key))
                else:  # unless another dispatcher claimed it since (its lease ran out): that one decides
                    await session.execute(
                        update(WebhookJob)
                        .where(*key, WebhookJob.attempts == job.attempt)
                        .values(next_attempt_at=next_at)
                    )
                await session.execute(
                    insert(WebhookDelivery).values(
                        id=new_id("whd"),
                        org_id=job.org_id,
                        webhook_id=job.webhook_id,
                        event_id=job.event_id,
                        event_type=job.event_type,
                        attempt=job.attempt,
                        status_code=result.status_code,
                        duration_ms=result.duration_ms,
                        error=error,
                        next_attempt_at=next_at,
                        created_at=now,
                    )
                )
        except IntegrityError:
            pass  # the webhook was deleted meanwhile, with its jobs and its delivery log

    async def _drop(self, job: _Job) -> None:
        async with self.session_factory() as session, session.begin():
            await session.execute(
                delete(WebhookJob).where(WebhookJob.event_id == job.event_id, WebhookJob.webhook_id == job.webhook_id)
            )


async def start(
    app_state: AppState,
    *,
    event_data: EventData,
    client: WebhookClient | None = None,
    schedule: Schedule = Schedule(),
    lease_seconds: float = 60.0,
    idle_seconds: float = 1.0,
    batch_size: int = 32,
) -> Dispatcher:
    """Start delivering; the handle's `stop()` ends it. Without a `client`, one is made from the
    settings (`webhook_allow_private`) and closed by `stop()`."""
    dispatcher = Dispatcher(
        session_factory=app_state.session_factory,
        vault=app_state.vault,
        client=client or WebhookClient(allow_private=app_state.settings.webhook_allow_private),
        event_data=event_data,
        schedule=schedule,
        lease_seconds=lease_seconds,
        idle_seconds=idle_seconds,
        batch_size=batch_size,
        own_client=client is None,
    )
    dispatcher.begin()
    return dispatcher
