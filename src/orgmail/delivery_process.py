"""Webhook delivery beside `orgmail serve`'s API workers: one process of its own (`orgmail webhook
deliver`) at a lower CPU priority, started before the workers and stopped after them.

Why apart and niced: in the API workers, delivery ran in their event loops at their priority; a
process at nice 19 beside them takes the CPU they leave. Flat out on two cores, the send rate with a
webhook on every event fell 13 % instead of 22 % (medians of 20 rounds each, README, Performance), and
the deliveries still kept up with the sends. The price: one more process's memory, and a host kept
saturated for long delays webhooks (their queue waits) rather than sends; for that load, `orgmail
webhook deliver` runs on other cores or another host instead.

One per `serve`, whatever `--workers`: the workers are told not to deliver (ORGMAIL_WEBHOOK_DELIVERY=0
in the environment they inherit). The process has a session of its own, so a Ctrl-C meant for
`serve` reaches it once, from here, and it watches its parent, so a `serve` killed outright does
not leave it behind. If it dies, it is started again (after 1 s, doubling up to 30 s).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

log = logging.getLogger("orgmail.webhooks")

FIRST_RESTART_DELAY = 1.0
LONGEST_RESTART_DELAY = 30.0


class DeliveryProcess:
    def __init__(self, *, nice: int, stop_grace_seconds: float = 20.0):
        self.nice = nice
        self.stop_grace_seconds = stop_grace_seconds  # a POST's timeout and then some: attempts in flight end
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._process = self._spawn()
        self._watcher = threading.Thread(target=self._keep_running, name="webhook-delivery-watcher", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period: attempts in flight finish, the queue keeps the rest."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(self.stop_grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "orgmail", "webhook", "deliver"]
        command += ["--nice", str(self.nice), "--parent", str(os.getpid())]
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)

    def _keep_running(self) -> None:
        delay, started = FIRST_RESTART_DELAY, time.monotonic()
        while not self._stopping.is_set():
            assert self._process is not None
            try:
                code = self._process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 2 * LONGEST_RESTART_DELAY:
                delay = FIRST_RESTART_DELAY  # it had been running well: not a crash loop
            log.warning("webhook delivery process exited (status %s); starting it again in %g s", code, delay)
            if self._stopping.wait(delay):
                return
            self._process, started = self._spawn(), time.monotonic()
            delay = min(delay * 2, LONGEST_RESTART_DELAY)
