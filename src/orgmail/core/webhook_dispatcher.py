"""The webhook dispatcher (DESIGN.md §9): the long-lived worker that delivers the queue in
`webhook_jobs`. `handle = await start(app.state, event_data=…)` in the app's lifespan (or in
`orgmail webhook deliver`, with `Resources`), once the database is open; `await handle.stop()` before
it closes. Its statements are `db.webhook_queue`'s.

A job's life:
1. Claim. One statement takes up to a batch of due jobs (`next_attempt_at <= now`), pushes their
   `next_attempt_at` one lease ahead and counts the attempt. On PostgreSQL the jobs are picked
   `FOR UPDATE SKIP LOCKED`, so the processes sharing the queue never wait for, nor take, one
   another's. On SQLite the same statement runs under SQLite's single write lock, which makes it
   atomic across processes too: one process is the embedded default, but a second dispatcher on
   the same file delivers nothing twice (the tests race two). A dispatcher that dies mid-attempt
   leaves its lease to run out, and the job is attempted again then: delivery is at least once.
2. Body. At the first attempt the JSON body is made (the event and its message as they are now);
   the bodies of a claimed batch are made together, from one read each for its events, their
   messages and its suppressions. A failed attempt keeps its body with the job (in the statement
   that reschedules it), so every retry sends the same bytes. When no failure is recorded (the
   dispatcher died mid-attempt, or the database was gone when it ended), the next attempt makes the
   body again: the same event, its message as it is then. (Storing every body before its first POST
   cost an UPDATE per delivery for those rare cases.)
3. POST, signed with the webhook's secret (`mail.webhook_client`, which checks the address again),
   at most `per_endpoint` at a time to one origin. A job that waited for its origin's slots until
   its lease could run out mid-POST is given back unsent (due at once, its attempt not counted), so
   no second claim sends it too.
4. Record. Every attempt writes a `webhook_deliveries` row. A 2xx deletes the job; anything else
   sets its next attempt by the backoff (5 s, 30 s, 2 min, 10 min, 1 h, 6 h, then every 12 h) until
   3 days after the event, when it is given up (deleted). The attempts that end while one group is
   being written are written together in the next (group commit, `db.sendlog.Batcher`). A disabled
   webhook's jobs are dropped unsent; a deleted webhook's went with it.

A lost database is one log line and a growing pause (up to 30 s) between tries; the worker never
raises into the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine

from orgmail.config import Settings
from orgmail.core.events import MessageEventView
from orgmail.core.messages import MessageView
from orgmail.core.webhooks import SUPPRESSION_CREATED, WEBHOOK_TEST, EventData, SuppressionView, suppression_of_event
from orgmail.db.sendlog import Batcher
from orgmail.db.session import is_connection_failure
from orgmail.db.tables import utcnow
from orgmail.db.webhook_queue import BodySources, ClaimedJob, EndedAttempt, Key, WebhookQueue, open_webhook_queue
from orgmail.ids import new_id
from orgmail.mail.dkim import KeyVault
from orgmail.mail.webhook_client import DeliveryResult, Signer, WebhookClient, signer_for

log = logging.getLogger("orgmail.webhooks")

BACKOFF_SECONDS = (5.0, 30.0, 120.0, 600.0, 3600.0, 6 * 3600.0)  # after attempts 1 to 6
REPEAT_EVERY_SECONDS = 12 * 3600.0  # after that
GIVE_UP_AFTER_SECONDS = 3 * 86400.0  # since the event
# After a claim that found some jobs but not a batch: look again this soon, not after a whole idle poll
# (a second). A claim costs about as much as its jobs' POSTs, so it should gather a batch: at 200
# sends/s a quarter of a second queues ~50 jobs, where 50 ms gave each claim ~5 (bench/send.py
# --feedback under py-spy: the claim's CPU per delivery 0.39 -> 0.30 ms; lag p50 ~100 ms higher).
BUSY_POLL_SECONDS = 0.25


class AppState(Protocol):
    """What the dispatcher takes from the app (`app.state`)."""

    engine: AsyncEngine
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


class _Undeliverable(Exception):
    """The event's body cannot be made (what it is about no longer exists)."""


Body = str | _Undeliverable  # what a claimed job is to send, or why it cannot be sent


@dataclass(frozen=True, slots=True)
class Attempted:
    """An attempt that ended: what came of it, whether the job is given up whatever the result
    (nothing could be sent), and the body to keep with the job if it is retried (None: it has one)."""

    job: ClaimedJob
    result: DeliveryResult
    give_up: bool = False
    body_to_keep: str | None = None


@dataclass(slots=True)
class Resources:
    """What the dispatcher takes from an app's state (`AppState`), for a process without an app."""

    engine: AsyncEngine
    settings: Settings
    vault: KeyVault


@functools.lru_cache(maxsize=4096)
def _origin(url: str) -> str:
    """`scheme://host:port` of a webhook URL, worked out once per URL (urlsplit costs more than a signature)."""
    return urlsplit(url)._replace(path="", query="", fragment="").geturl()


