"""Per-API-key rate limit (token bucket), as ASGI middleware in front of everything else.

Keyed by the key id inside the bearer token, so a flood costs no database look-up. Buckets live in
this process: with N workers each allows the rate, so divide by N (documented in the README).
"""

from __future__ import annotations

import json
import math
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from orgmail.core.orgs import is_admin_token


class TokenBuckets:
    def __init__(self, *, rate_per_second: float, burst: int, max_buckets: int = 100_000):
        self.rate = rate_per_second
        self.burst = float(burst)
        self.max_buckets = max_buckets
        # key -> (tokens, last refill); insertion-ordered, so the least recently used comes first
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """0 if allowed, else the seconds until one token is back."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self._buckets) >= self.max_buckets:
            del self._buckets[next(iter(self._buckets))]  # bounded memory: forget the stalest bucket
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0


def _bucket_key(scope: Scope, admin_token: str | None) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            token = value.decode("latin-1").partition(" ")[2].strip()
            if is_admin_token(token, admin_token):
                return "admin"
            # omk_<key id body>_<secret>: the id part names the key without a database look-up.
            # Anything else is bucketed by client address, so junk cannot throttle real keys.
            if token.startswith("omk_"):
                return token[:30]
            client = scope.get("client") or ("unknown", 0)
            return f"client:{client[0]}"
    return None


class RateLimit:
    def __init__(self, app: ASGIApp, *, rate_per_second: float, burst: int, admin_token: str | None = None):
        self.app = app
        self.admin_token = admin_token
        self.buckets = TokenBuckets(rate_per_second=rate_per_second, burst=burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _bucket_key(scope, self.admin_token) if scope["type"] == "http" else None
        wait = self.buckets.take(key) if key is not None else 0.0
        if not wait:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "error": {
                    "code": "rate_limited",
                    "message": "Too many requests; slow down.",
                    "details": {"retryAfterSeconds": math.ceil(wait)},
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(math.ceil(wait)).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
