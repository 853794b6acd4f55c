"""Build the outgoing message with the standard library's `email` package.

The shape follows what mail clients expect: text/plain, text/html, or multipart/alternative with
both; inline parts (a `contentId`) go into a multipart/related beside the HTML; other attachments
make the whole a multipart/mixed. Bcc is never a header: it lives only in the envelope.

Every body part is 7-bit (quoted-printable or base64 where needed): a relay that downgrades 8BITMIME
would re-encode the body and break the DKIM signature, so we never give it a reason to.
"""

from __future__ import annotations

import itertools
import mimetypes
import random
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import base64mime, encoders, policy, quoprimime
from email.charset import QP, Charset
from email.generator import BytesGenerator
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from io import BytesIO
from urllib.parse import quote

from orgmail.addresses import Address


class _EncodedText(str):
    """Unstructured text to be written as RFC 2047 encoded words, whatever it holds (`_unstructured`)."""

    __slots__ = ()


class _Compat32(policy.Compat32):
    """compat32, minus its cost for the common header field, and with encoded words that keep the text.

    compat32 folds every field through an `email.header.Header` (a third of `build`'s time); for a
    field that fits on one line (RFC 5322 §2.1.1's 78 characters) it writes the value out unchanged,
    so that case is written directly. Any other plain `str` is folded by compat32 as before: as with
    compat32, a `str` is written as it is, so the caller encodes what must be (tests/mail/test_mime.py
    compares the two on generated fields). `_EncodedText` is written as encoded words here, not by
    `Header`, which first splits its text with `str.splitlines()` and so turns U+2028, U+0085, a form
    feed and their kin into folds that a reader unfolds into nothing, or into a space.
    """

    def fold(self, name: str, value: str) -> str:
        if type(value) is _EncodedText:
            return self._encoded_words(name, value)
        return super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        if type(value) is str:
            if (
                self.max_line_length
                and len(name) + 2 + len(value) <= self.max_line_length
                and value.isascii()
                and value.isprintable()
            ):
                return f"{name}: {value}{self.linesep}".encode("ascii")
        elif type(value) is _EncodedText:
            return self._encoded_words(name, value).encode("ascii")
        return super().fold_binary(name, value)

    def _encoded_words(self, name: str, text: str) -> str:
        """Encoded words, each on its own line: at most 75 characters (RFC 2047 §2), the first one
        beside the name however long that is (a fold before it would unfold into a leading space)."""
        line = self.max_line_length or 78
        first = max(min(line - len(name) - 2, _MAX_ENCODED_WORD), _MIN_ENCODED_WORD)
        lengths = itertools.chain([first], itertools.repeat(min(line - 1, _MAX_ENCODED_WORD)))
        # None stands for a first line with no room for a word, which the minimum above rules out.
        words = [word for word in _utf8_encoded_words(text, lengths) if word is not None]
        return f"{name}: {(self.linesep + ' ').join(words)}{self.linesep}"


_MAX_ENCODED_WORD = 75  # RFC 2047 §2
_MIN_ENCODED_WORD = 24  # room for "=?utf-8?q?" "?=" and one character of up to four bytes, as =XX=XX=XX=XX


def _utf8_encoded_words(text: str, lengths: Iterator[int]) -> list[str | None]:
    """`Charset("utf-8").header_encode_lines(text, lengths)`, word for word, in linear time.

    UTF-8 in Q or B, whichever is shorter for the whole text; as many whole characters in each word
    (RFC 2047 §5) as its length allows, chrome included. The stdlib encodes the word again for each
    character it adds (quadratic in the length); here each character's cost is added up
    (tests/mail/test_mime.py compares the two).
    """
    octets = text.encode()
    b64 = -(-len(octets) // 3) * 4 < len(octets) + 2 * len(octets.translate(None, _Q_AS_IS))
    encode = base64mime.header_encode if b64 else quoprimime.header_encode
    words: list[str | None] = []
    start, size = 0, 0  # the word so far: text[start:index], as octets (B) or as Q characters
    room = next(lengths) - _CHROME
    for index, character in enumerate(text):
        code = ord(character)
        if code < 0x80:
            extra = 1 if b64 else _Q_LENGTH[code]
        else:  # UTF-8's two to four octets, each =XX in Q
            extra = (2 if code < 0x800 else 3 if code < 0x10000 else 4) * (1 if b64 else 3)
        if ((size + extra + 2) // 3 * 4 if b64 else size + extra) > room:
            # As the stdlib: None when not even the first character fits in the first word.
            words.append(encode(text[start:index].encode(), "utf-8") if index > start or words else None)
            start, size = index, extra
            room = next(lengths) - _CHROME
        else:
            size += extra
    words.append(encode(text[start:].encode(), "utf-8"))
    return words


_CHROME = len("=?utf-8?q??=")
_Q_LENGTH = [quoprimime.header_length(bytes([octet])) for octet in range(128)]
_Q_AS_IS = bytes(octet for octet in range(128) if quoprimime.header_length(bytes([octet])) == 1)


class _Generator(BytesGenerator):
    """The stdlib's BytesGenerator, minus two costs that grow with the message; the same bytes out.

    It writes a body line by line (two writes and two encodes a line); here it is one substitution
    and one write. It checks a random multipart boundary against the content with a freshly compiled
    regular expression (a new one for every boundary); here a substring search
    does, which is stricter: an occurrence anywhere picks another boundary, where the stdlib's check
    only sees a whole line ending in LF (and so misses it in CRLF text). Both override private
    methods: tests/mail/test_mime.py compares the output with the stdlib generator's.
    """

    _NL: str  # the policy's linesep, set by `flatten`

    def _write_lines(self, lines: str) -> None:
        if lines:  # as the stdlib: every line break made `linesep`, the text otherwise as it is
            self.write(_LINE_BREAK.sub(self._NL, lines))

    @classmethod
    def _make_boundary(cls, text: bytes | None = None) -> str:
        # Random, as the stdlib makes it (email.generator: 15 "=", 19 digits, "==").
        boundary = f"{'=' * 15}{random.randrange(sys.maxsize):0{_BOUNDARY_DIGITS}d}=="
        if text is None:
            return boundary
        candidate, counter = boundary, 0
        while b"--" + candidate.encode("ascii") in text:
            candidate, counter = f"{boundary}.{counter}", counter + 1
        return candidate


_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # email.generator.NLCRE
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))

