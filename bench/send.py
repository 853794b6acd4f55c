"""Benchmark: signed sends end to end, over HTTP, through the real service to a real SMTP sink.

    .venv/bin/python bench/send.py                       # PostgreSQL and SQLite, 2 workers
    .venv/bin/python bench/send.py --db postgresql --workers 2 --duration 20 --concurrency 64 --rate 200

Needs `wrk` (C, https://github.com/wg/wrk; Debian/Ubuntu: `apt-get install wrk`, macOS: `brew install wrk`).

For each database it starts `orgmail serve` (uvicorn, `--workers N`) on a fresh database, an aiosmtpd
sink on loopback (its own process) as the relay, and drives `POST /v1/mail/messages/send`:

- flat out, with wrk (C: it leaves the cores to the service; a Python client would eat one): C
  connections, each sending its next request as soon as the last one is answered, for D seconds.
  That gives throughput; its latencies are closed-loop (a slow answer delays the next request), so
  they say little about latency under load.
- at a fixed rate, with a small open-loop client (raw HTTP/1.1 over asyncio and uvloop, no client
  library): a send is due every 1/rate s whatever happened to the others, and its latency counts
  from when it was due, not from when it went out, so queueing anywhere (client, sockets, service)
  shows in the figures (no coordinated omission).

Beside them, measured in the same run: the single-core RSA-2048 sign rate of OpenSSL (`openssl speed`,
and `cryptography` in a loop: the physical limit of a signing send) and dkimpy's own `dkim.sign` on the
same message (pure-Python RSA: what a naive implementation gets).

Delivery feedback (issue #11; bench/feedback.py):

    .venv/bin/python bench/send.py --db postgresql --feedback            # that configuration only
    .venv/bin/python bench/send.py --db postgresql --compare-feedback    # without it, then with it

`--feedback` gives the service ORGMAIL_BOUNCE_DOMAIN=bounces.bench.test (VERP senders) and
ORGMAIL_WEBHOOK_ALLOW_PRIVATE=1, makes the sink offer DSN (so RET/ENVID/NOTIFY/ORCPT go on the wire;
it counts the messages that carried them), and, after provisioning, creates a webhook for every event
type (`webhooks/create`, `events` left out) to a local receiver (its own process: HTTP/1.1, 204 to
every POST, a sample of signatures checked with `standardwebhooks`). Besides the usual figures it
prints, per phase (warm-up, flat out, 200/s and the drains after each), deliveries per second, the
depth of `webhook_jobs` (sampled every second on the bench's own connection), the lag from an event's
`createdAt` to its arrival, the time the queue takes to empty once the load stops, and a timeline.
With feedback, the measured flat-out run starts once the warm-up's deliveries are done, and the
backlog it leaves is delivered before the fixed-rate run (both timed). `--compare-feedback` runs both
configurations back to back on fresh databases (`--rounds N`: N pairs, the order alternating) and
compares their flat-out sends/s. The deliveries are made by `serve`'s own delivery process (at
ORGMAIL_WEBHOOK_NICE), its CPU on a line of its own; `--deliver-apart NICE` instead runs the service
with ORGMAIL_WEBHOOK_DELIVERY=0 and `orgmail webhook deliver` beside it, started by the bench, at that
CPU priority (`nice`: 0 the same as the service, 19 the least). Each run also prints the share of the
machine's time the hypervisor gave to other guests (stolen), one source of this VM's spread.
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
from datetime import UTC
from pathlib import Path

import feedback  # bench/feedback.py, beside this file: the webhook receiver and the queue monitor
import httpx
from history import write_history  # bench/history.py: the messages the org sent before the run

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("ORGMAIL_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BOUNCE_DOMAIN = "bounces.bench.test"  # --feedback: ORGMAIL_BOUNCE_DOMAIN, so every send has a VERP sender
TEXT = ("Hello,\n\nyour order has shipped and is on its way. " * 30)[:1500] + "\n"  # ~2 KB signed mail


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the SMTP sink (its own process, as a smarthost would be) ------------------------------------
_DSN_PARAMETERS = {
    "MAIL": re.compile(r"\s+(?:RET|ENVID)=\S*", re.I),
    "RCPT": re.compile(r"\s+(?:NOTIFY|ORCPT)=\S*", re.I),
}


def _sink(port: int, counter, dsn=None) -> None:
    """`dsn`: None, or (messages whose MAIL and every RCPT carried DSN parameters, messages whose
    envelope sender was a VERP address of BOUNCE_DOMAIN), two shared longs counted under `counter`'s lock:
    the sink then offers DSN (RFC 3461) too, as Postfix does."""
    from aiosmtpd.smtp import SMTP, syntax

    class Sink:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            # Offer PIPELINING, as Postfix, SES and other smarthosts do (aiosmtpd reads pipelined
            # commands fine but does not say so by itself).
            session.host_name = hostname
            responses.insert(-1, "250-PIPELINING")
            if dsn is not None:
                responses.insert(-1, "250-DSN")
            return responses

        async def handle_DATA(self, server, session, envelope):
            with counter.get_lock():
                counter.value += 1
                if dsn is not None:
                    dsn[0].value += server.dsn_mail and server.dsn_rcpts == len(envelope.rcpt_tos)
                    dsn[1].value += envelope.mail_from.startswith("bounces+") and envelope.mail_from.endswith(
                        "@" + BOUNCE_DOMAIN
                    )
            return "250 2.0.0 Ok: queued"

    class DsnSMTP(SMTP):
        """aiosmtpd refuses any MAIL or RCPT parameter but SIZE, BODY and SMTPUTF8 (555): the DSN ones
        are noted and taken off the command before it reads it (tests/smtp_relay.py checks them fully)."""

        dsn_mail, dsn_rcpts = False, 0

        @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
        async def smtp_MAIL(self, arg):
            stripped, taken = _DSN_PARAMETERS["MAIL"].subn("", arg or "")
            self.dsn_mail, self.dsn_rcpts = taken == 2, 0
            await super().smtp_MAIL(stripped if arg is not None else arg)

        @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
        async def smtp_RCPT(self, arg):
            stripped, taken = _DSN_PARAMETERS["RCPT"].subn("", arg or "")
            self.dsn_rcpts += taken == 2
            await super().smtp_RCPT(stripped if arg is not None else arg)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        protocol = SMTP if dsn is None else DsnSMTP
        server = await loop.create_server(lambda: protocol(Sink(), hostname="sink.test"), "127.0.0.1", port)
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
    from datetime import datetime

    from orgmail.addresses import parse_mailbox
    from orgmail.mail import mime

    return mime.build(
        mime.Draft(
            sender=parse_mailbox(f"Shop <orders@{domain}>"),
            to=[parse_mailbox("customer@example.net")],
            subject="Your order has shipped",
            message_id=f"<bench@{domain}>",
            date=datetime.now(UTC),
            text=TEXT,
        )
    )


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
        "cryptography RSA-2048 sign/s": rate(
            lambda: keys[0].private_key.sign(b"x" * 32, padding.PKCS1v15(), hashes.SHA256())
        ),
        "orgmail dkim.sign RSA+Ed25519 messages/s": rate(lambda: dkim.sign(message, domain="bench.example", keys=keys)),
        "dkimpy dkim.sign RSA messages/s": rate(
            lambda: dkimpy.sign(
                message,
                keys[0].selector.encode(),
                b"bench.example",
                rsa_pem,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
            )
        ),
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


async def provision(env: dict[str, str], *, history: int = 0) -> tuple[str, str]:
    """An org, an API key and a verified domain with DKIM keys, through the core functions, and
    `history` messages it sent before (bench/history.py: why)."""
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
            domain = await domains.add_domain(
                session, org_id=org.id, name="bench.example", vault=KeyVault(settings.secret_key)
            )
            await domains.mark_verified(session, org_id=org.id, domain_id=domain.id)
    finally:
        await engine.dispose()
    await write_history(settings.database_url, org_id=org.id, domain="bench.example", count=history)
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


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


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


def postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (it shares the cores with everything else here)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) each process has used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[pid] = (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            pass
    return used


def cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_by_pid(pids).values())


def cpu_used_between(before: dict[int, float], after: dict[int, float]) -> float:
    """Processes that started in between (a pool opening a connection: a new PostgreSQL backend)
    count from zero; ones that ended in between are lost, so this is a lower bound."""
    return sum(used - before.get(pid, 0.0) for pid, used in after.items())


def machine_busy_seconds() -> tuple[float, float, float]:
    """(busy, idle, stolen) CPU seconds of the whole machine since boot, all cores (/proc/stat).
    Busy includes stolen: time the hypervisor gave this VM's vCPUs to another guest, which a
    virtual machine's figures lose without anything here having used it."""
    ticks = os.sysconf("SC_CLK_TCK")
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / ticks, idle / ticks, values[7] / ticks


