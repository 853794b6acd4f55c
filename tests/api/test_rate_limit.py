"""The per-key rate limit answers 429 `rate_limited` with Retry-After, per key, then lets traffic back."""

from __future__ import annotations

import httpx

from orgmail.api.ratelimit import TokenBuckets
from orgmail.app import create_app


def test_bucket_refills_at_the_rate():
    buckets = TokenBuckets(rate_per_second=2, burst=2)
    assert buckets.take("k", now=0) == 0 and buckets.take("k", now=0) == 0
    assert buckets.take("k", now=0) == 0.5
    assert buckets.take("other", now=0) == 0  # keys don't share buckets
    assert buckets.take("k", now=0.5) == 0


def test_buckets_stay_bounded_and_forget_the_stalest_first():
    buckets = TokenBuckets(rate_per_second=1, burst=1, max_buckets=2)
    assert buckets.take("real", now=0) == 0
    assert buckets.take("junk-1", now=0) == 0
    assert buckets.take("real", now=0) == 1  # "real" is now the freshest
    assert buckets.take("junk-2", now=0) == 0  # evicts junk-1, not "real"
    assert buckets.take("real", now=0) > 0


async def test_flood_gets_429_per_key(settings, tenant, other_tenant):
    from dataclasses import replace

    limited = create_app(replace(settings, rate_limit_per_second=1, rate_limit_burst=3))
    async with limited.router.lifespan_context(limited):
        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://orgmail.test") as http:

            def call(key):
                return http.post("/v1/mail/members/list", json={}, headers={"Authorization": f"Bearer {key}"})

            # The first call verifies the key (it counts against the client address); then the key's own bucket.
            assert (await call(tenant.key)).status_code == 200
            statuses = [(await call(tenant.key)).status_code for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            limited_response = await call(tenant.key)
            assert limited_response.json()["error"]["code"] == "rate_limited"
            assert int(limited_response.headers["retry-after"]) >= 1
            assert (await call(other_tenant.key)).status_code == 200
            for _ in range(5):  # junk tokens spend their own bucket, not the admin's or a key's
                await call("junk")
            from tests.conftest import ADMIN_TOKEN

            admin = await http.post("/v1/admin/orgs/list", json={}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert admin.status_code == 200
            metrics = (await http.get("/metrics")).text
            assert 'status="429"' in metrics  # the limiter's answers are counted too


async def test_naming_another_orgs_key_id_spends_only_the_callers_own_budget(settings, tenant):
    """DESIGN.md §5: a key whose secret does not verify counts against the client address, never
    against the key it names, so nobody can exhaust another org's budget by naming its key id."""
    from dataclasses import replace

    limited = create_app(replace(settings, rate_limit_per_second=0.01, rate_limit_burst=3))
    forged = tenant.key.rsplit("_", 1)[0] + "_not-the-secret"
    async with limited.router.lifespan_context(limited):
        victim = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=limited, client=("10.0.0.1", 1000)), base_url="http://orgmail.test"
        )
        attacker = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=limited, client=("10.0.0.2", 1000)), base_url="http://orgmail.test"
        )
        async with victim, attacker:

            def call(http, key):
                return http.post("/v1/mail/members/list", json={}, headers={"Authorization": f"Bearer {key}"})

            assert (await call(victim, tenant.key)).status_code == 200  # the key is verified (and cached)
            flood = [(await call(attacker, forged)).status_code for _ in range(6)]
            assert flood == [401, 401, 401, 429, 429, 429]  # the attacker's own address ran dry
            assert [(await call(victim, tenant.key)).status_code for _ in range(3)] == [200, 200, 200]
            assert (await call(victim, tenant.key)).status_code == 429  # the victim's own burst is 3
