"""What each reply or fault of a real aiosmtpd relay makes of a send, pipelined (RFC 2920) and one
command at a time: the same outcomes either way. A fault before the end of the message is a
temporary failure; a reply lost after it leaves the outcome unknown (RFC 1047); one deadline covers
the whole send."""

from __future__ import annotations

import asyncio

import pytest

from orgmail.mail.relay import RelayOutcomeUnknown, RelayResult, RelayTemporaryFailure, SmtpRelay
from tests.smtp_relay import MESSAGE, pipelined, relay_to

both_ways = pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-at-a-time"])


@both_ways
async def test_the_path_follows_what_the_server_offers(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    relay = relay_to(tmp_path, smtp_relay.url, relay_pool_size=1)
    try:
        message = MESSAGE + b".starts with a dot\r\n.\r\nbare LF\nlast line"
        result = await relay.send(
            sender="ann@example.com", recipients=["bob@example.net", "c@example.net"], message=message
        )
        assert pipelined(relay) is pipelining
    finally:
        await relay.close()
    assert result.accepted == ["bob@example.net", "c@example.net"] and result.response.startswith("250 2.0.0")
    [received] = smtp_relay.received
    assert received.rcpt_tos == ["bob@example.net", "c@example.net"]
    assert received.content == message.replace(b"\nlast", b"\r\nlast") + b"\r\n"  # dot-stuffing undone by the server


@both_ways
async def test_a_sender_refused_with_5xx_is_a_result_and_no_recipient_is_a_bounce(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    smtp_relay.behaviour.mail_reply = "550 5.7.1 sender refused"
    relay = relay_to(tmp_path, smtp_relay.url)
    try:
        result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        smtp_relay.behaviour.mail_reply = None
        sessions = smtp_relay.sessions
        after = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    # Pipelined, RCPT and DATA were answered 503 (no sender): that says nothing about the recipient.
    assert result == RelayResult(accepted=[], rejected={}, response="550 5.7.1 sender refused")
    assert after.accepted == ["bob@example.net"] and smtp_relay.sessions == sessions  # RSET, same connection
    assert len(smtp_relay.received) == 1


@both_ways
async def test_a_sender_deferred_with_4xx_is_a_temporary_failure(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    smtp_relay.behaviour.mail_reply = "451 4.3.0 try later"
    relay = relay_to(tmp_path, smtp_relay.url)
    try:
        with pytest.raises(RelayTemporaryFailure, match="451 4.3.0 try later"):
            await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert smtp_relay.received == [] and smtp_relay.data_without_recipients == []


@both_ways
async def test_one_deferred_recipient_defers_everyone_and_no_empty_message_goes_out(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    smtp_relay.behaviour.refuse["carol@example.net"] = "451 4.7.1 greylisted"
    relay = relay_to(tmp_path, smtp_relay.url, relay_pool_size=1)
    both = ["bob@example.net", "carol@example.net"]
    try:
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        sessions = smtp_relay.sessions
        with pytest.raises(RelayTemporaryFailure, match=r"451 4.7.1 greylisted \(carol@example.net\)"):
            await relay.send(sender="ann@example.com", recipients=both, message=MESSAGE)
        await asyncio.sleep(0.05)  # the server takes in whatever came
        smtp_relay.reset()
        result = await relay.send(sender="ann@example.com", recipients=both, message=MESSAGE)
    finally:
        await relay.close()
    assert result.accepted == both and [r.rcpt_tos for r in smtp_relay.received] == [both]
    # Pipelined, DATA was answered 354 (bob was accepted): a lone dot would have delivered bob an
    # empty message, so the connection was dropped instead of reset.
    assert smtp_relay.sessions == sessions + (1 if pipelining else 0)


@both_ways
async def test_every_recipient_refused_while_the_server_still_answers_data_with_354(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    smtp_relay.behaviour.data_without_recipients = True  # RFC 2920 §3.1: a client may not assume DATA fails
    smtp_relay.behaviour.refuse.update({"x@example.net": "550 5.1.1 unknown", "y@example.net": "553 5.1.3 bad"})
    relay = relay_to(tmp_path, smtp_relay.url)
    try:
        result = await relay.send(
            sender="ann@example.com", recipients=["x@example.net", "y@example.net"], message=MESSAGE
        )
        sessions = smtp_relay.sessions
        after = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert result == RelayResult(
        accepted=[],
        rejected={"x@example.net": (550, "5.1.1 unknown"), "y@example.net": (553, "5.1.3 bad")},
        response="553 5.1.3 bad",
    )
    # Pipelined: the data phase was ended with a lone dot (an empty transaction), never with the message.
    assert smtp_relay.data_without_recipients == ([b""] if pipelining else [])
    assert [r.rcpt_tos for r in smtp_relay.received] == [["bob@example.net"]]
    assert after.accepted == ["bob@example.net"] and smtp_relay.sessions == sessions


@both_ways
@pytest.mark.parametrize("reply", ["554 5.6.0 content refused", "451 4.3.0 queue full"])
async def test_the_message_refused_at_the_end_of_data(smtp_relay, tmp_path, pipelining, reply):
    smtp_relay.behaviour.pipelining = pipelining
    smtp_relay.behaviour.data_reply = reply
    relay = relay_to(tmp_path, smtp_relay.url)
    try:
        if reply.startswith("5"):
            result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
            assert result == RelayResult(accepted=[], response=reply)
        else:
            with pytest.raises(RelayTemporaryFailure, match=reply):
                await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert smtp_relay.received == []


@both_ways
@pytest.mark.parametrize("noticed", [True, False], ids=["noticed", "unnoticed"])
async def test_a_connection_closed_while_idle_is_replaced_and_the_message_sent_once(
    smtp_relay, tmp_path, pipelining, noticed
):
    smtp_relay.behaviour.pipelining = pipelining
    relay = relay_to(tmp_path, smtp_relay.url, relay_pool_size=1)
    try:
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        sessions = smtp_relay.sessions
        smtp_relay.drop_connections()
        if noticed:
            await asyncio.sleep(0.05)
        # Unnoticed: the group (or MAIL) is written to a socket the server already closed, and the
        # failure only shows when reading the first reply.
        result = await relay.send(sender="ann@example.com", recipients=["carol@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert result.accepted == ["carol@example.net"]
    assert [r.rcpt_tos for r in smtp_relay.received] == [["bob@example.net"], ["carol@example.net"]]
    assert smtp_relay.sessions == sessions + 1


@both_ways
async def test_a_drop_at_mail_is_retried_once_and_a_drop_after_a_reply_is_not(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    relay = relay_to(tmp_path, smtp_relay.url, relay_pool_size=1)
    try:
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        smtp_relay.reset()
        smtp_relay.behaviour.pipelining = pipelining
        smtp_relay.behaviour.drop_at = "mail"  # no reply at all: could be a connection closed while idle
        with pytest.raises(RelayTemporaryFailure, match="closed the connection"):
            await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        assert smtp_relay.commands == ["MAIL", "MAIL"]  # the pooled connection, then a fresh one

        smtp_relay.behaviour.drop_at = None
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)  # pool one again
        smtp_relay.reset()
        smtp_relay.behaviour.pipelining = pipelining
        smtp_relay.behaviour.drop_at = "rcpt"  # MAIL was answered, then the connection dropped before DATA's reply
        with pytest.raises(RelayTemporaryFailure, match="connection"):
            await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        assert smtp_relay.commands == ["MAIL"]  # a session that died mid-transaction is not retried here
        smtp_relay.behaviour.drop_at = None
        result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert result.accepted == ["bob@example.net"] and len(smtp_relay.received) == 1


# --- the end of the message: before it went out, a retry is safe; after it, the outcome is unknown --
@both_ways
@pytest.mark.parametrize("fault", ["drop_after_data", "stall_after_data"])
async def test_a_reply_lost_after_the_whole_message_leaves_the_outcome_unknown(smtp_relay, tmp_path, pipelining, fault):
    smtp_relay.behaviour.pipelining = pipelining
    relay = relay_to(tmp_path, smtp_relay.url, relay_pool_size=1, relay_timeout_seconds=0.3)
    try:
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        sessions = smtp_relay.sessions
        setattr(smtp_relay.behaviour, fault, True)  # the relay reads the message, then no reply comes
        with pytest.raises(RelayOutcomeUnknown, match="may have queued it"):
            await relay.send(sender="ann@example.com", recipients=["carol@example.net"], message=MESSAGE)
        assert isinstance(relay, SmtpRelay) and relay._idle == []  # that connection is never used again
        setattr(smtp_relay.behaviour, fault, False)
        result = await relay.send(sender="ann@example.com", recipients=["dave@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert result.accepted == ["dave@example.net"] and smtp_relay.sessions == sessions + 1
    # The relay did get the message whose reply was lost, once: a retry would have been a second copy.
    assert [r.rcpt_tos for r in smtp_relay.received] == [
        ["bob@example.net"],
        ["carol@example.net"],
        ["dave@example.net"],
    ]


@both_ways
@pytest.mark.parametrize("fault", ["drop", "stall"])
async def test_a_fault_at_data_before_the_message_is_a_temporary_failure(smtp_relay, tmp_path, pipelining, fault):
    smtp_relay.behaviour.pipelining = pipelining
    relay = relay_to(tmp_path, smtp_relay.url, relay_pool_size=1, relay_timeout_seconds=0.3)
    try:
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        sessions = smtp_relay.sessions
        if fault == "drop":
            smtp_relay.behaviour.drop_at = "data"
        else:
            smtp_relay.behaviour.stall_at = "data"
        with pytest.raises(RelayTemporaryFailure):
            await relay.send(sender="ann@example.com", recipients=["carol@example.net"], message=MESSAGE)
        smtp_relay.behaviour.drop_at = smtp_relay.behaviour.stall_at = None
        result = await relay.send(sender="ann@example.com", recipients=["carol@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert result.accepted == ["carol@example.net"] and smtp_relay.sessions == sessions + 1
    assert [r.rcpt_tos for r in smtp_relay.received] == [["bob@example.net"], ["carol@example.net"]]


@both_ways
async def test_a_deadline_that_finds_the_end_of_the_message_still_unsent_is_a_temporary_failure(
    smtp_relay, tmp_path, pipelining
):
    # The relay answers DATA with 354, then reads nothing: of 16 MB, the socket buffers take a few,
    # the rest, the end-of-data dot with it, waits in ours; the relay cannot have read the end.
    big = MESSAGE + (b"x" * 998 + b"\r\n") * 16_000
    smtp_relay.behaviour.pipelining = pipelining
    smtp_relay.behaviour.stall_at = "message"
    relay = relay_to(tmp_path, smtp_relay.url, relay_pool_size=1, relay_timeout_seconds=0.5)
    try:
        with pytest.raises(RelayTemporaryFailure, match="did not answer within 0.5 s"):
            await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=big)
        smtp_relay.behaviour.stall_at = None
        result = await relay.send(sender="ann@example.com", recipients=["carol@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert result.accepted == ["carol@example.net"]
    assert [r.rcpt_tos for r in smtp_relay.received] == [["carol@example.net"]]


@both_ways
@pytest.mark.parametrize("connection", ["fresh", "pooled"])
async def test_one_deadline_covers_the_whole_send(smtp_relay, tmp_path, pipelining, connection):
    smtp_relay.behaviour.pipelining = pipelining
    relay = relay_to(tmp_path, smtp_relay.url, relay_pool_size=1, relay_timeout_seconds=0.6)
    recipients = [f"r{n}@example.net" for n in range(4)]
    loop = asyncio.get_running_loop()
    try:
        if connection == "pooled":
            await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        # Each reply comes in time for a timeout per command, but greeting, EHLO, MAIL, four RCPT and
        # DATA take 2 s in all (MAIL to DATA alone 1.5 s).
        smtp_relay.behaviour.reply_delay = 0.25
        started = loop.time()
        with pytest.raises(RelayTemporaryFailure, match="did not answer within 0.6 s"):
            await relay.send(sender="ann@example.com", recipients=recipients, message=MESSAGE)
        elapsed = loop.time() - started
        smtp_relay.behaviour.reply_delay = 0
        result = await relay.send(sender="ann@example.com", recipients=["carol@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert 0.55 < elapsed < 0.9
    assert result.accepted == ["carol@example.net"]
    assert all(r.rcpt_tos != recipients for r in smtp_relay.received)
