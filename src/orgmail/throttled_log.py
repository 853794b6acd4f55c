"""Log lines that an outage would repeat hundreds of times a second, at most once per interval."""

from __future__ import annotations

import logging
import time


class ThrottledLog:
    """`warning` logs at most once per `interval` seconds; the next line says how many it held back."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0):
        self.logger = logger
        self.interval = interval
        self._last = float("-inf")
        self._held_back = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._held_back += 1
            return
        if self._held_back:
            message += f" ({self._held_back} more like it since the last line)"
        self.logger.warning(message, *args)
        self._last, self._held_back = now, 0
