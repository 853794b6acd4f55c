"""The webhook side of `bench/send.py --feedback` / `--compare-feedback` (issue #11).

- `receiver`: the webhook endpoint, its own process like the SMTP sink: a minimal HTTP/1.1 server
  (asyncio + uvloop + httptools, keep-alive) that answers every POST with 204 and counts it. It notes
  each delivery's `webhook-id` (to count duplicates: delivery is at least once), its event type, and
  its lag (arrival minus the event's `createdAt`), and checks the Standard Webhooks signature of one
  delivery in `verify_every` with the published `standardwebhooks` package. `GET /stats?since=&until=`
  answers what it saw as JSON (lags of the deliveries that arrived in that wall-clock window).
- `Queue`: the depth of `webhook_jobs` (`SELECT count(*)`) on the bench's own database, on a
  connection of its own (asyncpg; sqlite3 in a thread for SQLite), plus the totals at the end.
- `Monitor`: samples the queue depth and the receiver's count every second, labelled with the phase
  of the run, and waits for the queue to drain.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import statistics
import time
from array import array
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

_CREATED_AT = re.compile(rb'"createdAt":"([^"]+)"')
_TYPE = re.compile(rb'"type":"([^"]+)"')


# --- the webhook endpoint (its own process) --------------------------------------------------------
def receiver(port: int, secret: str, verify_every: int, received) -> None:
    """Serve on 127.0.0.1:`port` until terminated; `received` (a shared long) counts the POSTs."""
    import httptools
    from standardwebhooks import Webhook

    verifier = Webhook(secret)
    seen: set[bytes] = set()
    by_type: dict[str, int] = {}
    arrivals, lags = array("d"), array("d")
    figures = {"requests": 0, "duplicates": 0, "signatures_checked": 0, "signatures_failed": 0}
    failures: list[str] = []

    def delivered(headers: dict[bytes, bytes], body: bytes) -> None:
        figures["requests"] += 1
        received.value = figures["requests"]
        now = time.time()
        event_id = headers.get(b"webhook-id", b"")
        if event_id in seen:
            figures["duplicates"] += 1
        else:
            seen.add(event_id)
        head = body[:200]
        if match := _TYPE.search(head):
            kind = match.group(1).decode()
            by_type[kind] = by_type.get(kind, 0) + 1
        if match := _CREATED_AT.search(head):
            created = datetime.fromisoformat(match.group(1).decode().replace("Z", "+00:00")).timestamp()
            arrivals.append(now)
            lags.append(now - created)
        if verify_every and (figures["requests"] - 1) % verify_every == 0:
            figures["signatures_checked"] += 1
            try:
                verifier.verify(body, {k.decode(): v.decode() for k, v in headers.items()}, json_parse=False)
            except Exception as exc:  # WebhookVerificationError, or headers that are not text
                figures["signatures_failed"] += 1
                if len(failures) < 5:
                    failures.append(f"{event_id.decode(errors='replace')}: {exc}")

    def stats(query: str) -> bytes:
        params = {k: float(v[0]) for k, v in parse_qs(query).items()}
        since, until = params.get("since", 0.0), params.get("until", float("inf"))
        window = sorted(lag for at, lag in zip(arrivals, lags, strict=True) if since <= at < until)
        pick = lambda q: round(window[min(len(window) - 1, int(q * len(window)))] * 1000, 1)  # noqa: E731
        answer = {
            **figures,
            "distinct_events": len(seen),
            "by_type": by_type,
            "first_signature_failures": failures,
            "window": {
                "deliveries": len(window),
                **(
                    {
                        "lag_p50_ms": pick(0.5),
                        "lag_p99_ms": pick(0.99),
                        "lag_max_ms": round(window[-1] * 1000, 1),
                        "lag_mean_ms": round(statistics.fmean(window) * 1000, 1),
                    }
                    if window
                    else {}
                ),
            },
        }
        return json.dumps(answer).encode()

    class Connection(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.transport: asyncio.Transport | None = None
            self.url = b""
            self.headers: dict[bytes, bytes] = {}
            self.body: list[bytes] = []

        def connection_made(self, transport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self.transport.close()

        # httptools callbacks
        def on_message_begin(self) -> None:
            self.url, self.headers, self.body = b"", {}, []

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers[name.lower()] = value

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            method = self.parser.get_method()
            if method == b"POST":
                delivered(self.headers, b"".join(self.body))
                answer = b"HTTP/1.1 204 No Content\r\n\r\n"
            elif method == b"GET" and self.url.startswith(b"/stats"):
                payload = stats(urlsplit(self.url.decode()).query)
                answer = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
                    + payload
                )
            else:
                answer = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
            self.transport.write(answer)
            if not self.parser.should_keep_alive():
                self.transport.close()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Connection, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())


# --- the queue, on the bench's own database ---------------------------------------------------------
class Queue:
    """`webhook_jobs` and friends, read on the bench's own connection."""

    def __init__(self, database_url: str):
        self.url = database_url
        self.sqlite_path = database_url.removeprefix("sqlite:///") if database_url.startswith("sqlite:") else None
        self._connection = None

    async def open(self) -> Queue:
        if self.sqlite_path is None:
            import asyncpg

            self._connection = await asyncpg.connect(self.url)
        return self

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    def _sqlite(self, query: str) -> tuple:
        with sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=10) as connection:
            return connection.execute(query).fetchone()

    async def _row(self, query: str) -> tuple:
        if self.sqlite_path is not None:
            return await asyncio.to_thread(self._sqlite, query)
        return tuple(await self._connection.fetchrow(query))

    async def depth(self) -> int:
        return (await self._row("SELECT count(*) FROM webhook_jobs"))[0]

    async def totals(self) -> dict:
        """What the database says about the whole run (warm-up included)."""
        events, by_type = await self._row(
            "SELECT count(*), count(*) FILTER (WHERE type = 'sent') FROM message_events"
            if self.sqlite_path is None
            else "SELECT count(*), sum(type = 'sent') FROM message_events"
        )
        attempts, failed = await self._row(
            "SELECT count(*), count(*) FILTER (WHERE error IS NOT NULL) FROM webhook_deliveries"
            if self.sqlite_path is None
            else "SELECT count(*), sum(error IS NOT NULL) FROM webhook_deliveries"
        )
        (first_error,) = await self._row(
            "SELECT coalesce(min(error), '') FROM webhook_deliveries WHERE error IS NOT NULL"
        )
        (messages,) = await self._row("SELECT count(*) FROM messages")
        return {
            "messages": messages,
            "message_events": events,
            "sent_events": by_type or 0,
            "delivery_attempts": attempts,
            "failed_attempts": failed or 0,
            **({"a_failure": first_error} if first_error else {}),
            "still_queued": await self.depth(),
        }


