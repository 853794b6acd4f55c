"""Benchmark: the webhook dispatcher alone, draining a queue of message events to a local receiver.

    .venv/bin/python bench/webhooks.py                      # PostgreSQL and SQLite, 2,000 events
    .venv/bin/python bench/webhooks.py --db postgresql --events 5000 --profile 25

It provisions an org and a verified domain on a fresh database, a webhook for every event type to
the receiver of bench/feedback.py (its own process: HTTP/1.1 keep-alive, 204 to every POST, every
Nth signature checked with `standardwebhooks`), writes N sent messages with their `sent` events and
webhook jobs in bulk (as the send log would), then starts one dispatcher in this process and times
the drain: deliveries per second, this process's CPU per delivery (nothing else runs in it; the
receiver's is not counted) and, on PostgreSQL, the local server's. `--profile N` prints the N functions with
the most cumulative time (cProfile) over the drain.

`--through-send-log` measures what a send's delivery costs beside its outcome instead: N outcomes
written through the send log as sends write them (the `queued` row, then its `sent` outcome with the
event, 64 at a time), twice a round, alternating: with no webhook (the writes alone), and with a
webhook and a dispatcher delivering its jobs as they are written. CPU of this process and of
PostgreSQL per event, until every event is delivered; the second less the first is what a delivery
costs, without the HTTP server, DKIM and SMTP that make bench/send.py's figures noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import send  # bench/send.py: databases, provisioning, the receiver

from orgmail.api.webhooks import EVENT_DATA
from orgmail.config import load_settings
from orgmail.core import webhook_dispatcher
from orgmail.core.webhooks import create_webhook
from orgmail.db.sendlog import EventRow, SendLogRow, open_send_log
from orgmail.db.session import create_engine, create_session_factory
from orgmail.db.tables import utcnow
from orgmail.ids import new_id
from orgmail.mail.dkim import KeyVault


def _row(org_id: str, domain: str) -> SendLogRow:
    row_id, now = new_id("msg"), utcnow()
    return SendLogRow(
        id=row_id,
        org_id=org_id,
        from_address=f"Shop <orders@{domain}>",
        to=["customer@example.net"],
        cc=[],
        bcc=[],
        reply_to=[],
        subject="Your order has shipped",
        status="sent",
        message_id=f"<{row_id}@{domain}>",
        domain=domain,
        dkim_selector="bench",
        suppressed_recipients=[],
        rejected_recipients=[],
        tags={"order": "42"},
        size_bytes=2300,
        relay_response="250 2.0.0 Ok: queued",
        error_code=None,
        error_message=None,
        idempotency_key=None,
        request_hash="h",
        raw=b"x",
        created_at=now,
        updated_at=now,
        sent_at=now,
        last_event="sent",
    )


async def _queue(settings, *, org_id: str, domain: str, count: int) -> None:
    """`count` sent messages, each with its `sent` event and webhook job, written as sends write them."""
    engine = create_engine(settings.database_url)
    log = await open_send_log(settings.database_url, engine)
    try:
        for start in range(0, count, 200):
            rows = [_row(org_id, domain) for _ in range(min(200, count - start))]
            sent = [EventRow(id=new_id("evt"), org_id=org_id, message_id=row.id, type="sent") for row in rows]
            await asyncio.gather(*(log.insert(row, events=[event]) for row, event in zip(rows, sent, strict=True)))
    finally:
        await log.close()
        await engine.dispose()


async def _write_outcomes(log, *, org_id: str, domain: str, count: int, concurrency: int = 64) -> None:
    """`count` sends' rows and outcomes, `concurrency` sends at a time, each as the pipeline writes it."""

    async def one() -> None:
        row = _row(org_id, domain)
        row.status, row.sent_at, row.last_event, row.relay_response = "queued", None, None, None
        assert await log.insert(row)
        event = EventRow(id=new_id("evt"), org_id=org_id, message_id=row.id, type="sent")
        sent = {"status": "sent", "sent_at": utcnow(), "relay_response": "250 2.0.0 Ok: queued"}
        assert await log.update(row.id, sent, events=[event])

    for start in range(0, count, concurrency):
        await asyncio.gather(*(one() for _ in range(min(concurrency, count - start))))


@dataclass
class _Bench:
    """A fresh database with an org, its verified domain and the service's settings, and a port for
    the receiver: what both modes start from."""

    settings: Any
    engine: Any
    vault: KeyVault
    org_id: str
    domain: str
    port: int
    database: str | None  # PostgreSQL's, dropped by `close`

    @classmethod
    async def set_up(cls, kind: str, history: int) -> _Bench:
        data_dir = Path(tempfile.mkdtemp(prefix="orgmail-bench-webhooks-"))
        url, database = await send.create_database(kind, data_dir)
        env = {"ORGMAIL_DATA_DIR": str(data_dir), "ORGMAIL_DATABASE_URL": url, "ORGMAIL_SECRET_KEY": "bench-secret"}
        _key, domain = await send.provision(env, history=history)
        settings = load_settings(env, webhook_allow_private=True)
        engine = create_engine(settings.database_url)
        async with create_session_factory(engine)() as session:
            org_id = (await session.execute(_first_org())).scalar_one()
        return cls(settings, engine, KeyVault(settings.secret_key), org_id, domain, send.free_port(), database)

    async def close(self) -> None:
        await self.engine.dispose()
        await send.drop_database(self.database)

    async def webhook_secret(self) -> str:
        """A webhook for every event to the receiver's port; its secret."""
        async with create_session_factory(self.engine)() as session:
            created = await create_webhook(
                session,
                org_id=self.org_id,
                url=f"http://127.0.0.1:{self.port}/hook",
                vault=self.vault,
                allow_private=True,
            )
        return created.secret


