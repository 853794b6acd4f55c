"""Benchmark: signed sends end to end, over HTTP, through the real service to a real SMTP sink.

    .venv/bin/python bench/send.py                       # PostgreSQL and SQLite, 2 workers
    .venv/bin/python bench/send.py --db postgresql --workers 2 --requests 6000 --concurrency 64

For each database it starts `orgmail serve` (uvicorn, `--workers N`) on a fresh database, an aiosmtpd
sink on loopback (its own process) as the relay, and drives `POST /v1/mail/messages/send` with httpx:
first flat out (N requests, C in flight) for throughput, then at a fixed rate for latency. Beside
them, measured in the same run: the single-core RSA-2048 sign rate of OpenSSL (`openssl speed`, and
`cryptography` in a loop: the physical limit of a signing send) and dkimpy's own `dkim.sign` on the
same message (pure-Python RSA: what a naive implementation gets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("ORGMAIL_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
TEXT = ("Hello,\n\nyour order has shipped and is on its way. " * 30)[:1500] + "\n"  # ~2 KB signed mail


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the SMTP sink (its own process, as a smarthost would be) ------------------------------------
def _sink(port: int, counter) -> None:
    from aiosmtpd.smtp import SMTP

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            with counter.get_lock():
                counter.value += 1
            return "250 2.0.0 Ok: queued"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Sink(), hostname="sink.test"), "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())


# --- reference rates ------------------------------------------------------------------------------
def openssl_speed() -> float | None:
    if not shutil.which("openssl"):
        return None
    out = subprocess.run(["openssl", "speed", "-seconds", "3", "rsa2048"], capture_output=True, text=True).stdout
    match = re.search(r"^rsa\s+2048 bits\s+\S+s\s+\S+s\s+([\d.]+)", out, re.M)
    return float(match.group(1)) if match else None


def message_bytes(domain: str) -> bytes:
    from datetime import datetime, timezone

    from orgmail.addresses import parse_mailbox
    from orgmail.mail import mime

    return mime.build(mime.Draft(
        sender=parse_mailbox(f"Shop <orders@{domain}>"), to=[parse_mailbox("customer@example.net")],
        subject="Your order has shipped", message_id=f"<bench@{domain}>", date=datetime.now(timezone.utc), text=TEXT,
    ))


def sign_rates(seconds: float = 3.0) -> dict[str, float]:
    """Signatures per second on one core, on the benchmark's own message."""
    import dkim as dkimpy
    from cryptography.hazmat.primitives import serialization

    from orgmail.mail import dkim
    from orgmail.mail.dkim import SigningKey, generate_keys

    generated = generate_keys()
    keys = [
        SigningKey(k.selector, k.algorithm, serialization.load_der_private_key(k.private_der, None)) for k in generated
    ]
    message = message_bytes("bench.example")
    rsa_pem = keys[0].private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )

    def rate(work) -> float:
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            work()
            count += 1
        return count / (time.perf_counter() - started)

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return {
        "cryptography RSA-2048 sign/s": rate(lambda: keys[0].private_key.sign(b"x" * 32, padding.PKCS1v15(), hashes.SHA256())),
        "orgmail dkim.sign RSA+Ed25519 messages/s": rate(lambda: dkim.sign(message, domain="bench.example", keys=keys)),
        "dkimpy dkim.sign RSA messages/s": rate(lambda: dkimpy.sign(
            message, keys[0].selector.encode(), b"bench.example", rsa_pem,
            canonicalize=(b"relaxed", b"relaxed"), include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
        )),
    }


