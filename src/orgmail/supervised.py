"""A child process `orgmail serve` keeps running: started, started again when it dies (after 1 s,
doubling up to 30 s, back to 1 s once it has run well for a minute), stopped with SIGTERM and a
grace period, then SIGKILL. The webhook delivery process and, with `--workers N`, the API workers
are such children.

Each child has a process group of its own (or a session, if asked), so a Ctrl-C at the terminal
reaches only `serve`, which stops each child once; a second signal would cut a worker's graceful
shutdown short. Each also watches its parent (`--parent`) and stops when it is gone, so a `serve`
killed outright leaves none behind (`stop_when_orphaned`, on the child's side).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("orgmail.serve")

FIRST_RESTART_DELAY = 1.0
LONGEST_RESTART_DELAY = 30.0


class SupervisedProcess:
    def __init__(self, command: Sequence[str], *, name: str, own_session: bool = False, stop_grace_seconds: float):
        self.command = list(command)
        self.name = name  # in the log: "<name> exited (status -9); starting it again in 1 s"
        self.own_session = own_session
        self.stop_grace_seconds = stop_grace_seconds
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._process = self._spawn()
        self._watcher = threading.Thread(target=self._keep_running, name=f"{self.name} watcher", daemon=True)
        self._watcher.start()

    def begin_stop(self) -> None:
        """No more restarts; SIGTERM to the process, once (several children stop side by side; a
        second SIGTERM would cut the delivery process's graceful stop short)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def stop(self) -> None:
        """SIGTERM (unless `begin_stop` sent it), then SIGKILL after the grace period."""
        self.begin_stop()
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            process.wait(self.stop_grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [*self.command, "--parent", str(os.getpid())]
        if self.own_session:
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, process_group=0)

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
            log.warning("%s exited (status %s); starting it again in %g s", self.name, code, delay)
            if self._stopping.wait(delay):
                return
            self._process, started = self._spawn(), time.monotonic()
            delay = min(delay * 2, LONGEST_RESTART_DELAY)


def stop_when_orphaned(parent: int, on_orphaned: Callable[[], object]) -> None:
    """Call `on_orphaned` (from a thread of its own) once `parent` is no longer this process's parent."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        on_orphaned()

    threading.Thread(target=watch, name="parent watch", daemon=True).start()