# --- load -----------------------------------------------------------------------------------------
def send_body(domain: str, n: int) -> dict:
    return {
        "from": f"Shop <orders@{domain}>",
        "to": f"customer{n}@example.net",
        "subject": "Your order has shipped",
        "text": TEXT,
    }


WRK_SCRIPT = r"""
-- One signed send per request, each to its own recipient; the figures come back as one JSON line.
local key, domain, text = os.getenv("BENCH_KEY"), os.getenv("BENCH_DOMAIN"), os.getenv("BENCH_TEXT")
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = '{"from":"Shop <orders@' .. domain .. '>","to":"customer' .. n ..
               '@example.net","subject":"Your order has shipped","text":' .. text .. '}'
  return wrk.format(nil, "/v1/mail/messages/send", nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit(
            "bench/send.py needs wrk for the flat-out run (a Python client would eat a core of the two):\n"
            "  Debian/Ubuntu: apt-get install wrk    macOS: brew install wrk    source: https://github.com/wg/wrk"
        )
    return path


def flat_out(base: str, key: str, domain: str, *, seconds: float, concurrency: int, script: Path) -> dict:
    """Closed loop with wrk: `concurrency` connections, each sending again as soon as it is answered."""
    env = {**os.environ, "BENCH_KEY": key, "BENCH_DOMAIN": domain, "BENCH_TEXT": json.dumps(TEXT)}
    command = [require_wrk(), "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "30s", "-s", str(script), base]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    match = re.search(r"^WRK (\{.*\})$", output, re.M)
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed:\n{output}")
    figures = json.loads(match.group(1))
    failures = {name: figures[name] for name in ("connect", "read", "write", "timeout") if figures[name]}
    if figures["status"]:
        failures["non_2xx"] = figures["status"]
    return {
        "sends": figures["requests"],
        "sends_per_s": round(figures["requests"] / (figures["duration_us"] / 1e6), 1),
        "closed_loop_p50_ms": round(figures["p50_us"] / 1000, 1),
        "closed_loop_p99_ms": round(figures["p99_us"] / 1000, 1),
        "failures": failures,
        "load_generator_cpu_s": usage.ru_utime + usage.ru_stime,
    }


class _HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection answering one request at a time (responses carry a
    Content-Length: uvicorn sets it for every JSON answer)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future[int] | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length = int(re.search(rb"\r\ncontent-length:\s*(\d+)", head).group(1))
        if len(self.buffer) >= end + 4 + length and self.answer is not None and not self.answer.done():
            del self.buffer[: end + 4 + length]
            self.answer.set_result(int(head[9:12]))

    def connection_lost(self, exc) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    async def request(self, raw: bytes) -> int:
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.answer


async def fixed_rate(port: int, key: str, domain: str, rate: float, seconds: float, in_flight: int = 256) -> dict:
    """Open loop: a send is due every 1/rate s whatever happened to the others. Latency counts from
    when it was due (not from when a connection was free to send it), so a backlog shows up in the
    figures instead of silently lowering the offered rate."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    failures: dict = {}
    idle: list[_HttpConnection] = []
    slots = asyncio.Semaphore(in_flight)
    head = (
        f"POST /v1/mail/messages/send HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
    ).encode()

    def raw_request(n: int) -> bytes:
        body = json.dumps(send_body(domain, n), separators=(",", ":")).encode()
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    async def one(n: int, due: float) -> None:
        raw = raw_request(n)
        async with slots:
            connection = idle.pop() if idle else None
            try:
                if connection is None:
                    _transport, connection = await loop.create_connection(_HttpConnection, "127.0.0.1", port)
                status = await connection.request(raw)
            except OSError as exc:
                status, connection = type(exc).__name__, None
            if connection is not None:
                idle.append(connection)
        latencies.append(time.perf_counter() - due)
        if status != 200:
            failures[status] = failures.get(status, 0) + 1

    cpu_before = time.process_time()
    tasks, total, begin = [], int(rate * seconds), time.perf_counter()
    for n in range(total):
        due = begin + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - begin
    for connection in idle:
        connection.transport.close()
    return {
        "offered_per_s": rate,
        "achieved_per_s": round(total / elapsed, 1),
        **_percentiles(latencies),
        "failures": failures,
        "load_generator_cpu_ms_per_send": round((time.process_time() - cpu_before) * 1000 / total, 2),
    }


