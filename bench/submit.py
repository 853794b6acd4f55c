"""Benchmark: signed messages per second over SMTP submission (DESIGN.md §10), beside the HTTP figure.

    .venv/bin/python bench/submit.py                                   # PostgreSQL, 1 worker, 10 s each
    .venv/bin/python bench/submit.py --db sqlite --duration 5 --concurrency 16

Reuses bench/send.py's parts: the aiosmtpd sink (its own process) as the relay, the provisioning, the
CPU accounting and the wrk run for the HTTP figure. It starts `orgmail serve` with
ORGMAIL_SUBMISSION_LISTEN on loopback (no TLS: the HTTP run has none either, and loopback may AUTH
in the clear), then, for the same duration and concurrency:

- HTTP: `POST /v1/mail/messages/send` flat out with wrk (bench/send.py's `flat_out`);
- SMTP: C persistent connections (aiosmtplib, in a process of their own so their CPU is counted
  apart), each authenticated once with the API key, then submitting one ~2 KB message after another,
  each with its own Message-ID and recipient, waiting for the 250 (which comes after the relay's).

Printed: messages/s for each door, and CPU ms per message of the service, the sink, PostgreSQL and
the load generator, which says where the time goes. What differs between the doors, per message:
SMTP takes four round trips (MAIL, RCPT, DATA and the message) where HTTP takes one; RCPT looks the
recipient up in the suppressions and the Message-ID is looked up for a resubmission (two statements
HTTP does not make); the service parses the submitted bytes (stdlib `email`) where HTTP builds them;
and the load generator is Python (aiosmtplib) on the same two cores, where HTTP's is wrk (C). The
PostgreSQL figure counts every `postgres` process on the machine, other users' included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import send  # bench/send.py, beside this file

TEXT = send.TEXT


def _message(domain: str, n: int, worker: int) -> bytes:
    return (
        f"From: Shop <orders@{domain}>\r\nTo: customer{n}@example.net\r\nSubject: Your order has shipped\r\n"
        f"Message-ID: <bench-{worker}-{n}-{time.time_ns()}@client.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + TEXT.replace("\n", "\r\n")
    ).encode()


def _smtp_load(port: int, key: str, domain: str, connections: int, seconds: float, out) -> None:
    """The SMTP clients (their own process): figures written to `out` as JSON."""
    import aiosmtplib

    async def connection(index: int, deadline: float, latencies: list[float], failures: list[str]) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, use_tls=False, timeout=30)
        await client.connect()
        await client.login("apikey", key)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            started = time.monotonic()
            try:
                await client.sendmail("app@client.example", [f"customer{n}@example.net"], _message(domain, n, index))
            except aiosmtplib.SMTPException as exc:
                failures.append(str(exc)[:200])
                continue
            latencies.append(time.monotonic() - started)
        await client.quit()

    async def main() -> dict:
        latencies: list[float] = []
        failures: list[str] = []
        started = time.monotonic()
        await asyncio.gather(*(connection(i, started + seconds, latencies, failures) for i in range(connections)))
        elapsed = time.monotonic() - started
        latencies.sort()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "sends": len(latencies),
            "sends_per_s": round(len(latencies) / elapsed, 1),
            "closed_loop_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
            "closed_loop_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1) if latencies else None,
            "failures": failures[:5],
            "failure_count": len(failures),
            "load_generator_cpu_s": usage.ru_utime + usage.ru_stime,
        }

    try:
        import uvloop

        figures = uvloop.run(main())
    except ImportError:  # pragma: no cover
        figures = asyncio.run(main())
    Path(out).write_text(json.dumps(figures))


def smtp_flat_out(port: int, key: str, domain: str, *, seconds: float, concurrency: int, workdir: Path) -> dict:
    out = workdir / "smtp-figures.json"
    # Spawned, not forked: the caller's event loop (running in this process) must not be inherited.
    process = multiprocessing.get_context("spawn").Process(
        target=_smtp_load, args=(port, key, domain, concurrency, seconds, out)
    )
    process.start()
    process.join(seconds + 60)
    if process.exitcode != 0:
        raise RuntimeError(f"the SMTP load generator failed (exit {process.exitcode})")
    return json.loads(out.read_text())


async def measured(run, *, service_pids: list[int], sink, delivered, kind: str) -> dict:
    """One run, with the CPU each side used per message."""
    before = (send.cpu_seconds(service_pids), send.cpu_by_pid([sink.pid]), send.cpu_by_pid(send.postgres_pids()))
    sunk_before = delivered.value
    figures = await asyncio.to_thread(run)
    after = (send.cpu_seconds(service_pids), send.cpu_by_pid([sink.pid]), send.cpu_by_pid(send.postgres_pids()))
    figures["relay_received"] = delivered.value - sunk_before
    sends = max(1, figures["sends"])
    per_send = lambda seconds: round(seconds * 1000 / sends, 2)  # noqa: E731
    figures["cpu_ms_per_send"] = {
        "service": per_send(after[0] - before[0]),
        "smtp_sink": per_send(after[1].get(sink.pid, 0.0) - before[1].get(sink.pid, 0.0)),
        **({"postgresql": per_send(send.cpu_used_between(before[2], after[2]))} if kind == "postgresql" else {}),
        "load_generator": per_send(figures.pop("load_generator_cpu_s")),
    }
    return figures


async def run_one(kind: str, args) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix=f"orgmail-bench-submit-{kind}-"))
    script = data_dir / "send.lua"
    script.write_text(send.WRK_SCRIPT)
    database_url, pg_name = await send.create_database(kind, data_dir)
    sink_port, http_port, smtp_port = send.free_port(), send.free_port(), send.free_port()
    delivered = multiprocessing.Value("l", 0)
    sink = multiprocessing.Process(target=send._sink, args=(sink_port, delivered), daemon=True)
    sink.start()
    env = send.service_env(data_dir, database_url, sink_port=sink_port, pool=args.pool)
    env["ORGMAIL_SUBMISSION_LISTEN"] = f"127.0.0.1:{smtp_port}"
    server = None
    try:
        key, domain = await send.provision(env)
        server = await send.start_service(env, port=http_port, workers=args.workers, log=data_dir / "server.log")
        base = f"http://127.0.0.1:{http_port}"
        service_pids = send.process_tree(server.pid)
        common = dict(service_pids=service_pids, sink=sink, delivered=delivered, kind=kind)

        def http() -> dict:
            return send.flat_out(base, key, domain, seconds=args.duration, concurrency=args.concurrency, script=script)

        def smtp() -> dict:
            return smtp_flat_out(
                smtp_port, key, domain, seconds=args.duration, concurrency=args.concurrency, workdir=data_dir
            )

        # Warm-ups (pools, caches, the sender-domain cache), then the measured runs.
        send.flat_out(base, key, domain, seconds=1, concurrency=args.concurrency, script=script)
        smtp_flat_out(smtp_port, key, domain, seconds=1, concurrency=args.concurrency, workdir=data_dir)
        return {
            "database": kind,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "seconds": args.duration,
            "http": await measured(http, **common),
            "smtp": await measured(smtp, **common),
        }
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(30)
        sink.terminate()
        await send.drop_database(pg_name)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["postgresql", "sqlite", "both"], default="postgresql")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10, help="seconds of each flat-out run")
    parser.add_argument("--concurrency", type=int, default=16, help="connections in flight, for both doors")
    parser.add_argument("--pool", type=int, default=4, help="relay connections per worker")
    args = parser.parse_args()
    for kind in ["postgresql", "sqlite"] if args.db == "both" else [args.db]:
        result = await run_one(kind, args)
        http, smtp = result["http"], result["smtp"]
        print(json.dumps(result, indent=2))
        print(
            f"{kind}: HTTP {http['sends_per_s']} msg/s, SMTP {smtp['sends_per_s']} msg/s "
            f"({round(100 * smtp['sends_per_s'] / max(http['sends_per_s'], 0.1))}% of HTTP); "
            f"service CPU ms/msg: HTTP {http['cpu_ms_per_send']['service']}, SMTP {smtp['cpu_ms_per_send']['service']}"
        )


if __name__ == "__main__":
    asyncio.run(main())
