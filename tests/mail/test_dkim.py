"""DKIM signing: fixed keys, clock and message give fixed bytes (golden file), and dkimpy verifies them."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import serialization

from orgmail.mail import dkim

GOLDEN = Path(__file__).parent.parent / "golden"
MESSAGE = (
    b"From: Ann Example <ann@example.com>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: Quarterly  report\r\n"
    b"Date: Wed, 25 Nov 2026 13:00:00 +0000\r\n"
    b"Message-ID: <golden.1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: text/plain; charset="utf-8"\r\n'
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"\r\n"
    b"Hello Bob,  \r\n"
    b"\r\n"
    b"the numbers are in.\r\n"
    b"\r\n"
    b"\r\n"
)


def _fixed_keys() -> list[dkim.SigningKey]:
    rsa_key = serialization.load_pem_private_key((GOLDEN / "dkim-test-rsa.pem").read_bytes(), None)
    ed_key = serialization.load_pem_private_key((GOLDEN / "dkim-test-ed25519.pem").read_bytes(), None)
    return [dkim.SigningKey("test-rsa", "rsa", rsa_key), dkim.SigningKey("test-ed", "ed25519", ed_key)]


def _records(keys: list[dkim.SigningKey]) -> dict[str, str]:
    records = {}
    for key in keys:
        public = key.private_key.public_key()
        if key.algorithm == "rsa":
            raw = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        else:
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        records[f"{key.selector}._domainkey.example.com"] = dkim.dns_record_value(
            algorithm=key.algorithm, public_key=base64.b64encode(raw).decode()
        )
    return records


def test_signed_bytes_match_the_golden_file():
    signed = dkim.sign(MESSAGE, domain="example.com", keys=_fixed_keys(), timestamp=1795611600)
    assert signed == (GOLDEN / "dkim-signed.eml").read_bytes()


def test_both_signatures_verify_with_dkimpy():
    keys = _fixed_keys()
    signed = dkim.sign(MESSAGE, domain="example.com", keys=keys)
    assert dkim.verify(signed, txt_records=_records(keys)) == [True, True]
    assert signed.count(b"DKIM-Signature:") == 2
    assert b"a=rsa-sha256; c=relaxed/relaxed" in signed and b"a=ed25519-sha256; c=relaxed/relaxed" in signed


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.replace(b"the numbers are in.", b"the numbers are out."),
        lambda m: m.replace(b"Subject: Quarterly  report", b"Subject: Quarterly  invoice"),
        lambda m: m.replace(b"To: bob@example.net\r\n", b"To: bob@example.net\r\nFrom: evil@example.org\r\n"),
    ],
    ids=["body", "subject", "added-from"],
)
def test_tampering_breaks_both_signatures(tamper):
    keys = _fixed_keys()
    signed = dkim.sign(MESSAGE, domain="example.com", keys=keys)
    assert dkim.verify(tamper(signed), txt_records=_records(keys)) == [False, False]


def test_relaxed_canonicalization_survives_rewrapping_and_whitespace():
    keys = _fixed_keys()
    signed = dkim.sign(MESSAGE, domain="example.com", keys=keys)
    rewrapped = signed.replace(b"Subject: Quarterly  report", b"Subject:   Quarterly\r\n\treport")
    assert dkim.verify(rewrapped, txt_records=_records(keys)) == [True, True]


def test_generated_keys_round_trip_through_the_vault():
    vault = dkim.KeyVault(b"service-secret")
    generated = dkim.generate_keys(today="20261125", tag="ab12")
    assert [k.selector for k in generated] == ["om20261125ab12r", "om20261125ab12e"]
    assert dkim.generate_keys()[0].selector != dkim.generate_keys()[0].selector
    keys = [
        vault.signing_key(selector=k.selector, algorithm=k.algorithm, encrypted=vault.encrypt(k.private_der))
        for k in generated
    ]
    assert vault.encrypt(generated[0].private_der) != generated[0].private_der
    records = {
        f"{k.selector}._domainkey.example.com": dkim.dns_record_value(algorithm=k.algorithm, public_key=k.public_key)
        for k in generated
    }
    assert len(records["om20261125ab12r._domainkey.example.com"]) > 255  # needs several TXT strings in DNS
    signed = dkim.sign(MESSAGE, domain="example.com", keys=keys)
    assert dkim.verify(signed, txt_records=records) == [True, True]
    with pytest.raises(InvalidToken):  # another secret cannot read the keys
        dkim.KeyVault(b"another-secret").decrypt(vault.encrypt(b"x"))
