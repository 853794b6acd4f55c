"""MIME building: fixed clock, Message-ID and boundaries give fixed bytes (golden file), signed and verified."""

from __future__ import annotations

import dataclasses
import email
import itertools
import os
import re
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
    assert parsed["Subject"] == subject + "x" * long_word
    assert parsed["X-Value"] == header_value and parsed["X-Long"] == "y" * long_word
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
    compared = []

    def render_both_ways(message):
        ours = render(message)  # first: random boundaries it picks stay set on the message
        assert ours == message.as_bytes(policy=mime.SMTP_COMPAT)
        compared.append(ours)
        return ours

    with mock.patch.object(mime, "_render", render_both_ways):
        built = mime.build(draft, **kwargs)
    # If `build` stopped calling `_render`, nothing above would have been compared.
    assert len(compared) == 1 and built.startswith(compared[0])
    return built


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


def test_encoded_headers_are_what_the_stdlib_generator_writes():
    draft = _draft(
        sender=dataclasses.replace(parse_mailbox("ann@example.com"), display_name="=?utf-8?q?Ann?="),
        subject=" Re: =?utf-8?q?x?= \u2028" + "é" * 200,
        headers={"X-Note": "=?utf-8?b?Zm9v?=", "X-" + "N" * 90: "a " * 100},
    )
    _build_comparing_with_the_stdlib_generator(draft, boundary_token="t")


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


# --- RFC 2047 §5: text that reads as an encoded word is sent encoded --------------------------------
from email.parser import BytesParser  # noqa: E402

from hypothesis import example  # noqa: E402

_LITERAL = "Re: Fwd: =?utf-8?q?not_encoded?= : colons"


def _parsed(draft: mime.Draft) -> email.message.EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(mime.build(draft))


def test_a_literal_encoded_word_in_the_subject_reads_back_as_written():
    built = mime.build(_draft(subject=_LITERAL))
    assert b"=?utf-8?q?not_encoded?=" not in built
    assert str(BytesParser(policy=policy.default).parsebytes(built)["Subject"]) == _LITERAL


def test_a_literal_encoded_word_in_a_custom_header_reads_back_as_written():
    parsed = _parsed(_draft(headers={"X-Note": _LITERAL, "X-Short": "=?utf-8?b?Zm9v?="}))
    assert str(parsed["X-Note"]) == _LITERAL and str(parsed["X-Short"]) == "=?utf-8?b?Zm9v?="


@pytest.mark.parametrize(
    "name",
    ["=?utf-8?q?Bob?=", "Bob =?utf-8?b?Qm9i?= Smith", '"=?utf-8?q?x?=" <evil@example.org>', "Ëx =?x?q?y?="],
)
def test_a_literal_encoded_word_in_a_display_name_reads_back_as_written(name):
    sender = dataclasses.replace(parse_mailbox("ann@example.com"), display_name=name)
    to = dataclasses.replace(parse_mailbox("bob@example.net"), display_name=name)
    parsed = _parsed(_draft(sender=sender, to=[to], cc=[], reply_to=[to]))
    for field, addr_spec in [("From", "ann@example.com"), ("To", "bob@example.net"), ("Reply-To", "bob@example.net")]:
        [address] = parsed[field].addresses
        assert (address.display_name, address.addr_spec) == (name, addr_spec)


@pytest.mark.parametrize("name", ["List-Unsubscribe", "list-unsubscribe", "In-Reply-To", "References"])
def test_structured_custom_headers_keep_their_syntax(name):
    """RFC 2047 §5 puts encoded words in text, comments and phrases only: a URI or a msg-id is not one."""
    value = "<https://example.com/u?next=?x=1> <mailto:u@example.com?subject=stop>, <a=?b@example.com>"
    built = mime.build(_draft(headers={name: value}))
    assert f"{name}: {value}\r\n".encode() in built.replace(b"\r\n ", b" ")


