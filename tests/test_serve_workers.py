"""`orgmail serve --workers N` (the real binary, real sockets, real signals): each worker listens on the
port with a socket of its own (SO_REUSEPORT), so a burst of connections is spread across them by the
kernel rather than taken whole by the first worker awake; a second `serve` on the port is refused; a
worker that dies is started again, and the workers go with a `serve` killed outright."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

from tests.processes import BIN, OrgmailServer, alive, children, wait_for


def _env(tmp_path: Path) -> dict[str, str]:
    return {"ORGMAIL_DATA_DIR": str(tmp_path), "ORGMAIL_SECRET_KEY": "workers-secret"}


def _workers(server: OrgmailServer) -> list[int]:
    """Its API workers: `serve … --parent PID` (a child forked but not yet running its own program
    still shows `serve`'s command line, without `--parent`)."""
    assert server.process is not None
    return sorted(
        pid for pid, command in children(server.process.pid).items() if " serve " in command and "--parent" in command
    )


def _started_up(server: OrgmailServer) -> int:
    """How many worker processes have started up so far (each logs it once)."""
    return server.log().count("Application startup complete")


def _sockets_on(port: int, *, state: str) -> set[int]:
    """Inodes of the IPv4 TCP sockets on local `port` in `state` (/proc/net/tcp: 0A listening, 01 established)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
            found.add(int(fields[9]))
    return found


def _held_by(pid: int, inodes: set[int]) -> int:
    """How many of the socket `inodes` the process has open."""
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            held += 1
    return held


async def test_each_worker_listens_with_a_socket_of_its_own_and_a_burst_of_connections_reaches_both(tmp_path):
    server = OrgmailServer(_env(tmp_path), tmp_path / "serve.log", options=("--workers", "2"))
    clients: list[socket.socket] = []
    try:
        await server.start()
        await wait_for(lambda: len(_workers(server)) == 2, timeout=20, what="two API workers")
        await wait_for(lambda: len(_sockets_on(server.port, state="0A")) == 2, timeout=20, what="two listeners")
        listening = _sockets_on(server.port, state="0A")
        assert sorted(_held_by(pid, listening) for pid in _workers(server)) == [1, 1]  # not one shared socket

        for _ in range(64):  # a client opening its whole pool at once, as wrk does
            client = socket.create_connection(("127.0.0.1", server.port))
            clients.append(client)

        def accepted() -> list[int]:
            established = _sockets_on(server.port, state="01")
            return [_held_by(pid, established) for pid in _workers(server)]

        await wait_for(lambda: sum(accepted()) == 64, timeout=10, what="the workers to accept 64 connections")
        # By a hash of each connection: each worker's share is ~Binomial(64, 1/2), below 12 with odds ~1e-7.
        assert min(accepted()) >= 12, accepted()
    finally:
        for client in clients:
            client.close()
        server.stop()


async def test_a_second_serve_on_the_same_port_is_refused_before_it_starts_anything(tmp_path):
    first = OrgmailServer(_env(tmp_path), tmp_path / "first.log", options=("--workers", "2"))
    try:
        await first.start()
        second = await asyncio.to_thread(
            subprocess.run,
            [str(BIN / "orgmail"), "serve", "--port", str(first.port), "--workers", "2"],
            env={**os.environ, **_env(tmp_path / "second")},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert f"error: port_in_use: cannot listen on 127.0.0.1:{first.port}" in second.stderr
        assert "webhook delivery" not in second.stdout and "Traceback" not in second.stderr
    finally:
        first.stop()


async def test_a_worker_that_dies_is_started_again_and_the_workers_go_with_serve(tmp_path):
    server = OrgmailServer(_env(tmp_path), tmp_path / "serve.log", options=("--workers", "2"))
    try:
        await server.start()
        await wait_for(lambda: _started_up(server) == 2, timeout=20, what="two API workers to start up")
        first, other = _workers(server)
        os.kill(first, signal.SIGKILL)
        await wait_for(
            lambda: len(_workers(server)) == 2 and first not in _workers(server), timeout=20, what="a new worker"
        )
        await wait_for(
            lambda: "exited (status -9); starting it again in 1 s" in server.log(), timeout=10, what="the log line"
        )
        assert other in _workers(server)

        await wait_for(lambda: _started_up(server) == 3, timeout=20, what="the new worker to start up")
        workers = _workers(server)
        assert server.process is not None
        server.process.kill()  # no chance to stop them: each sees its parent gone and shuts down
        await wait_for(lambda: not any(alive(pid) for pid in workers), timeout=20, what="the workers to stop")
        assert server.log().count("Application shutdown complete") == 2  # gracefully, as on SIGTERM
    finally:
        server.stop()