async def run_through_send_log(kind: str, *, variant: str, events: int, verify_every: int, history: int) -> dict:
    """One variant of `--through-send-log`: "writes only" or "delivered"."""
    bench = await _Bench.set_up(kind, history)
    settings, engine, vault, org_id, domain = bench.settings, bench.engine, bench.vault, bench.org_id, bench.domain
    receiver = None
    try:
        log = await open_send_log(settings.database_url, engine)
        await _write_outcomes(log, org_id=org_id, domain=domain, count=500)  # warm: pools, statement caches
        dispatcher = None
        if variant != "writes only":
            receiver, received = await send.start_receiver(bench.port, await bench.webhook_secret(), verify_every)
            dispatcher = await webhook_dispatcher.start(
                webhook_dispatcher.Resources(engine, settings, vault), event_data=EVENT_DATA
            )
        postgres_before = send.cpu_by_pid(send.postgres_pids()) if kind == "postgresql" else {}
        cpu_before, began = time.process_time(), time.perf_counter()
        await _write_outcomes(log, org_id=org_id, domain=domain, count=events)
        written = time.perf_counter() - began
        if dispatcher is not None:
            deadline = time.perf_counter() + max(60.0, events / 20)
            while received.value < events and time.perf_counter() < deadline:
                await asyncio.sleep(0.01)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_before
        postgres_cpu = (
            send.cpu_used_between(postgres_before, send.cpu_by_pid(send.postgres_pids())) if postgres_before else None
        )
        if dispatcher is not None:
            await dispatcher.stop()
        await log.close()
        return {
            "db": kind,
            "variant": variant.replace(" ", "_"),
            "events": events,
            "delivered": received.value if dispatcher is not None else 0,
            "writes_per_s": round(events / written, 1),
            "seconds_to_deliver_all": round(elapsed, 2),
            "cpu_ms_per_event": round(cpu * 1000 / events, 3),
            **({"postgresql_cpu_ms_per_event": round(postgres_cpu * 1000 / events, 3)} if postgres_cpu else {}),
        }
    finally:
        if receiver is not None:
            receiver.terminate()
        await bench.close()


async def _depth(settings) -> int:
    from sqlalchemy import func, select

    from orgmail.db.tables import WebhookJob

    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(WebhookJob)) or 0)
    finally:
        await engine.dispose()


async def run_one(kind: str, *, events: int, verify_every: int, profile: int, history: int) -> dict:
    bench = await _Bench.set_up(kind, history)
    settings, engine, vault, org_id, domain = bench.settings, bench.engine, bench.vault, bench.org_id, bench.domain
    receiver = None
    try:
        receiver, received = await send.start_receiver(bench.port, await bench.webhook_secret(), verify_every)
        await _queue(settings, org_id=org_id, domain=domain, count=events)

        state = webhook_dispatcher.Resources(engine, settings, vault)
        profiler = cProfile.Profile() if profile else None
        postgres_before = send.cpu_by_pid(send.postgres_pids()) if kind == "postgresql" else {}
        cpu_before, began = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        dispatcher = await webhook_dispatcher.start(state, event_data=EVENT_DATA, idle_seconds=0.05)
        deadline = began + max(60.0, events / 20)
        while received.value < events and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_before
        postgres_cpu = (
            send.cpu_used_between(postgres_before, send.cpu_by_pid(send.postgres_pids())) if postgres_before else None
        )
        await dispatcher.stop()
        if profiler:
            profiler.disable()
        left = await _depth(settings)
        stats = await send.receiver_stats(bench.port)
        await engine.dispose()
        result = {
            "db": kind,
            "events": events,
            "delivered": received.value,
            "left_in_queue": left,
            "seconds": round(elapsed, 2),
            "deliveries_per_s": round(received.value / elapsed, 1),
            "cpu_ms_per_delivery": round(cpu * 1000 / max(1, received.value), 2),
            **(
                {"postgresql_cpu_ms_per_delivery": round(postgres_cpu * 1000 / max(1, received.value), 2)}
                if postgres_cpu is not None
                else {}
            ),
            "duplicates": stats["duplicates"],
            "signatures_checked": stats["signatures_checked"],
            "signatures_failed": stats["signatures_failed"],
        }
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(
                profile
            )
            result["profile"] = out.getvalue()
        return result
    finally:
        if receiver is not None:
            receiver.terminate()
        await bench.close()


def _first_org():
    from sqlalchemy import select

    from orgmail.db.tables import Org

    return select(Org.id).limit(1)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--verify-every", type=int, default=50, help="the receiver checks every Nth signature")
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions (cProfile)")
    parser.add_argument(
        "--through-send-log", action="store_true", help="what a delivery costs beside its send's outcome (above)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="with --through-send-log: rounds of the two")
    parser.add_argument(
        "--history", type=int, default=50_000, help="messages the org sent before the run (bench/history.py)"
    )
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}", flush=True)
    if args.through_send_log:
        variants = ["writes only", "delivered"]
        for round_ in range(args.rounds):
            for variant in variants if round_ % 2 == 0 else variants[::-1]:
                result = await run_through_send_log(
                    "postgresql" if args.db == "both" else args.db,  # one database: the comparison is within it
                    variant=variant,
                    events=args.events,
                    verify_every=args.verify_every,
                    history=args.history,
                )
                print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
        return
    for kind in ("postgresql", "sqlite") if args.db == "both" else (args.db,):
        result = await run_one(
            kind, events=args.events, verify_every=args.verify_every, profile=args.profile, history=args.history
        )
        profile = result.pop("profile", None)
        print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
        if profile:
            print(profile)


if __name__ == "__main__":
    asyncio.run(main())
