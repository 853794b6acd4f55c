"""MIME building: fixed clock, Message-ID and boundaries give fixed bytes (golden file), signed and verified."""

from __future__ import annotations

import dataclasses
import email
import os
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest

from orgmail.addresses import parse_mailbox
from orgmail.mail import dkim, mime
from tests.mail.test_dkim import _fixed_keys, _records

GOLDEN = Path(__file__).parent.parent / "golden"


def _draft(**overrides) -> mime.Draft:
    values = dict(
        sender=parse_mailbox("Ann Ëxample <ann@example.com>"),
        to=[parse_mailbox("Bob <bob@example.net>"), parse_mailbox("carol@bücher.example")],
        cc=[parse_mailbox("dave@example.org")],
        reply_to=[parse_mailbox("support@example.com")],
        subject="Quarterly report — Q4",
        message_id="<msg_01GOLDEN@example.com>",
        date=datetime(2026, 11, 25, 13, 0, tzinfo=UTC),
        text="Hello Bob,\n\nthe numbers are in: 12 % up.\n",
        html='<p>Hello Bob,</p><p>the numbers are in. <img src="cid:chart"></p>\n',
        headers={"List-Unsubscribe": "<mailto:unsubscribe@example.com>", "X-Campaign": "q4"},
        attachments=[
            mime.Part("chart.png", b"\x89PNG\r\n\x1a\nchart", "image/png", "chart"),
            mime.Part("numbers.csv", b"quarter,growth\nQ4,12\n", "text/csv"),
        ],
    )
    values.update(overrides)
    return mime.Draft(**values)


def test_built_message_matches_the_golden_file():
    built = mime.build(_draft(), boundary_token="golden")
    path = GOLDEN / "mime-built.eml"
    if os.environ.get("ORGMAIL_UPDATE_GOLDEN"):
        path.write_bytes(built)
    assert built == path.read_bytes()


def test_signed_golden_message_matches_and_verifies():
    signed = dkim.sign(
        mime.build(_draft(), boundary_token="golden"), domain="example.com", keys=_fixed_keys(), timestamp=1795611600
    )
    path = GOLDEN / "mime-signed.eml"
    if os.environ.get("ORGMAIL_UPDATE_GOLDEN"):
        path.write_bytes(signed)
    assert signed == path.read_bytes()
    assert dkim.verify(signed, txt_records=_records(_fixed_keys())) == [True, True]


def test_structure_text_html_inline_and_attachment():
    parsed = email.message_from_bytes(mime.build(_draft()), policy=policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    alternative = parsed.get_payload()[0]
    assert alternative.get_content_type() == "multipart/alternative"
    plain, related = alternative.get_payload()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    assert [p.get_content_type() for p in related.get_payload()] == ["text/html", "image/png"]
    assert related.get_payload()[1]["Content-ID"] == "<chart>"
    [csv] = list(parsed.iter_attachments())
    assert csv.get_filename() == "numbers.csv" and csv.get_payload(decode=True) == b"quarter,growth\nQ4,12\n"
    assert parsed["To"] == "Bob <bob@example.net>, carol@xn--bcher-kva.example"
    assert parsed["Subject"] == "Quarterly report — Q4"
    assert parsed["Bcc"] is None
    assert [name for name in parsed.keys()].count("MIME-Version") == 1
    assert sum(1 for part in parsed.walk() if part["MIME-Version"]) == 1


@pytest.mark.parametrize(
    "text, html, expected",
    [
        ("only text", None, "text/plain"),
        (None, "<p>only html</p>", "text/html"),
        ("both", "<p>both</p>", "multipart/alternative"),
    ],
)
def test_single_part_shapes(text, html, expected):
    parsed = email.message_from_bytes(mime.build(_draft(text=text, html=html, attachments=[])), policy=policy.default)
    assert parsed.get_content_type() == expected


def test_lines_stay_short_and_7bit_whatever_the_content():
    long_line = "x" * 5000 + " ünïcödé"
    built = mime.build(_draft(text=long_line, html=None, attachments=[]))
    assert all(byte < 128 for byte in built)
    assert max(len(line) for line in built.split(b"\r\n")) <= 998
    parsed = email.message_from_bytes(built, policy=policy.default)
    assert parsed.get_content().rstrip("\r\n") == long_line


@pytest.mark.parametrize(
    "name, value",
    [
        ("Bcc", "x@example.org"),
        ("message-id", "<x@y>"),
        ("DKIM-Signature", "v=1"),
        ("From", "x@y.org"),
        ("X-Ok", "a\r\nBcc: x@example.org"),
        ("X-Ok", "a\nb"),
        ("Bad Name", "x"),
        ("Colon:Name", "x"),
        ("Ünï", "x"),
    ],
)
def test_header_problems(name, value):
    assert mime.header_problem(name, value) is not None


def test_allowed_custom_headers():
    assert mime.header_problem("List-Unsubscribe", "<https://example.com/u?x=1>") is None
    assert mime.header_problem("X-Entity-Ref-ID", "ünïcödé is fine: it gets encoded") is None
    assert mime.header_problem("In-Reply-To", "<abc@example.com>") is None


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)  # no lone surrogates: the API refuses them
# What validation lets through to a header: no control characters (api/schemas.py refuses C0 and C1).
_line = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=300)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=_line,
    text=st.one_of(st.none(), _text),
    html=st.one_of(st.none(), _text),
    header_value=_line,
    name=st.one_of(st.none(), _line.filter(bool)),
    filename=_line.filter(bool),
    long_word=st.integers(min_value=0, max_value=1200),
)
def test_any_content_builds_7bit_short_lines_and_verifies(subject, text, html, header_value, name, filename, long_word):
    """Whatever a caller sends that validation lets through, the message is well-formed and signed."""
    draft = _draft(
        sender=dataclasses.replace(parse_mailbox("ann@example.com"), display_name=name),
        subject=subject + "x" * long_word,
        text=text if text or html else "t",
        html=html,
        headers={"X-Value": header_value, "X-Long": "y" * long_word},
        attachments=[mime.Part(filename, b"\x00\x01 data", "application/octet-stream")],
    )
    built = mime.build(draft)
    assert all(byte < 128 for byte in built)
    assert max(len(line) for line in built.split(b"\r\n")) <= 998
    parsed = email.message_from_bytes(built, policy=policy.default)
    assert parsed["Subject"].split() == (subject + "x" * long_word).split()  # folding may only move whitespace
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content() == b"\x00\x01 data"
    signed = dkim.sign(built, domain="example.com", keys=_fixed_keys())
    assert dkim.verify(signed, txt_records=_records(_fixed_keys())) == [True, True]


