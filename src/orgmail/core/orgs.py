"""Orgs and their API keys. Keys are shown once and stored as a SHA-256 hash.

A key is `omk_<key id body>_<secret>`: the id part finds the row by primary key, and the secret is
compared in constant time. The secret has 256 bits, so a fast hash is right here (no stretching).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.core.pages import Page, newest_first
from orgmail.db.tables import ApiKey, Org, utcnow
from orgmail.errors import NotFound, Unauthorized
from orgmail.ids import new_id

KEY_PREFIX = "omk_"


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_org(session: AsyncSession, *, name: str) -> Org:
    async with session.begin():
        org = Org(id=new_id("org"), name=name)
        session.add(org)
    return org


async def list_orgs(session: AsyncSession, *, limit: int = 50, cursor: str | None = None) -> Page[Org]:
    return await newest_first(session, select(Org), Org.id, limit=limit, cursor=cursor)


async def require_org(session: AsyncSession, org_id: str) -> Org:
    org = await session.get(Org, org_id)
    if org is None:
        raise NotFound("No such organization.")
    return org


async def create_api_key(session: AsyncSession, *, org_id: str, name: str | None = None) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext key, which is never available again."""
    async with session.begin():
        await require_org(session, org_id)
        key_id = new_id("key")
        secret = secrets.token_urlsafe(32)
        api_key = ApiKey(id=key_id, org_id=org_id, name=name, secret_hash=_hash_secret(secret))
        session.add(api_key)
    return api_key, f"{KEY_PREFIX}{key_id.removeprefix('key_')}_{secret}"


async def revoke_api_key(session: AsyncSession, *, key_id: str) -> None:
    async with session.begin():
        api_key = await session.get(ApiKey, key_id)
        if api_key is None or api_key.revoked_at is not None:
            raise NotFound("No such API key.")
        api_key.revoked_at = utcnow()


def is_admin_token(token: str, admin_token: str | None) -> bool:
    """The platform's admin token (constant time); never true while no admin token is configured."""
    return admin_token is not None and admin_token != "" and hmac.compare_digest(token.encode(), admin_token.encode())


def split_key(key: str) -> tuple[str, str] | None:
    if not key.startswith(KEY_PREFIX):
        return None
    body, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or not body or not secret or len(key) > 200:
        return None
    return f"key_{body}", secret


async def org_for_key(session: AsyncSession, key: str) -> str:
    """The org an API key belongs to; Unauthorized for anything else."""
    parts = split_key(key)
    if parts is None:
        raise Unauthorized()
    key_id, secret = parts
    row = (
        await session.execute(select(ApiKey.org_id, ApiKey.secret_hash, ApiKey.revoked_at).where(ApiKey.id == key_id))
    ).first()
    if row is None or row.revoked_at is not None:
        raise Unauthorized()
    if not hmac.compare_digest(row.secret_hash, _hash_secret(secret)):
        raise Unauthorized()
    return row.org_id
