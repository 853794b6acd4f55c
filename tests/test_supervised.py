"""`SupervisedProcess`, on a real child: stopping it sends SIGTERM once, however it is stopped (a second
one would cut the delivery process's graceful stop short), and it is given the time to finish."""

from __future__ import annotations

import os
import sys
import time

from orgmail.supervised import SupervisedProcess

# Counts the SIGTERMs it gets into a file, and exits 0.3 s after the first (a graceful stop's work).
CHILD = """
import signal, sys, time
path, got = sys.argv[1], []
def terminated(number, frame):
    got.append(number)
    open(path, "w").write(str(len(got)))
signal.signal(signal.SIGTERM, terminated)
open(path + ".ready", "w").close()
while not got:
    time.sleep(0.01)
time.sleep(0.3)
"""


def _started(tmp_path) -> tuple[SupervisedProcess, str]:
    count = str(tmp_path / "sigterms")
    child = SupervisedProcess([sys.executable, "-c", CHILD, count], name="test child", stop_grace_seconds=10)
    child.start()
    _wait_for_file(count + ".ready")
    return child, count


def _wait_for_file(path: str) -> None:
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.01)


def test_begin_stop_then_stop_sends_one_sigterm_and_waits_for_the_child(tmp_path):
    child, count = _started(tmp_path)
    child.begin_stop()
    _wait_for_file(count)  # it is stopping when stop() is called (serve stops the workers one after another)
    child.stop()
    assert open(count).read() == "1"
    assert child._process is not None and child._process.returncode == 0  # it ended on its own, not killed


def test_stop_alone_sends_one_sigterm(tmp_path):
    child, count = _started(tmp_path)
    child.stop()
    assert open(count).read() == "1"