def _timestamp(moment: datetime) -> str:
    """ISO 8601 UTC as the API writes it (Pydantic): `2026-12-01T10:00:00.123456Z`."""
    return moment.isoformat().replace("+00:00", "Z")


def _body(job: ClaimedJob, data: str) -> str:
    """`{"type", "createdAt", "data"}`, compact, around the JSON of `data` (EventData's)."""
    return f'{{"type":{json.dumps(job.event_type)},"createdAt":"{_timestamp(job.created_at)}","data":{data}}}'


class Dispatcher:
    def __init__(
        self,
        *,
        queue: WebhookQueue,
        vault: KeyVault,
        client: WebhookClient,
        event_data: EventData,
        schedule: Schedule = Schedule(),
        lease_seconds: float = 60.0,
        idle_seconds: float = 1.0,
        batch_size: int = 32,
        max_in_flight: int = 64,
        per_endpoint: int = 8,
        own_client: bool = False,
    ):
        self.queue = queue
        self.vault = vault
        self.client = client
        self.event_data = event_data
        self.schedule = schedule
        self.lease = timedelta(seconds=lease_seconds)
        self.idle_seconds = idle_seconds
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.per_endpoint = per_endpoint
        self._own_client = own_client
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._outage_since: datetime | None = None
        self._pause = 0.0
        self._signers: dict[str, tuple[bytes, Signer]] = {}  # webhook id -> (encrypted secret, its signer)
        self._endpoints: dict[str, asyncio.Semaphore] = {}  # origin -> its POST slots
        # Attempts end one by one: each group of them waits 20 ms for company, so a busy queue is
        # recorded in a few statements (and commits) a second, not one per attempt or two. Two
        # attempts of one job (a lease ran out) are never in one group: a statement changes a job once.
        self._recorder: Batcher[Attempted, None] = Batcher(
            self._record_many, linger_seconds=0.02, key=lambda attempt: attempt.job.key
        )

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
        await self.queue.close()

    async def _run(self) -> None:
        while True:
            free = self.max_in_flight - len(self._in_flight)
            if free < min(self.batch_size, self.max_in_flight) // 2:  # claim in batches, not one by one
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
            for job, body in jobs:
                task = asyncio.create_task(self._attempt(job, body))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if not jobs:  # nothing is due: idle until the next poll or a wake-up
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.idle_seconds)
            elif len(jobs) < wanted:  # events are arriving (other processes queue them): look again soon
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=min(self.idle_seconds, BUSY_POLL_SECONDS))
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
    async def _claim(self, limit: int) -> list[tuple[ClaimedJob, Body | None]]:
        """Up to `limit` due jobs, leased to this dispatcher, each with its body: the one a failed
        attempt kept, or made now (from one read per kind of thing the batch's events are about);
        None for a job not to be sent. Claims whose bodies could not be made are given back, so a
        failure here costs no attempt and no lease."""
        now = utcnow()
        claimed = await self.queue.claim(now=now, lease_until=now + self.lease, limit=limit)
        first_attempts = [job for job in claimed if job.payload is None and job.url is not None and job.enabled]
        made: dict[Key, Body] = {}
        if first_attempts:
            try:
                made = await self._make_bodies(first_attempts)
            except BaseException:  # a stop (cancelled) included: the claims are due again at once
                with contextlib.suppress(Exception):  # the database is likely gone: the leases run out
                    await self.queue.release(claimed, now=utcnow())
                raise
        return [(job, job.payload if job.payload is not None else made.get(job.key)) for job in claimed]

    async def _attempt(self, job: ClaimedJob, body: Body | None) -> None:
        try:
            if job.url is None:
                return  # the webhook was deleted after the claim, and its jobs with it
            if not job.enabled:
                await self.queue.drop(job.key)
                return
            if body is None:
                return  # not expected: every job with a webhook has one; its lease runs out
            if isinstance(body, _Undeliverable):
                await self._recorder.submit(Attempted(job, DeliveryResult(None, 0, str(body)), give_up=True))
                return
            to_keep = body if job.payload is None else None
            signer = self._signer(job)
            if signer is None:
                error = "the webhook's secret cannot be decrypted (has the service's secret key changed?)"
                await self._recorder.submit(Attempted(job, DeliveryResult(None, 0, error), body_to_keep=to_keep))
                return
            async with self._endpoint_slots(job.url):
                result = (
                    await self.client.post(job.url, signer=signer, event_id=job.event_id, body=body)
                    if self._lease_lasts(job)
                    else None
                )
            if result is None:  # it waited for the endpoint's slots too long: claimed again, sent once
                await self.queue.release([job], now=utcnow())
                return
            await self._recorder.submit(Attempted(job, result, body_to_keep=to_keep))
        except Exception as exc:  # the lease runs out and the job is attempted again
            if is_connection_failure(exc):
                log.warning("webhook dispatcher: database unreachable (%s) during an attempt", exc.__class__.__name__)
            else:
                log.exception("webhook dispatcher: attempt %d of %s failed", job.attempt, job.event_id)

    def _lease_lasts(self, job: ClaimedJob) -> bool:
        """Whether the job's lease outlasts a POST begun now: one that ran out mid-POST would let
        another claim send the event again (and a body made again), so such a job is given back
        unsent instead (a claim of many jobs for one slow endpoint waits long for its slots)."""
        return utcnow() + timedelta(seconds=self.client.timeout_seconds + 1.0) < job.leased_until

    def _endpoint_slots(self, url: str) -> asyncio.Semaphore:
        """At most `per_endpoint` POSTs to one origin at a time: one slow endpoint cannot take every
        slot, none is flooded, and the client's pool keeps a few connections per host, not dozens."""
        origin = _origin(url)
        slots = self._endpoints.get(origin)
        if slots is None:
            slots = self._endpoints[origin] = asyncio.Semaphore(self.per_endpoint)
        return slots

    def _signer(self, job: ClaimedJob) -> Signer | None:
        """What signs for the webhook's secret, decrypted once per webhook (and again if it changes)."""
        cached = self._signers.get(job.webhook_id)
        if cached is not None and cached[0] == job.secret_encrypted:
            return cached[1]
        try:
            made = signer_for(self.vault.decrypt(job.secret_encrypted).decode())
        except Exception:  # Fernet's InvalidToken: encrypted under another secret key
            return None
        self._signers[job.webhook_id] = (job.secret_encrypted, made)
        return made

    async def _make_bodies(self, jobs: list[ClaimedJob]) -> dict[Key, Body]:
        sources = await self.queue.body_sources(
            event_ids={job.event_id for job in jobs if job.event_type.startswith("message.")},
            suppression_ids={
                suppression_of_event(job.event_id) for job in jobs if job.event_type == SUPPRESSION_CREATED
            },
        )
        bodies: dict[Key, Body] = {}
        for job in jobs:
            try:
                data = self._data(job, sources)
            except _Undeliverable as exc:
                bodies[job.key] = exc
                continue
            bodies[job.key] = _body(job, data)
        return bodies

    def _data(self, job: ClaimedJob, sources: BodySources) -> str:
        """The `data` of the job's event as JSON, from what the batch read (each checked to be the job's org's)."""
        if job.event_type.startswith("message."):
            event = sources.events.get(job.event_id)
            if event is None or event["org_id"] != job.org_id:
                raise _Undeliverable("the event no longer exists")
            message = sources.messages.get(event["message_id"])
            if message is None or message["org_id"] != job.org_id:
                raise _Undeliverable("the event's message no longer exists")
            return self.event_data.message_event(MessageEventView.of(event), MessageView.of(message))
        if job.event_type == SUPPRESSION_CREATED:
            suppression = sources.suppressions.get(suppression_of_event(job.event_id))
            if suppression is None or suppression["org_id"] != job.org_id:
                raise _Undeliverable("the suppression was removed before its event could be delivered")
            return self.event_data.suppression_created(SuppressionView.of(suppression))
        if job.event_type == WEBHOOK_TEST:
            return self.event_data.webhook_test(job.webhook_id)
        raise _Undeliverable(f"unknown event type {job.event_type!r}")

    async def _record_many(self, attempts: list[Attempted]) -> list[None]:
        """The attempts' delivery rows, and their jobs deleted (delivered, given up) or rescheduled
        with their bodies, at once (group commit: the attempts that end while one group is written go
        in the next)."""
        now = utcnow()
        ended = []
        for attempt in attempts:
            job, result = attempt.job, attempt.result
            next_at = None
            if not result.delivered and not attempt.give_up:
                next_at = self.schedule.next_attempt(attempt=job.attempt, event_at=job.created_at, now=now)
            error = result.error
            if error is not None and next_at is None and not attempt.give_up:
                error += "; given up: the retry period after the event is over"
            ended.append(
                EndedAttempt(
                    job=job,
                    delivery_id=new_id("whd"),
                    status_code=result.status_code,
                    duration_ms=result.duration_ms,
                    error=error,
                    next_attempt_at=next_at,
                    created_at=now,
                    body=attempt.body_to_keep,
                )
            )
        await self.queue.record(ended)
        return [None] * len(attempts)


async def start(
    app_state: AppState,
    *,
    event_data: EventData,
    client: WebhookClient | None = None,
    schedule: Schedule = Schedule(),
    lease_seconds: float = 60.0,
    idle_seconds: float = 1.0,
    batch_size: int = 32,
    per_endpoint: int = 8,
) -> Dispatcher:
    """Start delivering; the handle's `stop()` ends it. The queue is opened on the app's engine (and
    closed by `stop()`); without a `client`, one is made from the settings (`webhook_allow_private`)
    and closed by `stop()`."""
    dispatcher = Dispatcher(
        queue=await open_webhook_queue(app_state.engine),
        vault=app_state.vault,
        client=client or WebhookClient(allow_private=app_state.settings.webhook_allow_private),
        event_data=event_data,
        schedule=schedule,
        lease_seconds=lease_seconds,
        idle_seconds=idle_seconds,
        batch_size=batch_size,
        per_endpoint=per_endpoint,
        own_client=client is None,
    )
    dispatcher.begin()
    return dispatcher
