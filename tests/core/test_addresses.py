"""Address parsing, property-tested: anything in gives an Address or InvalidRequest, never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orgmail.addresses import Address, normalize_domain, parse_email, parse_mailbox
from orgmail.errors import InvalidRequest

settings.register_profile("orgmail", deadline=None, max_examples=300)
settings.load_profile("orgmail")


@given(st.text(max_size=400))
def test_any_text_parses_or_is_invalid_request(text):
    for parse in (parse_email, parse_mailbox, normalize_domain):
        try:
            parse(text)
        except InvalidRequest as error:
            assert error.code == "invalid_request" and error.status == 400


@given(st.emails())
def test_valid_addresses_round_trip_with_lowercase_domain(email):
    try:
        address = parse_email(email)
    except InvalidRequest:
        return  # hypothesis' emails() allows a few forms email-validator refuses (e.g. reserved TLDs)
    assert address.domain == address.domain.lower()
    assert parse_email(address.email) == address


@given(st.emails(), st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=40))
def test_display_names_survive_formatting(email, name):
    try:
        bare = parse_email(email)
    except InvalidRequest:
        return
    address = Address(bare.local_part, bare.domain, name.strip() or None)
    reparsed = parse_mailbox(address.formatted())
    assert reparsed.email == bare.email


@given(st.text(max_size=30), st.sampled_from(["\r", "\n", "\r\n", "\0"]), st.text(max_size=30))
def test_line_breaks_are_always_rejected(head, brk, tail):
    with pytest.raises(InvalidRequest):
        parse_mailbox(f"{head}{brk}{tail} <a@example.com>")
    with pytest.raises(InvalidRequest):
        parse_email(f"a{head}{brk}{tail}@example.com")


def test_idn_domains_are_stored_as_lowercase_a_labels():
    assert parse_email("Jöran@BÜCHER.example").domain == "xn--bcher-kva.example"
    assert normalize_domain("Bücher.Example.") == "xn--bcher-kva.example"


@pytest.mark.parametrize("text", ["", "@", "a@", "@b.com", "a b@c.com", "a@b@c.com", "a@localhost", "a@-x.com"])
def test_malformed_addresses_are_rejected(text):
    with pytest.raises(InvalidRequest):
        parse_email(text)
