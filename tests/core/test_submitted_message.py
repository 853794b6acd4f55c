"""What a submitted message's headers mean to the send log (`parse_submission`), and the bytes that go
on (`finish_submitted`): decoded as a reader sees them, the submitted bytes otherwise kept."""

from __future__ import annotations

import pytest

from orgmail.core.sending.submission import Submitter, finish_submitted, parse_submission
from orgmail.errors import InvalidRequest, SenderNotAllowed

APP = Submitter(org_id="org_1")


def _parse(headers: str | bytes, *, recipients: list[str], submitter: Submitter = APP, body: bytes = b"Hello\r\n"):
    head = headers.encode() if isinstance(headers, str) else headers
    return parse_submission(head + b"\r\n" + body, recipients=recipients, submitter=submitter)


def test_encoded_words_are_decoded_in_the_subject_and_the_display_names():
    submitted = _parse(
        "From: =?utf-8?q?Zo=C3=AB?= <zoe@shop.example>\r\n"
        "To: =?iso-8859-1?q?Andr=E9?= <andre@example.net>, bob@example.net\r\n"
        "Subject: =?utf-8?b?Y2Fmw6k=?= and =?utf-8?q?cr=C3=A8me?=\r\n",
        recipients=["andre@example.net", "bob@example.net"],
    )
    assert submitted.sender.email == "zoe@shop.example" and submitted.sender.display_name == "Zoë"
    assert submitted.to == ["André <andre@example.net>", "bob@example.net"]
    assert submitted.subject == "café and crème"


def test_eight_bit_header_bytes_read_as_utf8_and_what_is_not_utf8_is_replaced():
    submitted = _parse(
        "From: Zoë <zoe@shop.example>\r\nTo: Renée <renee@example.net>\r\nSubject: café \udcff\r\n".encode(
            "utf-8", "surrogateescape"
        ),
        recipients=["renee@example.net"],
    )
    assert submitted.sender.display_name == "Zoë"
    assert submitted.to == ["Renée <renee@example.net>"]
    assert submitted.subject == "café \ufffd"


def test_a_folded_subject_is_one_line():
    submitted = _parse("From: a@shop.example\r\nSubject: a long\r\n  subject\r\n", recipients=["b@example.net"])
    assert submitted.subject == "a long subject"


def test_only_envelope_recipients_are_kept_and_the_rest_of_the_envelope_is_bcc():
    submitted = _parse(
        "From: a@shop.example\r\nTo: b@example.net, not-sent@example.net\r\nCc: C <c@example.net>\r\n"
        "Bcc: hidden@example.net\r\nReply-To: replies@shop.example\r\n",
        recipients=["b@example.net", "c@example.net", "Hidden@example.net", "b@example.net"],
    )
    assert submitted.recipients == ["b@example.net", "c@example.net", "Hidden@example.net"]
    assert submitted.to == ["b@example.net"] and submitted.cc == ["C <c@example.net>"]
    assert submitted.bcc == ["Hidden@example.net"]
    assert submitted.reply_to == ["replies@shop.example"]


def test_a_group_in_to_gives_its_members():
    submitted = _parse(
        "From: a@shop.example\r\nTo: Team: b@example.net, c@example.net;\r\n",
        recipients=["b@example.net", "c@example.net"],
    )
    assert submitted.to == ["b@example.net", "c@example.net"] and submitted.bcc == []


@pytest.mark.parametrize("from_header", ["", "From: \r\n", "From: a@shop.example, b@shop.example\r\n"])
def test_a_message_needs_exactly_one_from(from_header):
    with pytest.raises(InvalidRequest):
        _parse(f"{from_header}To: b@example.net\r\n", recipients=["b@example.net"])


def test_a_member_sends_only_as_itself():
    member = Submitter(org_id="org_1", mailbox="ann@shop.example")
    assert _parse("From: Ann <ANN@shop.example>\r\n", recipients=["b@example.net"], submitter=member)
    for headers in ("From: bob@shop.example\r\n", "From: ann@shop.example\r\nSender: bob@shop.example\r\n"):
        with pytest.raises(SenderNotAllowed):
            _parse(headers, recipients=["b@example.net"], submitter=member)


def test_the_message_goes_on_as_submitted_without_bcc_and_with_date_and_message_id():
    headers = (
        "From: a@shop.example\r\nTo: b@example.net\r\nBcc: hidden@example.net\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
    )
    body = b"Line one\r\nFrom the start of a line\r\n"
    out = finish_submitted(
        _parse(headers, recipients=["b@example.net", "hidden@example.net"], body=body), message_id="<m1@shop.example>"
    )
    head, _, rest = out.partition(b"\r\n\r\n")
    assert rest == body  # byte for byte: no ">From" mangling
    assert b"Bcc" not in head and b"Subject: =?utf-8?q?caf=C3=A9?=" in head
    assert b"\r\nMessage-ID: <m1@shop.example>" in head and b"\r\nDate: " in head


def test_a_clients_message_id_is_kept():
    submitted = _parse("From: a@shop.example\r\nMessage-ID: <client@app.example>\r\n", recipients=["b@example.net"])
    assert submitted.message_id == "<client@app.example>"
    assert b"Message-ID: <client@app.example>" in finish_submitted(submitted, message_id="<ours@shop.example>")
