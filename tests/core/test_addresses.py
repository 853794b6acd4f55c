"""Address parsing, property-tested: anything in gives an Address or InvalidRequest, never a crash."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
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


@given(
    st.lists(
        st.one_of(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"),
            st.sampled_from(["=?", "?=", "=?utf-8?q?x?=", '"', "\\", "  ", "\t", ",", "<", "@", "\u00a0", "\u2028"]),
        ),
        min_size=1,
        max_size=30,
    ).map("".join)
)
@example("=?utf-8?q?Bob?=")
@example("Bob  Smith")
@example(" Bob ")
@example('"=?utf-8?q?x?=" <evil@example.org>')
@example("Ann\u00a0Smith")
def test_formatted_addresses_parse_back_to_the_same_address(name):
    """`formatted` is what the API shows and a caller may send back: the same address, name and all
    (where the name had to be encoded, `=?` or control characters, Python reads its runs of white space
    as one space)."""
    address = Address("ann", "example.com", name)
    reparsed = parse_mailbox(address.formatted())
    if "=?" in name or any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in name):
        name = re.sub(r"[ \t]\s*", " ", name)
    assert reparsed == Address("ann", "example.com", name)
    assert reparsed.formatted(ascii_only=True).isascii()


def test_plain_names_are_formatted_as_they_are_and_others_quoted_or_encoded():
    assert Address("bob", "example.net", "Bob O'Brien").formatted() == "Bob O'Brien <bob@example.net>"
    assert Address("bob", "example.net", "Jöran").formatted() == "Jöran <bob@example.net>"
    assert Address("bob", "example.net", "Jöran").formatted(ascii_only=True) == "=?utf-8?b?SsO2cmFu?= <bob@example.net>"
    assert Address("bob", "example.net", "J. Smith").formatted() == '"J. Smith" <bob@example.net>'
    assert Address("bob", "example.net", 'a "b" \\').formatted() == '"a \\"b\\" \\\\" <bob@example.net>'
    assert (
        Address("bob", "example.net", "=?utf-8?q?x?=").formatted()
        == "=?utf-8?b?PT91dGYtOD9xP3g/PQ==?= <bob@example.net>"
    )


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


# --- names that private DNS serves (DESIGN.md §3) ---------------------------------------------------
# email-validator refuses every IANA special-use name; DESIGN.md accepts all but `localhost` and
# `.invalid`, which can never be a mail domain.
PRIVATE_NAMES = [
    "acme.test",
    "corp.local",
    "mail.home.arpa",
    "home.arpa",
    "x.internal",
    "nas.lan",
    "shop.example",
    "www.example.com",
    "a.b.c.corp.local",
    "xn--bcher-kva.local",
]


@pytest.mark.parametrize("domain", PRIVATE_NAMES)
def test_private_names_are_ordinary_names(domain):
    assert parse_email(f"ann@{domain}") == Address("ann", domain)
    assert parse_mailbox(f"Ann <ann@{domain}>") == Address("ann", domain, "Ann")
    assert parse_mailbox(f'"Ann, Smith" <ann@{domain}>') == Address("ann", domain, "Ann, Smith")
    assert normalize_domain(domain) == domain
    assert normalize_domain(domain.upper() + ".") == domain


@pytest.mark.parametrize(
    "text, domain",
    [
        ("Ann@Corp.LOCAL", "corp.local"),
        ("ann@bücher.local", "xn--bcher-kva.local"),
        ("ann@BÜCHER.Test", "xn--bcher-kva.test"),
        ("ann@corp\u3002local", "corp.local"),  # an ideographic full stop is a dot (UTS #46)
        ("ann@corp.\uff4c\uff4f\uff43\uff41\uff4c", "corp.local"),  # fullwidth letters
        ("ann@x.onion", "x.onion"),
    ],
)
def test_private_names_are_normalized_like_any_name(text, domain):
    assert parse_email(text).domain == domain


@pytest.mark.parametrize(
    "domain, why",
    [
        ("localhost", "localhost"),
        ("LOCALHOST", "localhost"),
        ("x.localhost", "localhost"),
        ("mail.x.LocalHost", "localhost"),
        ("invalid", ".invalid"),
        ("foo.invalid", ".invalid"),
        ("a.b.INVALID", ".invalid"),
        ("x.\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "localhost"),
    ],
)
def test_localhost_and_invalid_names_are_refused_saying_why(domain, why):
    for parse in (parse_email, parse_mailbox):
        with pytest.raises(InvalidRequest) as caught:
            parse(f"ann@{domain}")
        assert why in caught.value.message and "never" in caught.value.message
        assert "special-use" not in caught.value.message
    with pytest.raises(InvalidRequest) as caught:
        normalize_domain(domain)
    assert why in caught.value.message and "never" in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "a@-x.local",
        "a@x-.test",
        "a@x..local",
        "a@.local",
        "a@local",  # a name needs a dot, private or not
        "a@test",
        "a b@corp.local",
        '"a b"@corp.local',
        "a@[127.0.0.1].local",
        "a@x_y.local",
        "a@" + "b" * 64 + ".local",
        "a@" + ".".join(["b" * 60] * 5) + ".local",  # a domain over 253 characters
        "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".bbbbb.test",  # an address over 254 characters
        "Bob <bob@corp.local>",
    ],
)
def test_private_names_are_still_checked_for_syntax(text):
    with pytest.raises(InvalidRequest) as caught:
        parse_email(text)
    assert "special-use" not in caught.value.message


_private_tld = st.sampled_from(["test", "local", "arpa", "onion", "internal", "lan", "example"])


@given(st.emails(), _private_tld)
def test_a_private_tld_is_accepted_when_an_ordinary_one_of_its_length_is(email, tld):
    """The special-use check is the only difference: syntax and length limits apply as they do to `.com`."""
    head = email.rpartition(".")[0] if "." in email.rpartition("@")[2] else email
    private, ordinary = f"{head}.{tld}", f"{head}.{'q' * len(tld)}"
    expected = _outcome(parse_email, ordinary)
    got = _outcome(parse_email, private)
    if isinstance(expected, Address):
        assert got == Address(expected.local_part, expected.domain[: -len(tld)] + tld)
    else:
        assert not isinstance(got, Address) and got[2] == expected[2]  # the same reason
