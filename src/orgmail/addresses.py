"""Email address parsing: RFC 5321/5322 syntax and IDN domains, via email-validator.

Domains are compared case-insensitively and stored lower-cased in their ASCII (A-label) form, so
that DNS look-ups, Dovecot log-ins and suppressions all agree on one spelling. Names that private DNS
serves (.test, .local, .internal, home.arpa, ...) are ordinary names; `localhost` and `.invalid` are
refused (DESIGN.md §3). `Address.formatted` writes the header form a reader parses back to the same
address, display name included.
"""

from __future__ import annotations

import email.policy
import functools
import itertools
import re
from dataclasses import dataclass
from email.charset import Charset

import idna
from email_validator import EmailNotValidError, validate_email

from orgmail.errors import InvalidRequest


@dataclass(frozen=True)
class Address:
    local_part: str
    domain: str  # lower-case A-label
    display_name: str | None = None

    @property
    def email(self) -> str:
        return f"{self.local_part}@{self.domain}"

    def formatted(self, *, ascii_only: bool = False) -> str:
        """The address as a header value, `Name <local@domain>`, from which any RFC 5322 reader gets
        this display name back exactly; `ascii_only` for a 7-bit header (a non-ASCII name encoded)."""
        if not self.display_name:
            return self.email
        return f"{_phrase(self.display_name, ascii_only=ascii_only)} <{self.email}>"


@functools.lru_cache(maxsize=4096)  # a sender's From is formatted on every send
def _phrase(name: str, *, ascii_only: bool) -> str:
    """A display name as an RFC 5322 phrase: plain words as they are, anything else quoted, or as
    RFC 2047 encoded words what a quoted string cannot carry."""
    if "=?" not in name and not _CONTROL.search(name) and (not ascii_only or name.isascii()):
        if name.isprintable() and _PLAIN_PHRASE.fullmatch(name):
            return name  # atoms and single spaces: a reader gives them back as they are
        return '"' + _QUOTED_PAIR.sub(r"\\\g<0>", name) + '"'  # runs of spaces, specials (RFC 5322 §3.2.4)
    # Non-ASCII in a 7-bit header, control characters, or `=?`: a reader decodes what looks like an
    # encoded word even inside quotes (Python's parser does, though RFC 2047 §5 has none there), so a
    # literal one is sent encoded.
    encoded = _UTF8_HEADER.header_encode(name)  # one word, as email.utils.formataddr writes it
    if len(encoded) <= _MAX_ENCODED_NAME:
        return encoded
    # Several words keep the header's lines within SMTP's 998; RFC 2047 §6.2 readers join them as
    # they were (Python's phrase parser puts a space between them).
    words = _UTF8_HEADER.header_encode_lines(name, itertools.repeat(75))  # None: no room, never at 75
    return " ".join(word for word in words if word is not None)


# Atoms (RFC 5322 §3.2.3) without the `=` and `?` of encoded words; in the UTF-8 form also any
# non-ASCII character (RFC 6532 §3.2).
_ATOM_TEXT = r"[A-Za-z0-9!#$%&'*+/^_`{|}~\x80-\U0010ffff-]+"
_PLAIN_PHRASE = re.compile(rf"{_ATOM_TEXT}(?: {_ATOM_TEXT})*")
_QUOTED_PAIR = re.compile(r'[\\"]')
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UTF8_HEADER = Charset("utf-8")  # header words: the shorter of Q and B
_MAX_ENCODED_NAME = 900


def _reject(field: str, text: str, reason: str) -> InvalidRequest:
    return InvalidRequest(
        f"{field} is not a valid email address: {reason}",
        details={"fields": [{"path": field, "message": reason, "value": text[:320]}]},
    )


def parse_email(text: str, *, field: str = "email", ascii_local_part: bool = False) -> Address:
    """A bare address (`local@domain`), validated for syntax only (no DNS look-up)."""
    if any(ch in text for ch in "\r\n\0"):
        raise _reject(field, text, "line breaks are not allowed")
    try:
        valid = validate_email(text, check_deliverability=False, allow_smtputf8=not ascii_local_part)
    except EmailNotValidError as exc:
        local_part, domain = _private_name(text, exc, field=field, allow_smtputf8=not ascii_local_part)
    else:
        local_part, domain = valid.local_part, valid.ascii_domain.lower()
    never = _NEVER_MAIL.get(domain.rpartition(".")[2])
    if never:  # email-validator refuses these too; the contract should not hang on its list
        raise _reject(field, text, never)
    return Address(local_part=local_part, domain=domain)


# DESIGN.md §3: names that private DNS serves (.test, .local, .internal, home.arpa, ...) are ordinary
# names; only these two top-level names can never be a mail domain.
_NEVER_MAIL = {
    "localhost": "localhost and the names under it are the host itself (RFC 6761 §6.3), never a mail domain",
    "invalid": ".invalid names are reserved never to exist (RFC 6761 §6.4), so never a mail domain",
}
# The last label of the domain, where it is plain letters: at the end of the text, or before the `>`
# of a `Name <addr>` form (which email-validator refuses for its own reason).
_LAST_LABEL = re.compile(r"[.@]([A-Za-z]+)(>?)\Z")