# SMTP line endings, and 7-bit bodies whatever the relay advertises (see the module docstring).
SMTP_COMPAT = _Compat32(linesep="\r\n", cte_type="7bit")
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP  # readable in a raw view, unlike base64

# Headers the pipeline owns: the caller's `headers` may not set them. Addresses, subject and body
# structure come from their own fields; Message-ID, Date and DKIM-Signature are ours to make;
# Received, Return-Path and the Resent-* family belong to relays.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "Sender",
        "To",
        "Cc",
        "Bcc",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Content-ID",
        "DKIM-Signature",
        "Received",
        "Return-Path",
        "Resent-From",
        "Resent-Sender",
        "Resent-To",
        "Resent-Cc",
        "Resent-Bcc",
        "Resent-Date",
        "Resent-Message-ID",
    )
)

# Custom headers whose value is structured (URIs, msg-ids), where RFC 2047 §5 allows no encoded
# word: their text is written as given, so that `=?` in a URI stays a URI.
STRUCTURED_HEADERS = frozenset(
    name.lower()
    for name in (
        "In-Reply-To",
        "References",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Help",
        "List-Subscribe",
        "List-Post",
        "List-Owner",
        "List-Archive",
    )
)

# RFC 5322 §3.6.8: a field name is printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")


@dataclass(frozen=True)
class Part:
    """An attachment, already decoded; `content_id` makes it inline (referenced as `cid:` in HTML)."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"
    content_id: str | None = None


@dataclass(frozen=True)
class Draft:
    """Everything that goes into the message, validated: the pipeline builds this, `build` renders it."""

    sender: Address
    to: Sequence[Address]
    subject: str
    message_id: str  # with the angle brackets, on the sender's domain
    date: datetime
    cc: Sequence[Address] = ()
    reply_to: Sequence[Address] = ()
    text: str | None = None
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    attachments: Sequence[Part] = ()


def header_problem(name: str, value: str) -> str | None:
    """Why a caller's custom header cannot be sent, or None if it can."""
    if not _FIELD_NAME.match(name):
        return "not a valid header name"
    if name.lower() in RESERVED_HEADERS:
        return "this header is set by orgmail and cannot be overridden"
    if any(ch in value for ch in "\r\n\0"):
        return "line breaks are not allowed in header values"
    return None


def guess_content_type(filename: str) -> str:
    guessed, _encoding = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


def build(draft: Draft, *, boundary_token: str | None = None) -> bytes:
    """Render the draft as CRLF bytes, ready to be signed.

    Built with the `email.mime` classes and the compat32 policy: the modern EmailMessage API parses
    every header it is given into a structured object and refolds it on output, which costs ~1 ms per
    message, most of a send's CPU after the signature. Here each value is encoded once, where it is
    set: addresses by `Address.formatted`, text as it is or as RFC 2047 encoded words (`_unstructured`).

    `boundary_token` fixes the multipart boundaries (golden-file tests); otherwise they are random
    (the standard library's) and checked not to occur in the content (`_Generator`).
    """
    message = _body(draft)
    content_headers = [
        (name, message[name])
        for name in ("MIME-Version", "Content-Type", "Content-Transfer-Encoding")
        if name in message
    ]
    for name, _value in content_headers:
        del message[name]
    message["From"] = _addresses([draft.sender])
    message["To"] = _addresses(draft.to)
    if draft.cc:
        message["Cc"] = _addresses(draft.cc)
    if draft.reply_to:
        message["Reply-To"] = _addresses(draft.reply_to)
    message["Subject"] = _unstructured("Subject", draft.subject)
    message["Date"] = format_datetime(draft.date)
    message["Message-ID"] = draft.message_id
    for name, value in draft.headers.items():
        message[name] = _unstructured(name, value)
    for name, value in content_headers:  # the conventional order: MIME headers after the envelope ones
        message[name] = value

    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # the email.mime classes give every part one; only the top needs it
    if boundary_token is not None:
        for index, part in enumerate(p for p in message.walk() if p.is_multipart()):
            # "=_" cannot occur in quoted-printable or base64 output, so it cannot collide with a body.
            part.set_boundary(f"=_{boundary_token}_{index}")
    rendered = _render(message)
    # DATA ends with CRLF "." CRLF: a message that does not end in CRLF would get one on the wire,
    # and the bytes relayed would no longer be the bytes stored.
    return rendered if rendered.endswith(b"\r\n") else rendered + b"\r\n"


