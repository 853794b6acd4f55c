"""DSN requests (RFC 3461) on the relay: RET and ENVID on MAIL, NOTIFY and ORCPT on each RCPT, only when
the server offers DSN, pipelined and one command at a time; xtext, the encoding of ENVID and ORCPT."""

from __future__ import annotations

import re

import aiosmtplib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgmail.mail.relay import DsnRequest, OutboxRelay
from orgmail.mail.relay.xtext import decode_xtext, encode_xtext
from tests.smtp_relay import MESSAGE, pipelined, relay_to

both_ways = pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-at-a-time"])

MESSAGE_ID = "msg_01M8SJXTW13FG2S1NS6HVQHN0M"
VERP = f"bounces+{MESSAGE_ID}@bounces.example.net"
RECIPIENTS = ["a+b@example.net", "c=d@example.net"]  # "+" and "=" are what xtext encodes in an address
SIZE = f"SIZE={len(MESSAGE)}"


async def _send(smtp_relay, tmp_path, *, pipelining: bool, dsn: DsnRequest | None, recipients=RECIPIENTS):
    relay = relay_to(tmp_path, smtp_relay.url, relay_pool_size=1)
    try:
        result = await relay.send(sender=VERP, recipients=recipients, message=MESSAGE, dsn=dsn)
        assert pipelined(relay) is pipelining
    finally:
        await relay.close()
    assert result.accepted == recipients
    [received] = smtp_relay.received
    assert received.mail_from == VERP
    return received