def _private_name(text: str, error: EmailNotValidError, *, field: str, allow_smtputf8: bool) -> tuple[str, str]:
    """The local part and domain of an address that email-validator refused, if its only objection
    was its special-use list (no way to pass it per call but `test_environment`, which lets `.test`
    alone through, and `ann@test` with it); otherwise the refusal, as InvalidRequest.

    That check looks at the top-level label, so the address is validated again with that label
    swapped for as many letters that no list names: every other check (syntax, IDNA, lengths) then
    applies as to `.com`, and a pass means the label was the only objection.
    """
    spelled, match = text, _last_label(text)
    if match is None:
        # Spelled in other forms (fullwidth letters, an ideographic full stop): in the UTS #46 form
        # email-validator maps it to; the lengths are then checked on the text as written, below.
        spelled = _uts46_mapped(text)
        match = _last_label(spelled) if spelled != text else None
        if match is None:
            raise _reject(field, text, str(error)) from None
    label = match[1].lower()
    if label in _NEVER_MAIL:  # whatever else is wrong, this is the clearest reason
        raise _reject(field, text, _NEVER_MAIL[label])
    stand_in = spelled[: match.start(1)] + "x" * len(label) + match[2]
    try:
        valid = validate_email(stand_in, check_deliverability=False, allow_smtputf8=allow_smtputf8)
    except EmailNotValidError as stand_in_error:
        raise _reject(field, text, str(stand_in_error)) from None
    if spelled != text and (len(text.rpartition("@")[2]) > 253 or len(text.encode()) > 254):
        raise _reject(field, text, "The email address is too long.")
    return valid.local_part, valid.ascii_domain.lower()[: -len(label)] + label


def _last_label(text: str) -> re.Match[str] | None:
    match = _LAST_LABEL.search(text)
    return match if match and match.start() >= text.rfind("@") >= 0 else None


def _uts46_mapped(text: str) -> str:
    head, at, domain = text.rpartition("@")
    try:
        return head + at + idna.uts46_remap(domain, std3_rules=False, transitional=False)
    except (idna.IDNAError, ValueError):
        return text


# The common mailboxes, `local@domain` and `Name <local@domain>` in plain ASCII atoms (RFC 5322
# §3.2.3): for these the header parser would hand exactly the text between the brackets to
# email-validator and keep the name as written, so they skip it (it costs more than the validation).
# No `=` or `?`, which could start an RFC 2047 encoded word that the parser decodes; the domain is
# what a host name can be. Anything else takes the parser (tests/core/test_addresses.py compares them).
_ATOM = r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_BARE_ADDRESS = re.compile(_ADDR_SPEC)
_NAMED_ADDRESS = re.compile(rf"({_ATOM}(?: {_ATOM})*) <({_ADDR_SPEC})>")


def parse_mailbox(text: str, *, field: str = "from") -> Address:
    """`Name <local@domain>` or a bare address, as in a From or Reply-To header."""
    if _BARE_ADDRESS.fullmatch(text):
        return parse_email(text, field=field)
    named = _NAMED_ADDRESS.fullmatch(text)
    if named:
        address = parse_email(named[2], field=field)
        return Address(address.local_part, address.domain, named[1])
    return _parse_any_mailbox(text, field=field)


def _parse_any_mailbox(text: str, *, field: str) -> Address:
    """Any mailbox, with the stdlib's RFC 5322 header parser."""
    if any(ch in text for ch in "\r\n\0"):
        raise _reject(field, text, "line breaks are not allowed")
    try:
        # The stdlib's RFC 5322 header parser (the modern one behind policy.default).
        header = email.policy.default.header_factory("to", text)
        parsed = header.addresses
    except (IndexError, ValueError, TypeError, AttributeError, UnboundLocalError):
        # The parser's own bugs on malformed input: UnboundLocalError for "0@[ " (CPython 3.11).
        parsed = ()
    if len(parsed) != 1 or not parsed[0].addr_spec or "@" not in parsed[0].addr_spec:
        raise _reject(field, text, "expected one address, as 'Name <local@domain>' or 'local@domain'")
    address = parse_email(parsed[0].addr_spec, field=field)
    return Address(address.local_part, address.domain, parsed[0].display_name or None)


def normalize_domain(text: str, *, field: str = "name") -> str:
    """A domain name as we store it: lower-case A-label, no trailing dot."""
    candidate = text.strip().rstrip(".")
    if not candidate:
        raise InvalidRequest("The domain name is empty.", details={"fields": [{"path": field, "message": "empty"}]})
    try:
        # A domain is valid here exactly when mail can be addressed to it, so email-validator decides.
        return parse_email(f"postmaster@{candidate}", field=field).domain
    except InvalidRequest as error:
        reason = error.details["fields"][0]["message"] if error.details else "invalid"
        raise InvalidRequest(
            f"{field} is not a valid domain name (checked as postmaster@{candidate[:80]}: {reason})",
            details={"fields": [{"path": field, "message": "not a valid domain name", "value": text[:253]}]},
        ) from None
