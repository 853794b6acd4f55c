"""Mailbox passwords: generated with `secrets`, hashed with Argon2id in the form Dovecot reads."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

_hasher = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106 low-memory profile
DOVECOT_SCHEME = "{ARGON2ID}"


def generate_password() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


def hash_for_dovecot(password: str) -> str:
    return DOVECOT_SCHEME + _hasher.hash(password)


def verify_dovecot_hash(stored: str, password: str) -> bool:
    if not stored.startswith(DOVECOT_SCHEME):
        return False
    try:
        return _hasher.verify(stored[len(DOVECOT_SCHEME) :], password)
    except VerificationError:
        return False