# --- the one-line shortcut of mime.SMTP_COMPAT ----------------------------------------------------
_COMPAT32 = policy.compat32.clone(linesep="\r\n", cte_type="7bit")
_field_name = st.one_of(
    st.sampled_from(
        [
            "From",
            "To",
            "Cc",
            "Reply-To",
            "Subject",
            "Date",
            "Message-ID",
            "MIME-Version",
            "Content-Type",
            "Content-Transfer-Encoding",
            "Content-Disposition",
            "List-Unsubscribe",
        ]
    ),
    st.from_regex(r"[!-9;-~]{1,40}", fullmatch=True),
)
_field_value = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=90),  # the shortcut's own case
    st.text(st.sampled_from(' \t;,:="ab-'), max_size=90),  # where folding could start
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=90),
)


def _folded(fold_policy, name: str, value: str) -> bytes | str:
    try:
        return fold_policy.fold_binary(name, value)
    except Exception as error:  # compat32 refuses some values (an embedded header): so must we
        return type(error).__name__


@settings(max_examples=2000, deadline=None)
@given(name=_field_name, value=_field_value)
def test_header_fields_are_folded_exactly_as_compat32_folds_them(name, value):
    assert _folded(mime.SMTP_COMPAT, name, value) == _folded(_COMPAT32, name, value)


@pytest.mark.parametrize("value", ["", " ", "a ", " a", "a  b", "x" * 68, "x" * 69, "x" * 70, "a\tb", "é", "a\x7fb"])
def test_edge_header_fields_are_folded_exactly_as_compat32_folds_them(value):
    for name in ("Subject", "X-A-Rather-Long-Field-Name"):
        assert _folded(mime.SMTP_COMPAT, name, value) == _folded(_COMPAT32, name, value)


# --- mime._Generator: the stdlib's BytesGenerator, faster -------------------------------------------
from email.generator import BytesGenerator  # noqa: E402
from unittest import mock  # noqa: E402

_lines = st.lists(st.sampled_from(["\r\n", "\r", "\n", "a", " ", "é", "-", "=", ".", "\t"]), max_size=200).map("".join)


def _build_comparing_with_the_stdlib_generator(draft: mime.Draft, **kwargs) -> bytes:
    """Build, and check that the stdlib's own generator writes the very same bytes for the message."""
    render = mime._render

    def render_both_ways(message):
        ours = render(message)  # first: random boundaries it picks stay set on the message
        assert ours == message.as_bytes(policy=mime.SMTP_COMPAT)
        return ours

    with mock.patch.object(mime, "_render", render_both_ways):
        return mime.build(draft, **kwargs)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.none(), _lines), html=st.one_of(st.none(), _lines), attach=st.booleans(), fixed=st.booleans())
def test_the_generator_writes_what_the_stdlib_generator_writes(text, html, attach, fixed):
    draft = _draft(text=text if text or html else "t", html=html, attachments=_draft().attachments if attach else [])
    _build_comparing_with_the_stdlib_generator(draft, boundary_token="t" if fixed else None)


def test_golden_message_is_what_the_stdlib_generator_writes():
    assert (
        _build_comparing_with_the_stdlib_generator(_draft(), boundary_token="golden")
        == (GOLDEN / "mime-built.eml").read_bytes()
    )


def test_a_boundary_found_in_the_content_is_replaced():
    with mock.patch("random.randrange", return_value=42):
        boundary = BytesGenerator._make_boundary()
        line = b"--" + boundary.encode()
        for content in (line, b"x\n" + line + b"--\n" + line + b".0\n"):  # where the stdlib finds it: the same
            assert mime._Generator._make_boundary(content) == BytesGenerator._make_boundary(content) != boundary
        assert mime._Generator._make_boundary(b"no boundary here") == boundary
        # Stricter: the stdlib's regular expression misses it in a CRLF line (its `$` wants LF) or mid-line.
        for content in (b"x\r\n" + line + b"\r\n", b"x" + line):
            assert BytesGenerator._make_boundary(content) == boundary
            assert mime._Generator._make_boundary(content) == boundary + ".0"
