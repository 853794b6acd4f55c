"""Per-API-key rate limit (token bucket), as ASGI middleware in front of everything else.

A request counts against its key only once that key has been verified (it is in the API key cache,
which `authenticate` fills); anything else, a wrong secret included, counts against the client's
address. So naming another org's key id spends nobody's budget but your own (DESIGN.md §5), and a
flood still costs no database look-up. Buckets live in this process: with N workers each allows the
rate, so divide by N (documented in the README).
"""

from __future__ import annotations

import math
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from orgmail.api.deps import ApiKeyCache
from orgmail.api.errors import error_response
from orgmail.core.orgs import is_admin_token
from orgmail.errors import RateLimited


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


def _bucket_key(scope: Scope, admin_token: str | None, verified_keys: ApiKeyCache) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            token = value.decode("latin-1").partition(" ")[2].strip()
            if is_admin_token(token, admin_token):
                return "admin"
            org_id = verified_keys.org_for(token)
            if org_id is not None:
                return f"key:{token[:30]}"  # omk_<key id>: the secret part stays out of memory here
            client = scope.get("client") or ("unknown", 0)
            return f"client:{client[0]}"
    return None


class RateLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        rate_per_second: float,
        burst: int,
        verified_keys: ApiKeyCache,
        admin_token: str | None = None,
    ):
        self.app = app
        self.admin_token = admin_token
        self.verified_keys = verified_keys
        self.buckets = TokenBuckets(rate_per_second=rate_per_second, burst=burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _bucket_key(scope, self.admin_token, self.verified_keys) if scope["type"] == "http" else None
        wait = self.buckets.take(key) if key is not None else 0.0
        if not wait:
            await self.app(scope, receive, send)
            return
        seconds = math.ceil(wait)
        response = error_response(RateLimited(details={"retryAfterSeconds": seconds}), {"Retry-After": str(seconds)})
        await response(scope, receive, send)
