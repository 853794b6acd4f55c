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


@pytest.mark.parametrize("text", ["0@[ ", "<0@[ ", "Bob <a@[ x>", ":0@[ "])
def test_what_crashes_the_header_parser_is_invalid_request(text):
    with pytest.raises(InvalidRequest):
        parse_mailbox(text)


def test_idn_domains_are_stored_as_lowercase_a_labels():
    assert parse_email("Jöran@BÜCHER.example").domain == "xn--bcher-kva.example"
    assert normalize_domain("Bücher.Example.") == "xn--bcher-kva.example"


@pytest.mark.parametrize("text", ["", "@", "a@", "@b.com", "a b@c.com", "a@b@c.com", "a@localhost", "a@-x.com"])
def test_malformed_addresses_are_rejected(text):
    with pytest.raises(InvalidRequest):
        parse_email(text)


# --- the fast paths of parse_mailbox (bare and named ASCII addresses) -------------------------------
from orgmail import addresses  # noqa: E402

_ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"


def _outcome(parse, text: str):
    """What a parse gives: the Address, or the whole error a client would see."""
    try:
        return parse(text, field="to.0")
    except InvalidRequest as error:
        return (error.code, error.status, error.message, error.details)


def _same_as_the_header_parser(text: str) -> None:
    assert _outcome(parse_mailbox, text) == _outcome(addresses._parse_any_mailbox, text)


@given(
    st.one_of(
        st.from_regex(addresses._BARE_ADDRESS, fullmatch=True), st.from_regex(addresses._NAMED_ADDRESS, fullmatch=True)
    )
)
def test_fast_path_addresses_parse_as_the_header_parser_parses_them(text):
    _same_as_the_header_parser(text)


@given(st.emails())
def test_generated_emails_parse_as_the_header_parser_parses_them(text):
    _same_as_the_header_parser(text)


@given(st.text(alphabet=_ATEXT + '.@ <>"()[]\\:;,=?\t', max_size=60))
def test_near_misses_parse_as_the_header_parser_parses_them(text):
    _same_as_the_header_parser(text)


@pytest.mark.parametrize(
    "text",
    [
        "customer1@example.net",
        "First.Last+tag@Sub.Example.CO.uk",
        "a@b",
        "x@-bad.com",
        "x@bad-.com",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@example..com",
        "a@example.com.",
        "=?utf-8?q?bob?=@example.com",
        "bob=x@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 64 + ".com",
        "a@" + ".".join(["b" * 60] * 5),
        "a@localhost",
        "a@123.45.67.89",
        "Bob <bob@example.net>",
        "Bob Smith <Bob.Smith@Example.NET>",
        "O'Brien-Smith <x@example.org>",
        "Bob  Smith <bob@example.net>",
        " Bob <bob@example.net>",
        "Bob <bob@example.net> ",
        "Bob<bob@example.net>",
        "J. Smith <j@example.net>",
        "=?utf-8?q?Bob?= <bob@example.net>",
        "Bob <bob@-x.com>",
        "Bob <a..b@example.com>",
        "Bob <bob@localhost>",
        "Bob <Bob <bob@example.net>>",
        "bob@example.net <bob@example.net>",
    ],
)
def test_edge_addresses_parse_as_the_header_parser_parses_them(text):
    _same_as_the_header_parser(text)
