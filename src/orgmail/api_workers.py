"""`orgmail serve --workers N` on Linux: N single-process API servers, children of `serve`, each
with a listening socket of its own on the one port (SO_REUSEPORT), so the kernel spreads new
connections across them by a hash of each connection, whichever worker is awake.

Why not uvicorn's own `--workers`: its workers share one listening socket, and the first one awake
accepts every connection waiting (libuv accepts until none is left). A client that opens its pool at
once could land wholly on one worker, which then ran flat out while the other idled: in bench/send.py,
all 64 of wrk's connections on one worker in about one run in three, the machine 18-21 % idle and the
send rate down by a fifth (README, Performance). Elsewhere than Linux (where SO_REUSEPORT does not
balance), uvicorn's workers it is.

The workers are kept running as every child of `serve` is (`supervised`); SIGTERM or Ctrl-C stops
them all side by side, each finishing its sends in flight.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading

from orgmail.supervised import SupervisedProcess

REUSE_PORT_BALANCES = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
GRACEFUL_SHUTDOWN_SECONDS = 30  # a worker's time to finish its sends in flight after SIGTERM


class PortInUse(Exception):
    """Another process listens on the port (`orgmail serve` says so and exits with status 1)."""


def _tcp_socket(host: str) -> socket.socket:
    return socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound, one of the port's group: every worker binds its own."""
    sock = _tcp_socket(host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def check_port_free(host: str, port: int) -> None:
    """A second `serve` on the port would join the first one's group and take half its connections:
    it is refused instead, as a plain bind would refuse it."""
    with _tcp_socket(host) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def run(*, host: str, port: int, workers: int, keep_alive: int) -> None:
    """Until SIGTERM or SIGINT, then stop the workers (each finishes its sends in flight). The port
    was checked free (`check_port_free`) before anything else started."""
    command = [sys.executable, "-m", "orgmail", "serve", "--host", host, "--port", str(port)]
    command += ["--keep-alive", str(keep_alive)]
    children = [
        SupervisedProcess(command, name=f"API worker {n}", stop_grace_seconds=GRACEFUL_SHUTDOWN_SECONDS + 5)
        for n in range(1, workers + 1)
    ]
    stopping = threading.Event()
    handlers = {number: signal.signal(number, lambda *_: stopping.set()) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            child.start()
        while not stopping.wait(1.0):
            pass
    finally:
        for child in children:
            child.begin_stop()
        for child in children:
            child.stop()
        for number, handler in handlers.items():
            signal.signal(number, handler)
