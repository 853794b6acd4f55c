"""Delivery feedback with Postfix as orgmail's smarthost (DESIGN.md §9), all parts real: orgmail sends
through the API, Postfix takes the message (orgmail records `sent`), tries the remote servers, and its
own DSNs come back through orgmail's inbound listener as events, suppressions and statuses.

Two messages, sent at once, per database backend:
- "mixed": one recipient the plain remote accepts, one it refuses (550 5.1.1), one it answers 451
  forever, and one on the DSN-aware remote. Someone got it, so it stays `sent`.
- "nobody": two refused (in one DSN), one 451 forever: it becomes `bounced` once Postfix gives up on
  the last.
Then Postfix as the bounce domain's MX, checked with swaks as the docs tell an operator to
(docs/postfix-smarthost.md).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from tests.feedback_reports import arf_report, original_headers
from tests.postfix.conftest import BOUNCE_DOMAIN, DSN_DOMAIN, PLAIN_DOMAIN, SENDER_DOMAIN, SMARTHOST_NAME, Smarthost
from tests.processes import orgmail

pytestmark = pytest.mark.postfix

ACCEPTED = f"ann@{PLAIN_DOMAIN}"
REFUSED = f"nobody@{PLAIN_DOMAIN}"
DEFERRED = f"busy@{PLAIN_DOMAIN}"
HANDED_ON = f"bea@{DSN_DOMAIN}"  # accepted by a server that offers DSN: Postfix passes the request on
REFUSED_TOO = f"gone@{PLAIN_DOMAIN}"
REFUSED_ALSO = f"left@{PLAIN_DOMAIN}"  # refused in the same transaction: one DSN names both
DEFERRED_TOO = f"full@{PLAIN_DOMAIN}"
REFUSAL = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"
DEFERRAL = "451 4.3.0 <{address}>: mailbox busy, try again later"

# Postfix gives up after maximal_queue_lifetime (10 s) plus a retry; every report is in well before.
REPORTS_TIMEOUT = 45.0

Expected = tuple[str, str]  # (event type, recipient)
EXPECTED_MIXED: set[Expected] = {
    ("bounced", REFUSED),
    ("delivered", ACCEPTED),
    ("deferred", DEFERRED),
    ("bounced", DEFERRED),
}
EXPECTED_NOBODY: set[Expected] = {
    ("bounced", REFUSED_TOO),
    ("bounced", REFUSED_ALSO),
    ("deferred", DEFERRED_TOO),
    ("bounced", DEFERRED_TOO),
}


@dataclass
class Feedback:
    """What came back for the two messages, once every expected report had arrived."""

    mixed: str  # msg_… ids
    nobody: str
    events: dict[str, list[dict]]  # message id -> its timeline
    messages: dict[str, dict]  # message id -> MailMessage
    # The "nobody" message's status once its refused recipients had bounced, before the deferred one did.
    status_while_one_recipient_pending: str | None
    seconds: float  # from the sends to the last report


def _pairs(events: Iterable[dict]) -> set[Expected]:
    return {(event["type"], event["recipient"]) for event in events if event["recipient"] is not None}


def _one(events: list[dict], kind: str, recipient: str) -> dict:
    found = [event for event in events if event["type"] == kind and event["recipient"] == recipient]
    assert len(found) == 1, f"expected one {kind} event for {recipient}, got {found} in {events}"
    return found[0]


async def _send(smarthost: Smarthost, to: list[str], subject: str) -> str:
    body = {"from": f"shop@{SENDER_DOMAIN}", "to": to, "subject": subject, "text": "Through Postfix."}
    message = (await smarthost.call("/v1/mail/messages/send", body))["message"]
    assert message["status"] == "sent", message  # Postfix took it for everyone: the rest comes as DSNs
    return message["id"]


@pytest.fixture(scope="module")
async def feedback(smarthost: Smarthost) -> Feedback:
    for address in (REFUSED, REFUSED_TOO, REFUSED_ALSO):
        smarthost.plain_remote.behaviour.refuse[address] = REFUSAL.format(address=address)
    for address in (DEFERRED, DEFERRED_TOO):
        smarthost.plain_remote.behaviour.refuse[address] = DEFERRAL.format(address=address)
    started = time.monotonic()
    mixed = await _send(smarthost, [ACCEPTED, REFUSED, DEFERRED, HANDED_ON], "Mixed fortunes")
    nobody = await _send(smarthost, [REFUSED_TOO, REFUSED_ALSO, DEFERRED_TOO], "Nobody gets this")
    expected = {mixed: EXPECTED_MIXED, nobody: EXPECTED_NOBODY}
    events: dict[str, list[dict]] = {}
    pending_status: str | None = None
    deadline = started + REPORTS_TIMEOUT
    while True:
        # The status is read between two looks at the timeline: after one that shows the first bounce,
        # before one that does not show the second yet (both change in one transaction).
        status = None
        if ("bounced", REFUSED_TOO) in _pairs(events.get(nobody, [])):
            status = (await smarthost.call("/v1/mail/messages/get", {"id": nobody}))["message"]["status"]
        for message_id in expected:
            events[message_id] = (await smarthost.call("/v1/mail/messages/events", {"id": message_id}))["events"]
        if status is not None and ("bounced", DEFERRED_TOO) not in _pairs(events[nobody]):
            pending_status = status
        missing = {m: sorted(want - _pairs(events[m])) for m, want in expected.items() if want - _pairs(events[m])}
        if not missing:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"[{smarthost.backend}] after {REPORTS_TIMEOUT:g} s these events had not arrived: {missing}; "
                f"events so far: {events}{smarthost.diagnosis()}"
            )
        await asyncio.sleep(0.25)
    seconds = time.monotonic() - started
    messages = {m: (await smarthost.call("/v1/mail/messages/get", {"id": m}))["message"] for m in expected}
    return Feedback(
        mixed=mixed,
        nobody=nobody,
        events=events,
        messages=messages,
        status_while_one_recipient_pending=pending_status,
        seconds=seconds,
    )


async def test_refused_recipient_bounces_hard_and_is_suppressed(smarthost, feedback):
    for message_id, address in (
        (feedback.mixed, REFUSED),
        (feedback.nobody, REFUSED_TOO),
        (feedback.nobody, REFUSED_ALSO),
    ):
        bounced = _one(feedback.events[message_id], "bounced", address)
        assert (bounced["bounceType"], bounced["smtpStatus"]) == ("hard", "5.1.1"), bounced
        assert "550 5.1.1" in bounced["diagnostic"], bounced  # the remote's own words, as Postfix quotes them
    suppressions = (await smarthost.call("/v1/mail/suppressions/list", {}))["suppressions"]
    reasons = {entry["email"]: entry["reason"] for entry in suppressions}
    assert [reasons.get(address) for address in (REFUSED, REFUSED_TOO, REFUSED_ALSO)] == ["bounce"] * 3, suppressions
    assert DEFERRED not in reasons and DEFERRED_TOO not in reasons, suppressions  # a soft bounce suppresses nobody
    assert reasons.get(ACCEPTED) != "bounce", suppressions


async def test_deferred_recipient_gets_a_delay_then_a_soft_bounce_when_postfix_gives_up(smarthost, feedback):
    for message_id, address in ((feedback.mixed, DEFERRED), (feedback.nobody, DEFERRED_TOO)):
        timeline = feedback.events[message_id]
        deferred = _one(timeline, "deferred", address)
        gave_up = _one(timeline, "bounced", address)
        assert timeline.index(deferred) < timeline.index(gave_up), timeline
        assert deferred["bounceType"] is None and deferred["smtpStatus"].startswith("4."), deferred
        assert gave_up["bounceType"] == "soft" and gave_up["smtpStatus"].startswith("4."), gave_up
        assert "451 4.3.0" in gave_up["diagnostic"], gave_up  # the last answer Postfix got
    kinds = [n.kind for n in smarthost.postfix.notifications()]
    assert kinds.count("delay") == 2, smarthost.postfix.notifications()


async def test_accepted_recipient_is_delivered_as_postfix_relayed_it(smarthost, feedback):
    # The plain remote offers no DSN, so Postfix reports the hand-over itself: Action "relayed".
    delivered = _one(feedback.events[feedback.mixed], "delivered", ACCEPTED)
    assert delivered["diagnostic"].startswith("relayed"), delivered
    assert delivered["smtpStatus"] == "2.0.0" and delivered["bounceType"] is None, delivered
    [received] = [r for r in smarthost.plain_remote.received if ACCEPTED in r.rcpt_tos]
    assert received.mail_from == f"bounces+{feedback.mixed}@{BOUNCE_DOMAIN}"  # VERP, kept by Postfix
    assert f"Message-ID: <{feedback.mixed}@".lower().encode() in received.content.lower()


async def test_dsn_aware_next_hop_gets_the_request_and_postfix_reports_nothing_itself(smarthost, feedback):
    [received] = smarthost.dsn_remote.received
    assert received.rcpt_tos == [HANDED_ON]
    assert received.mail_from == f"bounces+{feedback.mixed}@{BOUNCE_DOMAIN}"
    # orgmail's DSN request (RET, ENVID, NOTIFY, ORCPT) reached the next hop through Postfix.
    assert {"RET=HDRS", f"ENVID={feedback.mixed}"} <= set(received.mail_options), received.mail_options
    [notify] = [o for o in received.rcpt_options[HANDED_ON] if o.upper().startswith("NOTIFY=")]
    assert set(notify.upper().removeprefix("NOTIFY=").split(",")) == {"SUCCESS", "FAILURE", "DELAY"}
    assert f"ORCPT=rfc822;{HANDED_ON}" in received.rcpt_options[HANDED_ON]
    # Reporting is now that server's job: no DSN from Postfix, so no event for this recipient.
    assert not [e for e in feedback.events[feedback.mixed] if e["recipient"] == HANDED_ON]


async def test_message_bounces_only_when_every_recipient_bounced(feedback):
    assert feedback.messages[feedback.mixed]["status"] == "sent"  # two of four got it
    assert feedback.status_while_one_recipient_pending == "sent"  # one bounced, one still being retried
    assert feedback.messages[feedback.nobody]["status"] == "bounced"
    assert feedback.messages[feedback.nobody]["lastEvent"] == "bounced"
    for message_id in (feedback.mixed, feedback.nobody):
        first = feedback.events[message_id][0]
        assert (first["type"], first["recipient"]) == ("sent", None), feedback.events[message_id]


async def test_every_postfix_dsn_went_through_the_listener(smarthost, feedback):
    notifications = smarthost.postfix.notifications()
    # mixed: non-delivery (refused), delivery status (relayed), delay, non-delivery (gave up);
    # nobody: non-delivery (both refused), delay, non-delivery (gave up).
    assert sorted(n.kind for n in notifications) == sorted(
        ["non-delivery"] * 4 + ["delivery status"] + ["delay"] * 2
    ), notifications
    for notification in notifications:  # each answered 250 by the listener, only once it was stored
        lines = smarthost.postfix.delivery_lines(notification.queue_id)
        assert any("status=sent (250 2.0.0 Report stored)" in line for line in lines), (notification, lines)
    stored = await smarthost.inbound_reports()
    reports = [r for r in stored if r.envelope_recipient.startswith("bounces+")]
    assert len(reports) == len(notifications), reports
    for report in reports:
        assert (report.kind, report.result, report.envelope_sender) == ("dsn", "parsed", "<>"), report
        assert report.message_id in (feedback.mixed, feedback.nobody)
        assert report.envelope_recipient == f"bounces+{report.message_id}@{BOUNCE_DOMAIN}"
        assert f"Reporting-MTA: dns; {SMARTHOST_NAME}".encode() in report.raw  # Postfix's own DSN, kept whole
    both = [
        r
        for r in reports
        if all(f"Final-Recipient: rfc822; {a}".encode() in r.raw for a in (REFUSED_TOO, REFUSED_ALSO))
    ]
    assert len(both) == 1, "Postfix reports the two recipients it could not deliver at once in one DSN"
    parsed = await smarthost.metric("orgmail_inbound_reports_total", {"result": "parsed"})
    assert parsed == len([r for r in stored if r.result == "parsed"]), stored  # the swaks test's report too, if it ran


async def test_feedback_takes_seconds_and_postfix_logs_no_trouble(smarthost, feedback):
    # maximal_queue_lifetime is 10 s: the last report (Postfix giving up) is in a few seconds later.
    assert feedback.seconds < 20, feedback.seconds
    trouble = [
        line for line in smarthost.postfix.log().splitlines() if re.search(r": (warning|error|fatal|panic):", line)
    ]
    assert not trouble, trouble


async def test_orgmail_check_sees_postfix_offering_dsn(smarthost):
    env = {**smarthost.server.env, "ORGMAIL_DNS_TIMEOUT": "1"}  # DNS is not what this test looks at
    checked = await asyncio.to_thread(orgmail, "check", env=env)
    [relay] = [line for line in checked.stdout.splitlines() if line.split()[1:2] == ["relay"]]
    # message_size_limit is above ORGMAIL_MAX_MESSAGE_BYTES, so no warning about SIZE either.
    assert relay.startswith("ok") and f"({SMARTHOST_NAME})" in relay, checked.stdout
    assert re.search(r"\bDSN\b", relay.partition("(not")[0]), relay


# --- Postfix as the bounce domain's MX: what the docs tell an operator to check with swaks ----------


def _swaks(binary: str, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--server", "127.0.0.1", "--port", str(port), "--helo", "mx.example.net", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_postfix_as_the_bounce_domains_mx_passes_reports_on_and_relays_nothing_else(
    smarthost, feedback, swaks_binary
):
    port = smarthost.postfix.mx_port  # its SMTP server for the Internet: no relaying for loopback there

    relaying = await asyncio.to_thread(
        _swaks, swaks_binary, port, "--from", "x@example.net", "--to", ACCEPTED, "--quit-after", "RCPT"
    )
    assert relaying.returncode == 24 and "554 5.7.1" in relaying.stdout, relaying.stdout  # no open relay

    unknown = ("--from", "<>", "--to", f"abuse@{BOUNCE_DOMAIN}", "--quit-after", "RCPT")
    listener = await asyncio.to_thread(_swaks, swaks_binary, smarthost.inbound_port, *unknown)
    assert listener.returncode == 24 and "550 5.1.1" in listener.stdout, listener.stdout
    # relay_recipient_maps: what the listener would refuse, Postfix refuses at RCPT (no backscatter).
    unshaped = await asyncio.to_thread(_swaks, swaks_binary, port, *unknown)
    assert unshaped.returncode == 24 and "550 5.1.1" in unshaped.stdout, unshaped.stdout

    complaint = arf_report(
        to=f"feedback@{BOUNCE_DOMAIN}",
        original=original_headers(
            message_id=feedback.messages[feedback.mixed]["messageId"],
            return_path=f"bounces+{feedback.mixed}@{BOUNCE_DOMAIN}",
            to=ACCEPTED,
        ),
        rcpt_to=[ACCEPTED],
    )
    path = smarthost.postfix.root / "complaint.eml"
    path.write_bytes(complaint)
    sent = await asyncio.to_thread(
        _swaks, swaks_binary, port, "--from", "<>", "--to", f"feedback@{BOUNCE_DOMAIN}", "--data", f"@{path}"
    )
    assert sent.returncode == 0, sent.stdout
    queued = re.search(r"250 2\.0\.0 Ok: queued as (\w+)", sent.stdout)
    assert queued, sent.stdout

    deadline = time.monotonic() + 15
    while True:
        timeline = (await smarthost.call("/v1/mail/messages/events", {"id": feedback.mixed}))["events"]
        if ("complained", ACCEPTED) in _pairs(timeline):
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no complained event after 15 s: {timeline}; Postfix: "
                f"{smarthost.postfix.delivery_lines(queued[1])}{smarthost.diagnosis()}"
            )
        await asyncio.sleep(0.2)
    suppressions = (await smarthost.call("/v1/mail/suppressions/list", {}))["suppressions"]
    assert {"email": ACCEPTED, "reason": "complaint"} in [
        {"email": s["email"], "reason": s["reason"]} for s in suppressions
    ], suppressions
