"""Email address parsing: RFC 5321/5322 syntax and IDN domains, via email-validator.

Domains are compared case-insensitively and stored lower-cased in their ASCII (A-label) form, so
that DNS look-ups, Dovecot log-ins and suppressions all agree on one spelling.
"""

from __future__ import annotations

import email.policy
import functools
import re
from dataclasses import dataclass
from email.headerregistry import Address as HeaderAddress

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

    def formatted(self) -> str:
        """The address as a header value (display name quoted and encoded as needed)."""
        if not self.display_name:
            return self.email
        return _name_addr(self.display_name, self.email)


@functools.lru_cache(maxsize=4096)  # a sender's From is formatted on every send: ~25 µs each time
def _name_addr(display_name: str, addr_spec: str) -> str:
    return str(HeaderAddress(display_name=display_name, addr_spec=addr_spec))


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
        raise _reject(field, text, str(exc)) from None
    return Address(local_part=valid.local_part, domain=valid.ascii_domain.lower())


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