# Whatever the API lets through to a header: any text but CR, LF and NUL (and lone surrogates, which no
# UTF-8 can carry), up to the 998 characters the API allows; with the pieces that trip folding and
# RFC 2047 up on purpose.
_header_piece = st.one_of(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    st.sampled_from(["=?", "?=", "=?utf-8?q?", "=?UTF-8?B?", "?q?", "=?x?q?y?=", " ", "  ", "\t", "_", "é", "€"]),
    st.sampled_from(["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x7f", "\x01", "\u00a0", "\u3000"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=120),  # long words
)
_header_text = st.lists(_header_piece, max_size=40).map("".join).filter(lambda text: len(text) <= 998)
_custom_name = st.one_of(st.just("X-Value"), st.from_regex(r"X-[A-Za-z0-9-]{1,98}", fullmatch=True))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=_header_text, name=_custom_name, value=_header_text)
@example(subject=_LITERAL, name="X-Value", value=_LITERAL)
@example(subject=" leading", name="X-Value", value="trailing ")
@example(subject="  ", name="X-Value", value="\t")
@example(subject="x" * 70, name="X-" + "a" * 98, value="hello")
@example(subject="a;b;" * 40, name="X-Value", value="a,b," * 40)
@example(subject="a\u2028b", name="X-Value", value="é\x85b\x0cc")
@example(subject="a" + " " * 990 + "b", name="X-Value", value="é " + "x" * 900)
def test_subject_and_custom_headers_read_back_exactly_as_sent(subject, name, value):
    """Equal means equal: RFC 5322 unfolding removes only the CRLFs that folding inserted, and any text
    whose spaces a reader would not keep as they are (leading, trailing, a long first word that must
    go to a line of its own) is sent as encoded words, which keep every character."""
    built = mime.build(_draft(subject=subject, headers={name: value}, html=None, attachments=[]))
    assert all(byte < 128 for byte in built)
    head = built.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    # RFC 2047 §2: an encoded word is at most 75 characters (a display name is one word, as formataddr has it).
    fields = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t").split(b"\r\n")
    for field in fields:
        if field.startswith((b"Subject:", name.encode() + b":")):
            assert all(len(word) <= 75 for word in re.findall(rb"=\?[^?\s]+\?[qQbB]\?[^?\s]*\?=", field))
    parsed = BytesParser(policy=policy.default).parsebytes(built)
    assert str(parsed["Subject"]) == subject
    assert str(parsed[name]) == value


def _as_python_reads_an_encoded_phrase(name: str) -> str:
    """Python's phrase parser gives each run of white space that starts with a space or a tab back as
    one space, even inside an encoded word (a quoted string keeps it; RFC 2047 readers keep it too)."""
    return re.sub(r"[ \t]\s*", " ", name)


@settings(max_examples=300, deadline=None)
@given(name=_header_text.filter(lambda name: len(name) <= 300))
@example(name=" Bob")
@example(name="Bob  Smith")
@example(name="J. Smith, Jr.")
@example(name='a"b\\c')
@example(name="=?utf-8?q?Bob?=")
@example(name="Ëx  y\tz")
@example(name="\t")
@example(name="鈴木" * 150)
def test_display_names_read_back_as_given(name):
    """Exactly, when written as words or a quoted string; when encoded (non-ASCII, control characters,
    `=?`), up to Python's own reading of white space in encoded words; split into several encoded
    words (a name too long for one), the characters at least."""
    sender = dataclasses.replace(parse_mailbox("ann@example.com"), display_name=name)
    built = mime.build(_draft(sender=sender, html=None, attachments=[]))
    head = built.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    [address] = BytesParser(policy=policy.default).parsebytes(built)["From"].addresses
    assert address.addr_spec == "ann@example.com"
    [from_field] = [f for f in head.replace(b"\r\n ", b" ").split(b"\r\n") if f.startswith(b"From: ")]
    words = re.findall(rb"=\?utf-8\?[qb]\?[^?]*\?=", from_field)
    if not words:
        assert address.display_name == name
    elif len(words) == 1:
        assert address.display_name == _as_python_reads_an_encoded_phrase(name)
    else:
        assert all(len(word) <= 75 for word in words)
        assert address.display_name.replace(" ", "") == _as_python_reads_an_encoded_phrase(name).replace(" ", "")


from email.charset import Charset  # noqa: E402


@settings(max_examples=1000, deadline=None)
@given(text=_header_text, lengths=st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=5))
@example(text="", lengths=[75])
@example(text="€" * 40, lengths=[14, 75])  # nothing fits on the first line: None, as the stdlib says
@example(text="Quarterly report — Q4", lengths=[69, 75])
def test_encoded_words_are_the_stdlibs(text, lengths):
    def budgets():
        return itertools.chain(lengths, itertools.repeat(lengths[-1]))

    assert mime._utf8_encoded_words(text, budgets()) == Charset("utf-8").header_encode_lines(text, budgets())