@both_ways
async def test_a_relay_offering_dsn_is_asked_for_notifications(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining, smtp_relay.behaviour.dsn = pipelining, True
    received = await _send(smtp_relay, tmp_path, pipelining=pipelining, dsn=DsnRequest(envid=MESSAGE_ID))
    assert received.mail_options == [SIZE, "RET=HDRS", f"ENVID={MESSAGE_ID}"]
    assert received.rcpt_options == {
        "a+b@example.net": ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;a+2Bb@example.net"],
        "c=d@example.net": ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;c+3Dd@example.net"],
    }


@both_ways
async def test_envid_is_xtext_and_notify_never_stands_alone(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining, smtp_relay.behaviour.dsn = pipelining, True
    dsn = DsnRequest(envid="msg_1+2=3 x", notify=("NEVER",), ret="FULL")
    received = await _send(smtp_relay, tmp_path, pipelining=pipelining, dsn=dsn, recipients=["bob@example.net"])
    assert received.mail_options == [SIZE, "RET=FULL", "ENVID=msg_1+2B2+3D3+20x"]
    assert received.rcpt_options == {"bob@example.net": ["NOTIFY=NEVER", "ORCPT=rfc822;bob@example.net"]}


@both_ways
async def test_a_relay_not_offering_dsn_gets_plain_commands(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining  # and dsn stays False
    received = await _send(smtp_relay, tmp_path, pipelining=pipelining, dsn=DsnRequest(envid=MESSAGE_ID))
    assert received.mail_options == [SIZE]
    assert received.rcpt_options == {"a+b@example.net": [], "c=d@example.net": []}


@both_ways
async def test_no_dsn_request_means_plain_commands_even_where_offered(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining, smtp_relay.behaviour.dsn = pipelining, True
    received = await _send(smtp_relay, tmp_path, pipelining=pipelining, dsn=None)
    assert received.mail_options == [SIZE]
    assert received.rcpt_options == {"a+b@example.net": [], "c=d@example.net": []}


async def test_what_each_connection_offers_decides(smtp_relay, tmp_path):
    """The pool's connection offered DSN; its replacement, opened after the relay stopped offering
    it, gets plain commands."""
    smtp_relay.behaviour.dsn = True
    relay = relay_to(tmp_path, smtp_relay.url, relay_pool_size=1)
    dsn = DsnRequest(envid=MESSAGE_ID)
    try:
        await relay.send(sender=VERP, recipients=["bob@example.net"], message=MESSAGE, dsn=dsn)
        smtp_relay.behaviour.dsn = False
        smtp_relay.drop_connections()
        await relay.send(sender=VERP, recipients=["bob@example.net"], message=MESSAGE, dsn=dsn)
    finally:
        await relay.close()
    assert [r.mail_options for r in smtp_relay.received] == [[SIZE, "RET=HDRS", f"ENVID={MESSAGE_ID}"], [SIZE]]
    assert [r.rcpt_options["bob@example.net"] for r in smtp_relay.received] == [
        ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;bob@example.net"],
        [],
    ]


async def test_a_relay_not_offering_dsn_refuses_its_parameters(smtp_relay):
    """Why plain commands matter: the test relay, like aiosmtpd and other servers, refuses parameters
    it did not offer."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_relay.port) as client:
        assert not client.supports_extension("dsn")
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await client.mail(VERP, options=["RET=HDRS"])
    assert refused.value.code == 555


async def test_the_test_relay_refuses_malformed_dsn_parameters(smtp_relay):
    """What the tests above compare exactly, the test relay also checks (501), as Postfix does."""
    smtp_relay.behaviour.dsn = True
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_relay.port) as client:
        assert client.supports_extension("dsn")
        for options in (["RET=BODY"], ["ENVID=a=b"], ["RET=HDRS", "RET=FULL"]):
            with pytest.raises(aiosmtplib.SMTPSenderRefused, match="5.5.4"):
                await client.mail(VERP, options=options)
        await client.mail(VERP, options=["RET=HDRS", "ENVID=a+3Db"])
        for options in (["NOTIFY=NEVER,FAILURE"], ["ORCPT=rfc822;a+2bb@x"], ["ORCPT=a@x"]):
            with pytest.raises(aiosmtplib.SMTPRecipientRefused, match="5.5.4"):
                await client.rcpt("a+b@x", options=options)
        await client.rcpt("a+b@x", options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;a+2Bb@x"])


async def test_the_outbox_takes_a_dsn_request_and_ignores_it(tmp_path):
    relay = OutboxRelay(tmp_path / "outbox")
    result = await relay.send(sender=VERP, recipients=["bob@example.net"], message=MESSAGE, dsn=DsnRequest(MESSAGE_ID))
    assert result.accepted == ["bob@example.net"]


@pytest.mark.parametrize(
    "fields",
    [
        {"notify": ("NEVER", "FAILURE")},
        {"notify": ()},
        {"notify": ("FAILURE", "FAILURE")},
        {"notify": ("BOUNCE",)},
        {"ret": "BODY"},
        {"envid": ""},
    ],
)
def test_a_dsn_request_the_relay_would_refuse_is_refused_here(fields):
    with pytest.raises(ValueError):
        DsnRequest(**{"envid": MESSAGE_ID, **fields})


# --- xtext ---------------------------------------------------------------------------------------
XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")  # "!".."~" but "+" and "=", or "+" and two hex digits


@pytest.mark.parametrize(
    ("text", "xtext"),
    [
        ("a+b@x", "a+2Bb@x"),
        ("c=d@x", "c+3Dd@x"),
        ("msg_01M8SJXTW13FG2S1NS6HVQHN0M", "msg_01M8SJXTW13FG2S1NS6HVQHN0M"),
        ("a b\t~!", "a+20b+09~!"),
        ("é", "+C3+A9"),  # the UTF-8 octets
        ("", ""),
    ],
)
def test_xtext(text, xtext):
    assert encode_xtext(text) == xtext
    assert decode_xtext(xtext) == text


def test_xtext_decoding_reads_lower_case_hex_and_refuses_what_is_no_xtext():
    assert decode_xtext("a+2bb") == "a+b"
    for not_xtext in ("a+2", "a+ZZ", "a=b", "a b", "+FF"):  # "+FF" alone is no UTF-8
        with pytest.raises(ValueError):
            decode_xtext(not_xtext)


@given(st.text())
def test_xtext_round_trips_and_encodes_to_xtext_only(text):
    encoded = encode_xtext(text)
    assert XTEXT.fullmatch(encoded)
    assert decode_xtext(encoded) == text