def _percentiles(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {
        "p50_ms": round(pick(0.50), 1),
        "p99_ms": round(pick(0.99), 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
    }


async def create_webhook(base: str, key: str, url: str) -> str:
    """A webhook for every event type (`events` left out), through the API; its signing secret."""
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        answer = await client.post("/v1/mail/webhooks/create", json={"url": url, "description": "bench receiver"})
    if answer.status_code != 200:
        raise RuntimeError(f"webhooks/create answered {answer.status_code}: {answer.text}")
    return answer.json()["secret"]


async def start_receiver(port: int, secret: str, verify_every: int):
    received = multiprocessing.RawValue("l", 0)
    process = multiprocessing.Process(
        target=feedback.receiver, args=(port, secret, verify_every, received), daemon=True
    )
    process.start()
    async with httpx.AsyncClient() as probe:
        for _ in range(100):
            try:
                await probe.get(f"http://127.0.0.1:{port}/stats")
                return process, received
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the webhook receiver did not start")


async def receiver_stats(port: int, since: float = 0.0, until: float = float("inf")) -> dict:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{port}/stats", params={"since": since, "until": until})
    return answer.json()


async def settled(counter, until: asyncio.Task, quiet: float = 0.3, timeout: float = 30.0) -> None:
    """Until `counter` has not moved for `quiet` s (or `until` is done, or `timeout`)."""
    last, since, begin = counter.value, time.perf_counter(), time.perf_counter()
    while not until.done() and time.perf_counter() - since < quiet and time.perf_counter() - begin < timeout:
        await asyncio.sleep(0.05)
        if counter.value != last:
            last, since = counter.value, time.perf_counter()


def service_env(data_dir: Path, database_url: str, *, sink_port: int, pool: int) -> dict[str, str]:
    """What `orgmail serve` runs with here: no ORGMAIL_ setting of the caller's, its own data folder and
    database, the sink as its relay."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORGMAIL_")},
        "ORGMAIL_DATA_DIR": str(data_dir),
        "ORGMAIL_DATABASE_URL": database_url,
        "ORGMAIL_SECRET_KEY": "bench-secret",
        "ORGMAIL_RELAY_URL": f"smtp://127.0.0.1:{sink_port}",
        "ORGMAIL_RELAY_POOL_SIZE": str(pool),
    }


async def start_service(env: dict[str, str], *, port: int, workers: int, log: Path) -> subprocess.Popen:
    """`orgmail serve --workers N` in a session of its own (so its workers can be killed together),
    once it answers /healthz; its stderr in `log`."""
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "orgmail"), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
        for _ in range(200):
            try:
                if (await probe.get("/healthz")).status_code == 200:
                    return server
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    os.killpg(server.pid, signal.SIGTERM)
    raise RuntimeError("the service did not start: " + log.read_text()[-2000:])


async def run_one(kind: str, args, *, with_feedback: bool = False) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix=f"orgmail-bench-{kind}-"))
    script = data_dir / "send.lua"
    script.write_text(WRK_SCRIPT)
    database_url, pg_name = await create_database(kind, data_dir)
    sink_port, http_port = free_port(), free_port()
    delivered = multiprocessing.Value("l", 0)
    dsn_counts = (multiprocessing.RawValue("l", 0), multiprocessing.RawValue("l", 0)) if with_feedback else None
    sink = multiprocessing.Process(target=_sink, args=(sink_port, delivered, dsn_counts), daemon=True)
    sink.start()
    env = service_env(data_dir, database_url, sink_port=sink_port, pool=args.pool)
    apart = with_feedback and args.deliver_apart is not None
    if with_feedback:
        env |= {"ORGMAIL_BOUNCE_DOMAIN": BOUNCE_DOMAIN, "ORGMAIL_WEBHOOK_ALLOW_PRIVATE": "1"}
    if apart:
        env |= {"ORGMAIL_WEBHOOK_DELIVERY": "0"}
    server = receiver = monitor = queue = deliverer = None
    try:
        key, domain = await provision(env, history=args.history)
        server = await start_service(env, port=http_port, workers=args.workers, log=data_dir / "server.log")
        if apart:
            with (data_dir / "deliverer.log").open("wb") as deliverer_log:
                # in a session of its own, as serve's is, so that --nice lowers its session's priority too
                command = [str(Path(sys.executable).parent / "orgmail"), "webhook", "deliver"]
                deliverer = subprocess.Popen(
                    [*command, "--nice", str(args.deliver_apart)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=deliverer_log,
                    start_new_session=True,
                )
        base = f"http://127.0.0.1:{http_port}"
        if with_feedback:
            hook_port = free_port()
            secret = await create_webhook(base, key, f"http://127.0.0.1:{hook_port}/hook")
            receiver, received = await start_receiver(hook_port, secret, args.verify_every)
            queue = await feedback.Queue(database_url).open()
            monitor = await feedback.Monitor(queue, received).start()
            phases: dict[str, dict] = {}
            monitor.phase = "warm-up (flat out)"
        load = dict(concurrency=args.concurrency, script=script)
        await asyncio.to_thread(flat_out, base, key, domain, seconds=3, **load)  # warm-up: pools, caches
        if with_feedback:  # the measured run starts on an empty queue, as the run without webhooks does
            monitor.phase = "drain after warm-up"
            phases["drain_after_warm_up"] = await monitor.drain(args.drain_timeout)
            monitor.phase = "flat out"
        # serve's webhook delivery process (a child at a lower priority) is counted on a line of its own
        service_pids, delivery_pids = [], []
        for pid in process_tree(server.pid):
            (delivery_pids if "webhook deliver" in command_line(pid) else service_pids).append(pid)
        side_pids = [sink.pid] + [p.pid for p in (receiver, deliverer) if p is not None] + delivery_pids
        before = (
            cpu_seconds(service_pids),
            cpu_by_pid(side_pids),
            cpu_by_pid(postgres_pids()),
            machine_busy_seconds(),
        )
        sunk_before = delivered.value
        if with_feedback:
            hooks_before, wall_before = received.value, time.time()
        throughput = await asyncio.to_thread(flat_out, base, key, domain, seconds=args.duration, **load)
        after = (
            cpu_seconds(service_pids),
            cpu_by_pid(side_pids),
            cpu_by_pid(postgres_pids()),
            machine_busy_seconds(),
        )
        throughput["relay_received"] = delivered.value - sunk_before
        sends = max(1, throughput["sends"])
        per_send = lambda seconds: round(seconds * 1000 / sends, 2)  # noqa: E731
        busy, idle, stolen = (a - b for a, b in zip(after[3], before[3], strict=True))
        side = {pid: after[1].get(pid, 0.0) - before[1].get(pid, 0.0) for pid in side_pids}
        throughput["cpu_ms_per_send"] = {
            "service": per_send(after[0] - before[0]),
            "smtp_sink": per_send(side[sink.pid]),
            **({"webhook_receiver": per_send(side[receiver.pid])} if receiver is not None else {}),
            **({"webhook_deliverer": per_send(side[deliverer.pid])} if deliverer is not None else {}),
            **(
                {"serve's webhook delivery": per_send(sum(side[pid] for pid in delivery_pids))} if delivery_pids else {}
            ),
            **({"postgresql": per_send(cpu_used_between(before[2], after[2]))} if kind == "postgresql" else {}),
            "load_generator (wrk)": per_send(throughput.pop("load_generator_cpu_s")),
            "whole machine": per_send(busy),
        }
        throughput["machine_idle_percent"] = round(100 * idle / max(busy + idle, 1e-9), 1)
        throughput["machine_stolen_percent"] = round(100 * stolen / max(busy + idle, 1e-9), 1)
        if with_feedback:
            hooks = received.value - hooks_before
            lag = (await receiver_stats(hook_port, wall_before, time.time()))["window"]
            phases["flat_out"] = {
                "sends_per_s": throughput["sends_per_s"],
                "deliveries": hooks,
                "deliveries_per_s": round(hooks / args.duration, 1),
                **monitor.phase_figures("flat out"),
                **{k: v for k, v in lag.items() if k != "deliveries"},
            }
            # The backlog the flat-out run left, delivered with no sends beside it once the sends wrk
            # left in flight are done (the sink's count stands still): what a delivery costs.
            monitor.phase = "drain after flat out"
            draining = asyncio.create_task(monitor.drain(args.drain_timeout))
            await settled(delivered, draining)
            cpu_before = (cpu_seconds(service_pids), cpu_by_pid(postgres_pids()), received.value)
            drain = await draining
            cpu_after = (cpu_seconds(service_pids), cpu_by_pid(postgres_pids()), received.value)
            measured = cpu_after[2] - cpu_before[2]
            if measured >= 100:
                per_delivery = lambda seconds: round(seconds * 1000 / measured, 2)  # noqa: E731
                drain["cpu_ms_per_delivery"] = {
                    "deliveries_measured": measured,
                    "service": per_delivery(cpu_after[0] - cpu_before[0]),
                    **(
                        {"postgresql": per_delivery(cpu_used_between(cpu_before[1], cpu_after[1]))}
                        if kind == "postgresql"
                        else {}
                    ),
                }
            phases["drain_after_flat_out"] = drain
            # Deliveries that fell behind were work deferred past the flat-out window: counting the
            # time to deliver them gives the rate at which both sends and their webhooks keep up.
            phases["flat_out"]["sends_per_s_counting_the_drain"] = round(
                throughput["sends"] / (args.duration + drain["seconds"]), 1
            )
            monitor.phase = "pause"
        await asyncio.sleep(1)  # let the flat-out backlog drain
        if with_feedback:
            monitor.phase = f"{args.rate:g}/s"
            hooks_before, wall_before, begin = received.value, time.time(), time.perf_counter()
        latency = await fixed_rate(http_port, key, domain, args.rate, args.seconds)
        result = {
            "database": kind,
            "workers": args.workers,
            "throughput": throughput,
            f"latency_at_{args.rate:g}_per_s": latency,
            "peak_rss_mb": round(peak_rss_mb(server.pid), 1),
        }
        if with_feedback:
            elapsed, hooks = time.perf_counter() - begin, received.value - hooks_before
            lag = (await receiver_stats(hook_port, wall_before, time.time()))["window"]
            phases[f"at_{args.rate:g}_per_s"] = {
                "sends_per_s": latency["achieved_per_s"],
                "deliveries": hooks,
                "deliveries_per_s": round(hooks / elapsed, 1),
                **monitor.phase_figures(f"{args.rate:g}/s"),
                **{k: v for k, v in lag.items() if k != "deliveries"},
            }
            monitor.phase = f"drain after {args.rate:g}/s"
            phases[f"drain_after_{args.rate:g}_per_s"] = await monitor.drain(args.drain_timeout)
            await asyncio.sleep(1.1)  # one more sample of the empty queue for the timeline
            await monitor.stop()
            stats = await receiver_stats(hook_port)
            result["peak_rss_mb"] = round(peak_rss_mb(server.pid), 1)  # the drains included
            result["feedback"] = {
                "bounce_domain": BOUNCE_DOMAIN,
                "relay_dsn_requested": dsn_counts[0].value,
                "relay_verp_sender": dsn_counts[1].value,
                "relay_received_total": delivered.value,
                "phases": phases,
                "receiver": {k: v for k, v in stats.items() if k != "window"},
                "database": await queue.totals(),
                "timeline": monitor.timeline(),
            }
        return result
    finally:
        if monitor is not None:
            await monitor.stop()
        if queue is not None:
            await queue.close()
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=40)
        if deliverer is not None:
            deliverer.terminate()
            deliverer.wait(timeout=40)
        sink.terminate()
        if receiver is not None:
            receiver.terminate()
        await drop_database(pg_name)
        if args.keep_logs:
            print(f"server log: {data_dir / 'server.log'}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def comparison(runs: list[dict]) -> list[dict]:
    """Per database: flat-out sends/s without and with feedback, each round's pair and the medians."""
    table = []
    for kind in dict.fromkeys(run["database"] for run in runs):
        figures = {
            configuration: [
                run["throughput"]["sends_per_s"]
                for run in runs
                if run["database"] == kind and run["configuration"] == configuration
            ]
            for configuration in ("without feedback", "with feedback")
        }
        drained = [
            run["feedback"]["phases"]["flat_out"]["sends_per_s_counting_the_drain"]
            for run in runs
            if run["database"] == kind and run["configuration"] == "with feedback"
        ]
        plain, fed = (statistics.median(figures[c]) for c in ("without feedback", "with feedback"))
        change = round(100 * (fed - plain) / plain, 1)
        table.append(
            {
                "database": kind,
                "flat_out_sends_per_s": figures,
                "median_without": plain,
                "median_with": fed,
                "change_percent": change,
                "within_10_percent": change >= -10,
                "with_feedback_counting_the_drain": drained,
                "change_percent_counting_the_drain": round(100 * (statistics.median(drained) - plain) / plain, 1),
            }
        )
    return table


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=20, help="seconds of the flat-out run (wrk)")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="connections (requests in flight) in the flat-out run"
    )
    parser.add_argument("--rate", type=float, default=200, help="sends/s offered in the latency run")
    parser.add_argument("--seconds", type=float, default=10, help="length of the latency run")
    parser.add_argument("--pool", type=int, default=4, help="SMTP connections per worker")
    parser.add_argument(
        "--history",
        type=int,
        default=50_000,
        help="messages (with their events) the org sent before the run, then ANALYZE (bench/history.py)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the data folder and the server log")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--feedback",
        action="store_true",
        help=f"ORGMAIL_BOUNCE_DOMAIN={BOUNCE_DOMAIN}, a relay that offers DSN, and a webhook for every event to a "
        "local receiver: deliveries/s, queue depth and drain times besides the usual figures",
    )
    mode.add_argument(
        "--compare-feedback",
        action="store_true",
        help="for each database, the run without feedback and the run with it, back to back (issue #11)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --compare-feedback: pairs of runs, the order alternating (without/with, with/without, …)",
    )
    parser.add_argument(
        "--deliver-apart",
        type=int,
        metavar="NICE",
        help="with feedback: deliveries by `orgmail webhook deliver` at this nice level, not by the service",
    )
    parser.add_argument(
        "--verify-every",
        type=int,
        default=10,
        help="with feedback: the receiver checks the signature of one delivery in N (0: none)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=300,
        help="with feedback: seconds to wait for the webhook queue to empty after each load",
    )
    args = parser.parse_args()
    require_wrk()

    report: dict = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_average_at_start": os.getloadavg()}
    }
    report["openssl speed rsa2048 sign/s (1 core)"] = openssl_speed()
    report.update({k: round(v, 1) for k, v in sign_rates().items()})
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    if args.compare_feedback:
        report["runs"] = []
        for kind in kinds:
            for round_ in range(args.rounds):
                for with_feedback in (False, True) if round_ % 2 == 0 else (True, False):
                    run = await run_one(kind, args, with_feedback=with_feedback)
                    configuration = "with feedback" if with_feedback else "without feedback"
                    report["runs"].append({"configuration": configuration, "round": round_ + 1, **run})
        report["comparison"] = comparison(report["runs"])
    else:
        report["runs"] = [await run_one(kind, args, with_feedback=args.feedback) for kind in kinds]
    report["machine"]["load_average_at_end"] = os.getloadavg()  # other work on the machine skews every figure
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
