"""Settings are read once, and every bad ORGMAIL_* variable is reported at once: one line each, naming
the variable, what is wrong and what is accepted, and never a password."""

from __future__ import annotations

import os
import pwd

import pytest

from orgmail.config import SettingsError, load_settings, printable_database_url, printable_url


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"ORGMAIL_DATA_DIR": str(tmp_path / "data")}


def _problems(env: dict[str, str], **variables: str) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load_settings({**env, **variables})
    assert str(raised.value) == "\n".join(raised.value.problems)
    return raised.value.problems


def test_no_configuration_is_the_embedded_default(env, tmp_path):
    settings = load_settings(env)
    data = tmp_path / "data"
    assert settings.data_dir == data and settings.database_url == f"sqlite+aiosqlite:///{data / 'orgmail.db'}"
    assert settings.relay_url == "outbox" and settings.relay_pipelining and settings.max_recipients == 50
    assert (data / "secret.key").stat().st_mode & 0o777 == 0o600
    assert load_settings(env).secret_key == settings.secret_key  # generated once, then read


def test_empty_values_count_as_unset(env):
    blank = {name: "" for name in ("ORGMAIL_DATABASE_URL", "ORGMAIL_RELAY_URL", "ORGMAIL_MAX_RECIPIENTS")}
    settings = load_settings({**env, **blank, "ORGMAIL_RELAY_TIMEOUT": "  "})
    assert settings.is_sqlite and settings.relay_url == "outbox" and settings.max_recipients == 50
    assert settings.relay_timeout_seconds == 30


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://app:pw@db.internal:5433/orgmail", "postgresql+asyncpg://app:pw@db.internal:5433/orgmail"),
        ("postgres://app@db.internal/orgmail", "postgresql+asyncpg://app@db.internal/orgmail"),
        ("postgresql+asyncpg://app@db.internal/orgmail", "postgresql+asyncpg://app@db.internal/orgmail"),
    ],
)
def test_postgresql_in_the_libpq_form_gets_our_driver(env, url, expected):
    assert load_settings({**env, "ORGMAIL_DATABASE_URL": url}).database_url == expected


def test_a_sqlite_file_of_ones_own(env, tmp_path):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert load_settings({**env, "ORGMAIL_DATABASE_URL": url}).sqlite_path == tmp_path / "elsewhere.db"


@pytest.mark.parametrize(
    "url, wrong",
    [
        ("mysql://app:s3cret-pw@db.example/app", "not a database orgmail supports"),
        ("postgresql+psycopg2://app:s3cret-pw@db.example/app", "not a database orgmail supports"),
        ("sqlite://", "no file named"),
        ("sqlite:///", "no file named"),
        ("db.example", "not a URL"),
        ("postgresql://app:s3cret-pw@db.example:54x/app", "the port is not a number from 1 to 65535"),
        ("postgresql://app:s3cret-pw@db.example:70000/app", "the port is not a number from 1 to 65535"),
        ("sqlite:////no-such-folder/orgmail.db", "the folder /no-such-folder does not exist"),
    ],
)
def test_a_database_url_orgmail_cannot_use_says_what_it_can(env, url, wrong):
    [problem] = _problems(env, ORGMAIL_DATABASE_URL=url)
    assert problem.startswith("ORGMAIL_DATABASE_URL=") and wrong in problem
    assert problem.endswith("expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST:5432/DB")
    assert "s3cret-pw" not in problem


@pytest.mark.parametrize(
    "url",
    ["outbox", "OUTBOX", "smtp://relay.example", "smtp+starttls://app:pw@relay.example:587", "smtps://relay.example"],
)
def test_relay_urls_that_work(env, url):
    assert load_settings({**env, "ORGMAIL_RELAY_URL": url}).relay_url == url


