"""DKIM keys and signatures: RSA-SHA256 plus Ed25519-SHA256 (RFC 8463), relaxed/relaxed.

dkimpy does the canonicalization (RFC 6376 §3.4) and the verification; `cryptography` (OpenSSL) does
the key generation and the signing, which is ~12x faster than dkimpy's pure-Python RSA. Private keys
are stored encrypted with a key derived from the service's secret key.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import dkim
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from dkim.canonicalization import Relaxed

Algorithm = Literal["rsa", "ed25519"]

# Signed when present (RFC 6376 §5.4.1 recommends these); `from` is signed once more than it occurs
# ("oversigning") so that nobody can add a second From after signing.
SIGNED_HEADERS = (
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
)


@dataclass(frozen=True)
class GeneratedKey:
    selector: str
    algorithm: Algorithm
    private_der: bytes  # PKCS#8 DER, to be encrypted before it is stored
    public_key: str  # the base64 `p=` value


@dataclass(frozen=True)
class SigningKey:
    """A ready-to-use private key (decrypted once, then cached by the caller)."""

    selector: str
    algorithm: Algorithm
    private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def generate_keys(*, today: str | None = None, tag: str | None = None) -> list[GeneratedKey]:
    """An RSA-2048 and an Ed25519 key. Selectors are dated (a rotation adds new ones beside them) and
    tagged at random, so two orgs adding one domain on one day never publish at the same name."""
    stamp = (today or time.strftime("%Y%m%d", time.gmtime())) + (tag if tag is not None else secrets.token_hex(2))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    pkcs8 = (serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    rsa_public = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # RFC 8463 §4.2: the Ed25519 p= is the raw 32-byte public key, not a DER structure.
    ed_public = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return [
        GeneratedKey(f"om{stamp}r", "rsa", rsa_key.private_bytes(*pkcs8), base64.b64encode(rsa_public).decode()),
        GeneratedKey(f"om{stamp}e", "ed25519", ed_key.private_bytes(*pkcs8), base64.b64encode(ed_public).decode()),
    ]


def dns_record_value(*, algorithm: Algorithm, public_key: str) -> str:
    return f"v=DKIM1; k={algorithm}; p={public_key}"


class KeyVault:
    """Encrypts private keys at rest (Fernet: AES-128-CBC + HMAC-SHA256) under the service's secret."""

    def __init__(self, secret_key: bytes):
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"orgmail dkim keys").derive(secret_key)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, private_der: bytes) -> bytes:
        return self._fernet.encrypt(private_der)

    def decrypt(self, token: bytes) -> bytes:
        return self._fernet.decrypt(token)

    def signing_key(self, *, selector: str, algorithm: Algorithm, encrypted: bytes) -> SigningKey:
        private_key = serialization.load_der_private_key(self.decrypt(encrypted), password=None)
        expected = rsa.RSAPrivateKey if algorithm == "rsa" else ed25519.Ed25519PrivateKey
        if not isinstance(private_key, expected):
            raise ValueError(f"key for selector {selector} is not {algorithm}")
        return SigningKey(selector=selector, algorithm=algorithm, private_key=private_key)


def _signature(key: SigningKey, digest: bytes) -> bytes:
    if isinstance(key.private_key, rsa.RSAPrivateKey):
        return key.private_key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    # RFC 8463 §3: Ed25519 signs the SHA-256 hash of the canonicalized headers.
    return key.private_key.sign(digest)


def _fold_tags(fields: list[tuple[bytes, bytes]], width: int = 76) -> bytes:
    """Tag list folded between tags and at h='s colons only: FWS inside a header name is invalid."""
    pieces: list[bytes] = []
    for index, (name, value) in enumerate(fields):
        tail = b";" if index < len(fields) - 1 else b""
        if name == b"h":
            names = value.split(b":")
            parts = [b"h=" + names[0]] + [b":" + n for n in names[1:]]
            parts[-1] += tail
            pieces.extend(parts)
        else:
            pieces.append(name + b"=" + value + tail)
    lines, line = [], b""
    for piece in pieces:
        joiner = b"" if piece.startswith(b":") else b" "
        if line and len(line) + len(joiner) + len(piece) > width:
            lines.append(line)
            line = piece
        else:
            line = line + joiner + piece if line else piece
    lines.append(line)
    return b"\r\n ".join(lines)


def sign(message: bytes, *, domain: str, keys: Sequence[SigningKey], timestamp: int | None = None) -> bytes:
    """Return `message` with one DKIM-Signature per key prepended (CRLF line endings expected)."""
    headers, body = dkim.rfc822_parse(message)
    body_hash = base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())
    present = {name.decode("ascii", "replace").lower() for name, _ in headers}
    include = [name.encode() for name in SIGNED_HEADERS if name in present]
    include += [b"from"]  # oversign
    canonical = Relaxed.canonicalize_headers(headers)
    stamp = str(int(time.time()) if timestamp is None else timestamp).encode()
    signatures = []
    for key in keys:
        fields = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256" if key.algorithm == "rsa" else b"ed25519-sha256"),
            (b"c", b"relaxed/relaxed"),
            (b"d", domain.encode()),
            (b"s", key.selector.encode()),
            (b"t", stamp),
            (b"h", b":".join(include)),
            (b"bh", body_hash),
        ]
        unsigned = _fold_tags(fields)
        hasher = hashlib.sha256()
        # The signature covers its own header with an empty b= (RFC 6376 §3.7).
        unsigned_header = (b"DKIM-Signature", b" " + unsigned + b"; b=")
        dkim.hash_headers(hasher, Relaxed, canonical, list(include), unsigned_header, None)
        value = base64.b64encode(_signature(key, hasher.digest()))
        # b= is folded into 76-character lines; relaxed canonicalization ignores the folding.
        folded_b = b"\r\n\t".join(value[i : i + 76] for i in range(0, len(value), 76))
        signatures.append(b"DKIM-Signature: " + unsigned + b";\r\n\tb=" + folded_b + b"\r\n")
    return b"".join(signatures) + message


def verify(message: bytes, *, txt_records: dict[str, str]) -> list[bool]:
    """Verify every DKIM-Signature with dkimpy, looking keys up in `txt_records` (name → TXT value).

    Used by tests and by operators checking a stored message; receivers do their own verification.
    """

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        value = txt_records.get(name.decode().rstrip(".").lower())
        return value.encode() if value is not None else None

    verifier = dkim.DKIM(message)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    results = []
    for index in range(count):
        try:
            results.append(bool(verifier.verify(idx=index, dnsfunc=lookup)))
        except dkim.DKIMException:
            results.append(False)
    return results