def _render(message: Message) -> bytes:
    """`message.as_bytes(policy=SMTP_COMPAT)`, with the generator above."""
    out = BytesIO()
    _Generator(out, mangle_from_=False, policy=SMTP_COMPAT).flatten(message, unixfrom=False)
    return out.getvalue()


def _body(draft: Draft) -> Message:
    inline = [part for part in draft.attachments if part.content_id]
    attached = [part for part in draft.attachments if not part.content_id]
    html: Message | None = _text_part(draft.html, "html") if draft.html is not None else None
    if html is not None and inline:
        related = MIMEMultipart("related")
        related.attach(html)
        for part in inline:
            related.attach(_attachment(part, disposition="inline"))
        html = related
    elif inline:
        attached = list(draft.attachments)  # no HTML to reference them: plain attachments, cid kept

    if draft.text is not None and html is not None:
        body: Message = MIMEMultipart("alternative")
        body.attach(_text_part(draft.text, "plain"))
        body.attach(html)
    else:
        body = html if html is not None else _text_part(draft.text or "", "plain")

    if not attached:
        return body
    mixed = MIMEMultipart("mixed")
    mixed.attach(body)
    for part in attached:
        mixed.attach(_attachment(part, disposition="attachment"))
    return mixed


def _text_part(text: str, subtype: str) -> Message:
    """7bit when the text is ASCII in lines SMTP allows (RFC 5321 §4.5.3.1.6), else UTF-8 in QP."""
    if text.isascii() and max(map(len, text.splitlines()), default=0) <= 998:
        return MIMEText(text, subtype, "us-ascii")
    part = MIMENonMultipart("text", subtype)
    part.set_payload(text, _UTF8_QP)
    return part


def _attachment(part: Part, *, disposition: str) -> Message:
    maintype, subtype = part.content_type.split("/", 1)
    attachment = MIMEBase(maintype, subtype)
    attachment.set_payload(part.content)
    encoders.encode_base64(attachment)
    attachment.add_header("Content-Disposition", disposition, filename=_filename_param(part.filename))
    if part.content_id:
        attachment["Content-ID"] = f"<{part.content_id}>"
    return attachment


def _filename_param(filename: str) -> str | tuple[str, str, str]:
    """ASCII as is; otherwise RFC 2231 (`filename*=utf-8''…`), shortened to keep the header line far
    below SMTP's 998 octets (compat32 cannot split a parameter into RFC 2231 continuations)."""
    if filename.isascii():
        return filename[:400]
    stem, dot, extension = filename.rpartition(".")
    if not dot or len(extension) > 10:
        stem, extension = filename, ""
    while len(quote((stem + dot + extension).encode())) > 600:
        stem = stem[:-1]
    return ("utf-8", "", stem + dot + extension)


def _addresses(addresses: Sequence[Address]) -> str:
    return ", ".join(a.formatted(ascii_only=True) for a in addresses)


def _unstructured(name: str, value: str) -> str:
    """The value as it is, where a reader gets exactly it back; otherwise as RFC 2047 encoded words.

    As it is: printable ASCII (compat32 folds it at its spaces, which unfolding restores), with no
    `=?` (RFC 2047 §5: a reader would decode what looks like an encoded word, so a literal one is
    encoded), no leading or trailing space (readers drop them), a first word that fits beside the
    name (else compat32 folds before it, which unfolds into a leading space) and short enough that no
    folded line can pass SMTP's 998. Everything else (non-ASCII, tabs and control characters too) is
    encoded: encoded words keep every character.
    """
    printable = value.isascii() and value.isprintable()
    if printable and "=?" not in value and value[:1] != " " and value[-1:] != " ":
        room = _LINE - len(name) - 2
        if len(value) <= room:
            return value
        first_word = value.find(" ")
        if len(value) <= _MAX_PLAIN and (first_word if first_word >= 0 else len(value)) <= room:
            return value
    if printable and len(value) <= _MAX_PLAIN and name.lower() in STRUCTURED_HEADERS:
        return value  # whitespace there is CFWS, and `=?` starts no encoded word
    return _EncodedText(value)


_LINE = SMTP_COMPAT.max_line_length or 78
_MAX_PLAIN = 900  # a folded line holds at most the first word, or one run of spaces and one word