@pytest.mark.parametrize(
    "url, wrong",
    [
        ("smtpx://app:s3cret-pw@relay.example", "unsupported relay URL 'smtpx://***:***@relay.example'"),
        ("smtp://app:s3cret-pw@", "unsupported relay URL"),
        ("smtp://app:s3cret-pw@relay.example:25x", "the port is not a number from 1 to 65535"),
        ("smtps://relay.example?cafile=/no/such/ca.pem", "cannot load the cafile (No such file or directory)"),
    ],
)
def test_a_relay_url_orgmail_cannot_use_says_what_it_can(env, url, wrong):
    [problem] = _problems(env, ORGMAIL_RELAY_URL=url)
    assert problem.startswith("ORGMAIL_RELAY_URL") and wrong in problem
    assert "s3cret-pw" not in problem


def test_a_relay_password_is_never_printed_even_when_it_is_in_the_host(env):
    # A password that also occurs elsewhere in the URL must not leak through a partial replacement.
    [problem] = _problems(env, ORGMAIL_RELAY_URL="smtpx://relay:relay@relay")
    assert ":relay@" not in problem and "***" in problem


NUMBERS = [
    # variable, a value out of range, what it accepts
    ("ORGMAIL_MAX_RECIPIENTS", "0", "a whole number of at least 1 (default 50)"),
    ("ORGMAIL_MAX_MESSAGE_BYTES", "-1", "a whole number of at least 1 (default 10485760)"),
    ("ORGMAIL_MAX_REQUEST_BYTES", "0", "a whole number of at least 1 (default 15728640)"),
    ("ORGMAIL_RELAY_TIMEOUT", "0", "a number above 0 (default 30)"),
    ("ORGMAIL_RELAY_POOL_SIZE", "0", "a whole number of at least 1 (default 4)"),
    ("ORGMAIL_DNS_TIMEOUT", "-2", "a number above 0 (default 5)"),
    ("ORGMAIL_RATE_LIMIT", "-1", "a number of at least 0 (default 1000)"),
    ("ORGMAIL_RATE_LIMIT_BURST", "0", "a whole number of at least 1 (default 2000)"),
    ("ORGMAIL_MAILBOX_RETENTION", "-1", "a number of at least 0 (default 7)"),
    ("ORGMAIL_PURGE_INTERVAL", "0", "a number above 0 (default 3600)"),
    ("ORGMAIL_WEBHOOK_NICE", "-1", "a whole number from 0 to 19 (default 19)"),
    ("ORGMAIL_WEBHOOK_NICE", "20", "a whole number from 0 to 19 (default 19)"),
]


@pytest.mark.parametrize("variable, out_of_range, accepted", NUMBERS)
def test_a_number_that_does_not_parse_or_is_out_of_range_is_named(env, variable, out_of_range, accepted):
    for value in ("abc", "1e", out_of_range):
        [problem] = _problems(env, **{variable: value})
        assert problem.startswith(f"{variable}={value!r}: ") and problem.endswith(f"; expected {accepted}")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_seconds_must_be_finite(env, value):
    [problem] = _problems(env, ORGMAIL_RELAY_TIMEOUT=value)
    assert "out of range" in problem


def test_zero_is_accepted_where_it_means_off_or_at_once(env):
    settings = load_settings({**env, "ORGMAIL_RATE_LIMIT": "0", "ORGMAIL_MAILBOX_RETENTION": "0"})
    assert settings.rate_limit_per_second == 0 and settings.mailbox_retention_days == 0


@pytest.mark.parametrize(
    "value, expected",
    [(word, True) for word in ("1", "true", "YES", "on")] + [(word, False) for word in ("0", "False", "no", "off")],
)
def test_pipelining_takes_the_usual_yes_and_no_words(env, value, expected):
    assert load_settings({**env, "ORGMAIL_RELAY_PIPELINING": value}).relay_pipelining is expected


def test_pipelining_refuses_anything_else(env):
    assert _problems(env, ORGMAIL_RELAY_PIPELINING="maybe") == [
        "ORGMAIL_RELAY_PIPELINING='maybe': not a yes/no value; expected 1/0, true/false, yes/no or on/off"
    ]