# --- the run's timeline -------------------------------------------------------------------------------
class Monitor:
    """Every `interval` s: the queue depth and the receiver's count, under the current phase's name."""

    def __init__(self, queue: Queue, received, interval: float = 1.0):
        self.queue = queue
        self.received = received
        self.interval = interval
        self.phase = "idle"
        self.samples: list[tuple[float, str, int, int]] = []  # (seconds since start, phase, depth, received)
        self._begin = time.perf_counter()
        self._task: asyncio.Task | None = None
        self._drain_queue: Queue | None = None  # a second connection: asyncpg runs one query at a time

    async def start(self) -> Monitor:
        self._drain_queue = await Queue(self.queue.url).open()
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._drain_queue is not None:
            await self._drain_queue.close()
            self._drain_queue = None

    async def _run(self) -> None:
        next_at = time.perf_counter()
        while True:
            depth = await self.queue.depth()
            self.samples.append((time.perf_counter() - self._begin, self.phase, depth, self.received.value))
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def drain(self, timeout: float, poll: float = 0.1) -> dict:
        """Wait until `webhook_jobs` is empty: how long it took (from now), or what was left at `timeout`."""
        begin, received_before = time.perf_counter(), self.received.value
        while True:
            depth = await self._drain_queue.depth()
            elapsed = time.perf_counter() - begin
            if depth == 0 or elapsed >= timeout:
                break
            await asyncio.sleep(poll)
        delivered = self.received.value - received_before
        return {
            "seconds": round(elapsed, 2),
            "drained": depth == 0,
            **({} if depth == 0 else {"left_in_queue": depth}),
            "deliveries": delivered,
            "deliveries_per_s": round(delivered / elapsed, 1) if elapsed > 0.05 else None,
        }

    def phase_figures(self, phase: str) -> dict:
        """The queue depth seen by the samples taken during `phase`."""
        depths = [depth for _t, name, depth, _r in self.samples if name == phase]
        if not depths:
            return {}
        return {"queue_first": depths[0], "queue_max": max(depths), "queue_last": depths[-1]}

    def timeline(self) -> list[str]:
        """One line per sample: time, phase, queue depth, deliveries/s since the sample before."""
        lines, previous = [], None
        for at, phase, depth, received in self.samples:
            rate = "" if previous is None else f"{(received - previous[1]) / max(at - previous[0], 1e-9):7.0f}"
            lines.append(f"{at:6.1f}s  {phase:<22} queue {depth:>7}   deliveries/s {rate:>7}")
            previous = (at, received)
        return lines