# --- the service ----------------------------------------------------------------------------------
async def create_database(kind: str, data_dir: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{data_dir / 'orgmail.db'}", None
    import asyncpg

    name = f"orgmail_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    return f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}", name


async def drop_database(name: str | None) -> None:
    if name:
        import asyncpg

        connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


async def provision(env: dict[str, str]) -> tuple[str, str]:
    """An org, an API key and a verified domain with DKIM keys, through the core functions."""
    from orgmail.config import load_settings
    from orgmail.core import domains, orgs
    from orgmail.db.session import create_engine, create_session_factory, upgrade_database
    from orgmail.mail.dkim import KeyVault

    settings = load_settings(env)
    await asyncio.to_thread(upgrade_database, settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            org = await orgs.create_org(session, name="Bench")
            _row, key = await orgs.create_api_key(session, org_id=org.id)
            domain = await domains.add_domain(session, org_id=org.id, name="bench.example", vault=KeyVault(settings.secret_key))
            await domains.mark_verified(session, org_id=org.id, domain_id=domain.id)
    finally:
        await engine.dispose()
    return key, "bench.example"


def process_tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return pids


def peak_rss_mb(pid: int) -> float:
    """Sum of the peak resident memory (VmHWM) of the server and its workers."""
    total = 0
    for current in process_tree(pid):
        try:
            match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{current}/status").read_text())
        except OSError:
            continue
        total += int(match.group(1)) if match else 0
    return total / 1024


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            pass
    return total


# --- load -----------------------------------------------------------------------------------------
def send_body(domain: str, n: int) -> dict:
    return {"from": f"Shop <orders@{domain}>", "to": f"customer{n}@example.net",
            "subject": "Your order has shipped", "text": TEXT}


async def _post(client: httpx.AsyncClient, body: dict) -> int | str:
    try:
        return (await client.post("/v1/mail/messages/send", json=body)).status_code
    except httpx.TransportError as exc:
        return type(exc).__name__


async def flat_out(base: str, key: str, domain: str, requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    failures: dict[int, int] = {}
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        async def worker() -> None:
            for n in counter:
                started = time.perf_counter()
                status = await _post(client, send_body(domain, n))
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures[status] = failures.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"sends_per_s": round(requests / elapsed, 1), **_percentiles(latencies), "failures": failures}


async def fixed_rate(base: str, key: str, domain: str, rate: float, seconds: float, in_flight: int = 128) -> dict:
    """Open loop: a send is due every 1/rate s whatever happened to the others. Latency counts from
    when it was due, so a backlog shows up in the figures instead of slowing the offered rate."""
    latencies: list[float] = []
    failures: dict = {}
    slots = asyncio.Semaphore(in_flight)  # httpx's pool gets slow with thousands of queued requests
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        async def one(n: int, due: float) -> None:
            async with slots:
                status = await _post(client, send_body(domain, n))
            latencies.append(time.perf_counter() - due)
            if status != 200:
                failures[status] = failures.get(status, 0) + 1

        tasks, total, begin = [], int(rate * seconds), time.perf_counter()
        for n in range(total):
            due = begin + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    return {"offered_per_s": rate, "achieved_per_s": round(total / elapsed, 1), **_percentiles(latencies),
            "failures": failures}


def _percentiles(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50_ms": round(pick(0.50), 1), "p99_ms": round(pick(0.99), 1), "mean_ms": round(statistics.fmean(ordered) * 1000, 1)}


async def run_one(kind: str, args) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix=f"orgmail-bench-{kind}-"))
    database_url, pg_name = await create_database(kind, data_dir)
    sink_port, http_port = free_port(), free_port()
    delivered = multiprocessing.Value("l", 0)
    sink = multiprocessing.Process(target=_sink, args=(sink_port, delivered), daemon=True)
    sink.start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORGMAIL_")},
        "ORGMAIL_DATA_DIR": str(data_dir),
        "ORGMAIL_DATABASE_URL": database_url,
        "ORGMAIL_SECRET_KEY": "bench-secret",
        "ORGMAIL_RELAY_URL": f"smtp://127.0.0.1:{sink_port}",
        "ORGMAIL_RELAY_POOL_SIZE": str(args.pool),
    }
    server = None
    try:
        key, domain = await provision(env)
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "orgmail"), "serve", "--port", str(http_port), "--workers", str(args.workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=(data_dir / "server.log").open("wb"), start_new_session=True,
        )
        base = f"http://127.0.0.1:{http_port}"
        async with httpx.AsyncClient(base_url=base) as probe:
            for _ in range(200):
                try:
                    if (await probe.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the service did not start: " + (data_dir / "server.log").read_text()[-2000:])
        await flat_out(base, key, domain, min(500, args.requests), args.concurrency)  # warm-up: pools, caches
        service_pids = process_tree(server.pid)
        before = (cpu_seconds(service_pids), cpu_seconds([sink.pid]), time.process_time())
        sunk_before = delivered.value
        throughput = await flat_out(base, key, domain, args.requests, args.concurrency)
        after = (cpu_seconds(service_pids), cpu_seconds([sink.pid]), time.process_time())
        throughput["relay_received"] = delivered.value - sunk_before
        throughput["cpu_ms_per_send"] = {
            name: round((b - a) * 1000 / args.requests, 2)
            for name, a, b in zip(("service", "smtp_sink", "load_generator"), before, after)
        }
        latency = await fixed_rate(base, key, domain, args.rate, args.seconds)
        return {"database": kind, "workers": args.workers, "throughput": throughput,
                f"latency_at_{args.rate:g}_per_s": latency, "peak_rss_mb": round(peak_rss_mb(server.pid), 1)}
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=40)
        sink.terminate()
        await drop_database(pg_name)
        if args.keep_logs:
            print(f"server log: {data_dir / 'server.log'}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=5000, help="sends in the flat-out run")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight in the flat-out run")
    parser.add_argument("--rate", type=float, default=200, help="sends/s offered in the latency run")
    parser.add_argument("--seconds", type=float, default=10, help="length of the latency run")
    parser.add_argument("--pool", type=int, default=4, help="SMTP connections per worker")
    parser.add_argument("--keep-logs", action="store_true", help="keep the data folder and the server log")
    args = parser.parse_args()

    report: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                "load_average_at_start": os.getloadavg()}}
    report["openssl speed rsa2048 sign/s (1 core)"] = openssl_speed()
    report.update({k: round(v, 1) for k, v in sign_rates().items()})
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    report["runs"] = [await run_one(kind, args) for kind in kinds]
    report["machine"]["load_average_at_end"] = os.getloadavg()  # other work on the machine skews every figure
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
