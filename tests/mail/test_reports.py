"""Reading reports (mail/reports.py): Postfix's DSNs, feedback reports, Exim's bounce, and junk."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from orgmail.mail.reports import (
    DeliveryStatus,
    is_feedback_address,
    message_row_id,
    parse_report,
    verp_address,
    verp_message_id,
    xtext_decoded,
)
from tests.feedback_reports import (
    DELAYED,
    DELIVERED,
    GAVE_UP,
    HARD,
    RELAYED,
    Rcpt,
    arf_report,
    delay_warning,
    exim_bounce,
    original_headers,
    postfix_dsn,
)

BOUNCE_DOMAIN = "bounces.orgmail.test"
ROW_ID = "msg_01JF3ZK8Q2W5M7N9P4R6T8V0XY"
VERP = verp_address(ROW_ID, bounce_domain=BOUNCE_DOMAIN)
ORIGINAL = original_headers(message_id=f"<{ROW_ID}@sender.example.com>", return_path=VERP)


def test_a_postfix_hard_bounce_is_one_failed_5_1_1_with_its_diagnostic():
    raw = postfix_dsn(to=VERP, recipients=[Rcpt("bob@example.net", **HARD)], envelope_id=ROW_ID, original=ORIGINAL)
    report = parse_report(raw)
    assert report.kind == "dsn" and report.problem is None and not report.heuristic
    assert report.envelope_id == ROW_ID
    assert report.message_id is not None and report.message_id.endswith("@mx.example.net>")
    [delivery] = report.deliveries
    assert delivery == DeliveryStatus(
        final_recipient="bob@example.net",
        original_recipient="bob@example.net",
        action="failed",
        status="5.1.1",
        diagnostic="smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown",
    )
    assert report.original_message_id == f"<{ROW_ID}@sender.example.com>"
    assert report.original_return_path == VERP


def test_delayed_relayed_delivered_and_given_up_are_read_per_recipient():
    raw = postfix_dsn(
        to=VERP,
        recipients=[
            Rcpt("a@example.net", **DELAYED),
            Rcpt("b@example.net", **RELAYED),
            Rcpt("c@example.net", **DELIVERED),
            Rcpt("d@example.net", **GAVE_UP),
        ],
    )
    deliveries = parse_report(raw).deliveries
    assert [(d.final_recipient, d.action, d.status) for d in deliveries] == [
        ("a@example.net", "delayed", "4.4.1"),
        ("b@example.net", "relayed", "2.0.0"),
        ("c@example.net", "delivered", "2.0.0"),
        ("d@example.net", "failed", "4.4.7"),
    ]
    assert deliveries[1].diagnostic == "smtp; 250 2.0.0 Ok: queued as 4FD3"
    assert deliveries[0].diagnostic is None


def test_an_action_with_a_comment_and_a_status_with_text_are_read():
    raw = postfix_dsn(
        to=VERP,
        recipients=[Rcpt("bob@example.net", action="Failed (bad destination mailbox address)", status="5.1.1 (x)")],
    )
    [delivery] = parse_report(raw).deliveries
    assert (delivery.action, delivery.status) == ("failed", "5.1.1")


def test_without_orcpt_only_the_final_recipient_is_known():
    [delivery] = parse_report(postfix_dsn(to=VERP, recipients=[Rcpt("bob@example.net", original=None)])).deliveries
    assert delivery.original_recipient is None and delivery.final_recipient == "bob@example.net"


def test_a_dsn_without_recipient_blocks_is_a_dsn_with_a_problem():
    report = parse_report(postfix_dsn(to=VERP, recipients=[Rcpt("not an address", original=None)]))
    assert report.kind == "dsn" and report.deliveries == () and report.problem


def test_an_abuse_report_names_its_recipient_and_the_original():
    raw = arf_report(to=VERP, original=ORIGINAL, rcpt_to=["bob@example.net"], mail_from=VERP)
    report = parse_report(raw)
    assert report.kind == "arf" and report.feedback_type == "abuse"
    assert report.complained_recipients == ("bob@example.net",)
    assert report.original_mail_from == VERP
    assert report.original_message_id == f"<{ROW_ID}@sender.example.com>"
    assert report.original_return_path == VERP
    assert report.deliveries == ()


def test_a_fraud_report_with_only_the_original_headers():
    raw = arf_report(to=VERP, original=ORIGINAL, feedback_type="fraud", headers_only=True)
    report = parse_report(raw)
    assert (report.kind, report.feedback_type, report.complained_recipients) == ("arf", "fraud", ())
    assert report.original_return_path == VERP


def test_a_not_spam_report_keeps_its_type():
    report = parse_report(arf_report(to=VERP, original=ORIGINAL, feedback_type="not-spam"))
    assert (report.kind, report.feedback_type) == ("arf", "not-spam")


def test_a_feedback_report_without_a_type_is_unknown():
    raw = arf_report(to=VERP, original=ORIGINAL).replace(b"Feedback-Type: abuse\r\n", b"")
    report = parse_report(raw)
    assert report.kind == "unknown" and report.problem


def test_several_original_rcpt_to_are_all_named():
    raw = arf_report(to=VERP, original=ORIGINAL, rcpt_to=["a@example.net", "b@example.net"])
    assert parse_report(raw).complained_recipients == ("a@example.net", "b@example.net")


def test_exims_bounce_is_a_permanent_failure_found_by_flufl():
    report = parse_report(exim_bounce(to=VERP, failed=["bob@example.net"]))
    assert report.kind == "dsn" and report.heuristic
    [delivery] = report.deliveries
    assert (delivery.final_recipient, delivery.action, delivery.status) == ("bob@example.net", "failed", None)


def test_a_delay_warning_in_prose_is_a_delay():
    report = parse_report(delay_warning(to=VERP, address="bob@example.net"))
    assert report.heuristic
    [delivery] = report.deliveries
    assert (delivery.final_recipient, delivery.action) == ("bob@example.net", "delayed")


def test_junk_is_unknown_with_a_reason():
    for raw in [b"", b"hello", b"From: a@example.com\r\nSubject: hi\r\n\r\nJust a note.\r\n", bytes(range(256)) * 4]:
        report = parse_report(raw)
        assert report.kind == "unknown" and report.problem, raw[:40]


def test_a_report_without_a_message_id_has_none():
    report = parse_report(postfix_dsn(to=VERP, recipients=[Rcpt("bob@example.net")], message_id=None))
    assert report.kind == "dsn" and report.message_id is None


def test_values_are_cleaned_of_control_characters_and_bad_bytes():
    raw = postfix_dsn(to=VERP, recipients=[Rcpt("bob@example.net", diagnostic="smtp; 550 bad\x01 \xff")])
    raw = raw.replace("\xff".encode(), b"\xff")  # a raw 8-bit byte, as some MTAs send
    [delivery] = parse_report(raw).deliveries
    assert delivery.diagnostic is not None and "\x01" not in delivery.diagnostic
    delivery.diagnostic.encode("utf-8")  # storable as it is


def test_an_overlong_message_id_is_not_an_identity():
    long_id = "<" + "x" * 300 + "@example.net>"
    assert parse_report(postfix_dsn(to=VERP, recipients=[Rcpt("b@x.net")], message_id=long_id)).message_id is None


def test_a_large_message_is_read_in_a_fraction_of_a_second():
    # Mailman's detectors over all of it took 12 s: they read only its start
    raw = b"From: someone@example.net\r\nSubject: x\r\n\r\n" + b"a line of text in a long letter\r\n" * 300_000
    started = time.perf_counter()
    assert parse_report(raw).kind == "unknown"
    assert time.perf_counter() - started < 4


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_to_a_value(raw):
    parse_report(raw)
    parse_report(b"Content-Type: multipart/report; boundary=b\r\nFrom: x@y\r\n\r\n--b\r\n" + raw)


def test_verp_addresses_are_matched_case_insensitively():
    assert verp_message_id(VERP, bounce_domain=BOUNCE_DOMAIN) == ROW_ID
    assert verp_message_id(VERP.lower(), bounce_domain=BOUNCE_DOMAIN) == ROW_ID
    assert verp_message_id(VERP.upper(), bounce_domain=BOUNCE_DOMAIN) == ROW_ID
    assert verp_message_id(f"<{VERP}>", bounce_domain=BOUNCE_DOMAIN) == ROW_ID


def test_other_addresses_are_not_verp():
    for address in [
        f"bounces+{ROW_ID}@other.example",
        f"bounces+{ROW_ID}x@{BOUNCE_DOMAIN}",
        f"bounces+{ROW_ID[:-1]}@{BOUNCE_DOMAIN}",
        f"bounces+msg_01JF3ZK8Q2W5M7N9P4R6T8V0XU@{BOUNCE_DOMAIN}",  # U is no Crockford digit
        f"{ROW_ID}@{BOUNCE_DOMAIN}",
        f"feedback@{BOUNCE_DOMAIN}",
        "",
    ]:
        assert verp_message_id(address, bounce_domain=BOUNCE_DOMAIN) is None, address


def test_the_feedback_address():
    assert is_feedback_address(f"Feedback@{BOUNCE_DOMAIN.upper()}", bounce_domain=BOUNCE_DOMAIN)
    assert not is_feedback_address("feedback@example.net", bounce_domain=BOUNCE_DOMAIN)
    assert not is_feedback_address(f"abuse@{BOUNCE_DOMAIN}", bounce_domain=BOUNCE_DOMAIN)


def test_the_row_id_in_an_orgmail_message_id():
    assert message_row_id(f"<{ROW_ID}@sender.example.com>") == ROW_ID
    assert message_row_id(f"<{ROW_ID.lower()}@sender.example.com>") == ROW_ID
    assert message_row_id("<20261201.ABC@mx.example.net>") is None


def test_xtext_is_decoded():
    assert xtext_decoded("a+2Bb@example.net") == "a+b@example.net"
    assert xtext_decoded("plain@example.net") == "plain@example.net"