@pytest.mark.parametrize(
    "value, wrong",
    [
        ("dns.example.net", "'dns.example.net' is not an IP address"),
        ("10.0.0.2:domain", "the port 'domain' is not a number from 1 to 65535"),
        ("[::1]:70000", "the port '70000' is not a number from 1 to 65535"),
    ],
)
def test_nameservers_must_be_ip_addresses_with_numeric_ports(env, value, wrong):
    [problem] = _problems(env, ORGMAIL_DNS_NAMESERVERS=f"127.0.0.1:5353,{value}")
    assert problem.startswith(f"ORGMAIL_DNS_NAMESERVERS={value!r}: {wrong}; expected IP addresses")


def test_an_unknown_mail_user_or_group_is_named(env):
    problems = _problems(env, ORGMAIL_MAIL_USER="no-such-user-here", ORGMAIL_MAIL_GROUP="no-such-group-here")
    assert problems == [
        "ORGMAIL_MAIL_USER='no-such-user-here': no such user on this system; "
        "expected a user name or uid from the user database (getent passwd)",
        "ORGMAIL_MAIL_GROUP='no-such-group-here': no such group on this system; "
        "expected a group name or gid from the group database (getent group)",
    ]


def test_the_mail_user_by_name_or_uid(env):
    nobody = pwd.getpwnam("nobody")
    by_name = load_settings({**env, "ORGMAIL_MAIL_USER": "nobody"})
    assert (by_name.mail_uid, by_name.mail_gid) == (nobody.pw_uid, nobody.pw_gid)
    by_ids = load_settings({**env, "ORGMAIL_MAIL_USER": str(nobody.pw_uid), "ORGMAIL_MAIL_GROUP": "4321"})
    assert (by_ids.mail_uid, by_ids.mail_gid) == (nobody.pw_uid, 4321)


def test_a_data_folder_that_is_a_file_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    [problem] = _problems({}, ORGMAIL_DATA_DIR=str(tmp_path / "file"))
    assert problem == f"ORGMAIL_DATA_DIR={str(tmp_path / 'file')!r}: not a folder; expected a folder orgmail may write"


def test_every_problem_is_reported_at_once_and_nothing_is_written(env, tmp_path):
    problems = _problems(
        env,
        ORGMAIL_DATABASE_URL="mysql://db.example/app",
        ORGMAIL_RELAY_URL="smtpx://relay.example",
        ORGMAIL_MAX_RECIPIENTS="abc",
        ORGMAIL_RELAY_TIMEOUT="-1",
        ORGMAIL_RELAY_PIPELINING="maybe",
        ORGMAIL_DNS_NAMESERVERS="dns.example.net",
        ORGMAIL_MAIL_USER="no-such-user-here",
    )
    assert len(problems) == 7
    assert not (tmp_path / "data" / "secret.key").exists()  # a run that stops here leaves no key behind


def test_overrides_win_and_nothing_lands_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("data-override")
    settings = load_settings({}, data_dir=tmp_path / "data-override", secret_key=b"k", max_recipients=3)
    assert settings.max_recipients == 3 and settings.secret_key == b"k"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'data-override' / 'orgmail.db'}"
    assert sorted(os.listdir(tmp_path)) == ["data-override"] and os.listdir("data-override") == []


@pytest.mark.parametrize(
    "url, printed",
    [
        (
            "postgresql+asyncpg://app:s3cret@db.internal:5433/orgmail?sslmode=require",
            "postgresql://db.internal:5433/orgmail",
        ),
        ("postgresql+asyncpg://app:s3cret@db.internal/orgmail", "postgresql://db.internal:5432/orgmail"),
        ("postgresql+asyncpg://app:s3cret@[::1]/orgmail", "postgresql://[::1]:5432/orgmail"),
        ("sqlite+aiosqlite:////srv/orgmail/orgmail.db", "sqlite:////srv/orgmail/orgmail.db"),
    ],
)
def test_a_database_is_printed_without_credentials(url, printed):
    assert printable_database_url(url) == printed


def test_a_url_is_printed_without_its_password():
    assert (
        printable_url("smtp+starttls://app:p@ss:w/rd@relay.example:587") == "smtp+starttls://***:***@relay.example:587"
    )
    assert printable_url("smtp://relay.example:25") == "smtp://relay.example:25"
