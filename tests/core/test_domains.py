"""Domains in the core: added with DKIM keys encrypted at rest, signing keys decrypted once."""

from __future__ import annotations

from sqlalchemy import select

from orgmail.core import domains
from orgmail.db.tables import DkimKey
from orgmail.mail.dkim import KeyVault


async def test_add_domain_stores_encrypted_keys_and_lists_records(app, tenant, session):
    vault: KeyVault = app.state.vault
    domain = await domains.add_domain(session, org_id=tenant.org_id, name="Mail.Example.COM.", vault=vault)
    assert domain.name == "mail.example.com" and domain.status == "pending"
    rows = list(await session.scalars(select(DkimKey).where(DkimKey.domain_id == domain.id)))
    assert sorted(r.algorithm for r in rows) == ["ed25519", "rsa"]
    assert all(b"PRIVATE" not in r.private_key_encrypted for r in rows)
    records = domains.dns_records(domain, await domains.dkim_keys(session, domain_id=domain.id))
    assert [r["purpose"] for r in records] == ["verification", "dkim", "dkim", "spf", "dmarc"]
    assert records[0]["name"] == "_orgmail.mail.example.com"
    assert records[1]["value"].startswith("v=DKIM1; k=rsa; p=")
    keys = await domains.load_signing_keys(session, domain_id=domain.id, vault=vault)
    assert [k.algorithm for k in keys] == ["rsa", "ed25519"]
    again = await domains.load_signing_keys(session, domain_id=domain.id, vault=vault)
    assert again[0] is keys[0]  # served from the cache


async def test_delete_domain_removes_its_keys_and_forgets_the_cached_signing_keys(app, tenant, session):
    vault: KeyVault = app.state.vault
    domain_id = (await domains.add_domain(session, org_id=tenant.org_id, name="gone.example.com", vault=vault)).id
    await domains.load_signing_keys(session, domain_id=domain_id, vault=vault)
    assert any(cached_domain == domain_id for cached_domain, _ in domains._signing_key_cache)
    await session.rollback()  # end the read; delete_domain opens its own transaction
    await domains.delete_domain(session, org_id=tenant.org_id, domain_id=domain_id)
    assert not any(cached_domain == domain_id for cached_domain, _ in domains._signing_key_cache)
    rows = list(await session.scalars(select(DkimKey).where(DkimKey.domain_id == domain_id)))
    assert rows == []
