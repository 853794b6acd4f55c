"""Prefixed, time-sortable ids (`mbx_01J…`): a ULID body after a resource prefix.

Sorting by id sorts by creation time, which is what newest-first lists and cursors rely on.
Within one millisecond the random part is incremented, so ids made by one process stay ordered.
"""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as ULID uses
_lock = threading.Lock()
_last_ms = 0
_last_random = 0

# mem: internal (members are keyed by userId); rpt: inbound reports (internal)
PREFIXES = {"org", "mbx", "msg", "sup", "dom", "key", "mem", "evt", "rpt", "whk", "whd"}


_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]  # every 10-bit value as its two characters


def _encode(value: int, length: int) -> str:
    """`value` as `length` (even) Crockford base32 characters, two at a time: an id is made with every
    send and every webhook delivery, and one character per step cost several microseconds."""
    return "".join(_PAIRS[(value >> shift) & 0x3FF] for shift in range(5 * length - 10, -1, -10))


def new_id(prefix: str) -> str:
    global _last_ms, _last_random
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            _last_random = (_last_random + 1) % (1 << 80)
        else:
            _last_ms = now_ms
            _last_random = secrets.randbits(80)
        body = _encode(now_ms, 10) + _encode(_last_random, 16)
    return f"{prefix}_{body}"
