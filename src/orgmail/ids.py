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


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


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
