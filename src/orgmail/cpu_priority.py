"""Lowering a process's CPU priority against the whole host, not only against its own session.

Linux with autogroup (`kernel.sched_autogroup_enabled`, on by default in many distributions' kernels
and on this project's VMs) shares the CPU between sessions first, each one an "autogroup", and a
process's nice weighs it only against the others in its session. A process alone in its session at
nice 19 took a whole core from two at nice 0 in another session, exactly as at nice 0 (measured; README,
Performance). A session's own nice is its autogroup's, set through `/proc/self/autogroup`. The file
reads empty for a session without an autogroup of its own (init's, where a container's processes may
run: CI's do): such a session is scheduled with the host's, and a plain nice already counts against them.
"""

from __future__ import annotations

import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")


def lower_cpu_priority(by: int) -> None:
    """Lower this process's nice by `by` and, if it leads a session of its own (as `orgmail serve`'s
    delivery process does), its session's too. A session that others share (a shell's) is left as it
    is: its nice is not this process's to change."""
    if by <= 0:
        return
    os.nice(by)
    if os.getsid(0) != os.getpid() or not _scheduled_by_autogroup():
        return
    AUTOGROUP.write_text(str(by))


def _scheduled_by_autogroup() -> bool:
    """`/autogroup-42 nice 0` when this session has an autogroup of its own; empty when it does not."""
    try:
        return AUTOGROUP.read_text().strip() != ""
    except OSError:  # another OS, or a kernel built without autogroup
        return False
