"""Webhook delivery beside `orgmail serve`'s API workers: one process of its own (`orgmail webhook
deliver`) at a lower CPU priority, started before the workers and stopped after them.

Why apart and niced: in the API workers, delivery ran in their event loops at their priority; a
process of its own at the lowest priority takes only the CPU they leave, and when sending keeps the
host busy, webhooks wait in their queue rather than sends slowing down (README, Performance). For
a host kept saturated for long, `orgmail webhook deliver` runs on other cores or another host instead.

One per `serve`, whatever `--workers`: the workers are told not to deliver (ORGMAIL_WEBHOOK_DELIVERY=0
in the environment they inherit). It has a session of its own, so that lowering its priority lowers
its session's too (`cpu_priority`: with autogroup, a nice counts only within a session), and it is
kept running as every child of `serve` is (`supervised`).
"""

from __future__ import annotations

import sys

from orgmail.supervised import SupervisedProcess


def delivery_process(*, nice: int, stop_grace_seconds: float = 20.0) -> SupervisedProcess:
    """Not started yet. The grace period is a POST's timeout and then some: attempts in flight end."""
    return SupervisedProcess(
        [sys.executable, "-m", "orgmail", "webhook", "deliver", "--nice", str(nice)],
        name="webhook delivery process",
        own_session=True,
        stop_grace_seconds=stop_grace_seconds,
    )
