"""Lowering a process's CPU priority against the whole host, not only against its own session.

Linux with autogroup (`kernel.sched_autogroup_enabled`, on by default in many distributions' kernels
and on this project's VMs) shares the CPU between sessions first, each one an "autogroup", and a
process's nice weighs it only against the others in its session. A process alone in its session at
nice 19 took a whole core from two at nice 0 in another session, exactly as at nice 0 (measured; README,
Performance). A session's own nice is its autogroup's, set through `/proc/self/autogroup`.
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
    if os.getsid(0) != os.getpid():
        return
    try:
        AUTOGROUP.write_text(str(by))
    except OSError:  # no autogroup here (another OS, or a kernel without it): the nice above is all there is
        pass
