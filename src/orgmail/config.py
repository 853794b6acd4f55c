"""Settings, read once from ORGMAIL_* variables at start and passed down.

The embedded defaults (SQLite and Maildir under the data folder, the local outbox as relay) make
`orgmail serve` work with no configuration at all. Every variable is checked here, in one pass:
`load_settings` raises `SettingsError` with every problem it found, one line each, naming the
variable, what is wrong and what is accepted, so an operator fixes them all in one round. A
variable set to the empty string counts as unset (`ORGMAIL_X=` in a compose file).
"""

from __future__ import annotations

import grp
import ipaddress
import math
import os
import pwd
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_DATABASE_URLS_ACCEPTED = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:5432/DB"
_NAMESERVERS_ACCEPTED = "IP addresses with optional ports, e.g. 127.0.0.1:5353,10.0.0.2,[::1]:53"
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
_HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


class SettingsError(ValueError):
    """The ORGMAIL_* variables are wrong: every problem found, one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _default_mail_owner() -> tuple[int, int]:
    """Who owns the mail files unless ORGMAIL_MAIL_USER says; Dovecot's mail processes run as it.

    `nobody` (and its group, `nogroup` on Debian) when orgmail runs as root, else the user orgmail
    runs as, so that an unprivileged `make run` and a root Dovecot agree on the owner.
    """
    uid = os.geteuid()
    try:
        account = pwd.getpwnam("nobody") if uid == 0 else pwd.getpwuid(uid)
    except KeyError:  # a container's arbitrary uid has no passwd entry; nobody is 65534 by convention
        return (65534, 65534) if uid == 0 else (uid, os.getegid())
    return account.pw_uid, account.pw_gid


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: bytes
    relay_url: str = "outbox"
    admin_token: str | None = None
    dns_nameservers: tuple[tuple[str, int], ...] = ()
    dns_timeout_seconds: float = 5.0
    max_recipients: int = 50
    max_message_bytes: int = 10 * 1024 * 1024
    max_request_bytes: int = 15 * 1024 * 1024
    relay_timeout_seconds: float = 30.0
    relay_pool_size: int = 4
    relay_pipelining: bool = True  # RFC 2920 when the relay offers it; ORGMAIL_RELAY_PIPELINING=0 turns it off
    # Delivery feedback (DESIGN.md §9): the VERP return path's domain (None: the From address, no DSNs)
    bounce_domain: str | None = None
    dsn_notify: tuple[str, ...] = ("FAILURE", "DELAY")  # RFC 3461 NOTIFY, when the relay offers DSN
    inbound_listen: tuple[str, int] | None = None  # the inbound SMTP listener for reports (None: off)
    tls_cert: Path | None = None  # PEM certificate chain and key for STARTTLS on the listeners
    tls_key: Path | None = None
    webhook_allow_private: bool = False  # development: webhooks to loopback and private addresses
    # False: `orgmail serve` queues webhook events but delivers none (`orgmail webhook deliver` does,
    # on other cores or another host: the processes share the queue)
    webhook_delivery: bool = True
    # How much lower `orgmail serve`'s delivery process runs than its API workers (nice, 0-19): sends first
    webhook_nice: int = 19
    # The mail edge (DESIGN.md §10): SMTP submission (STARTTLS on the first, implicit TLS on the second)
    submission_listen: tuple[str, int] | None = None
    submission_tls_listen: tuple[str, int] | None = None
    # What members' mail clients connect to (autoconfig, MailboxDetail): None: the name the request used
    mail_host: str | None = None
    imap_port: int = 993  # Dovecot's IMAP with implicit TLS, as clients reach it
    mailbox_retention_days: float = 7.0
    purge_interval_seconds: float = 3600.0
    mail_uid: int = field(default_factory=lambda: _default_mail_owner()[0])
    mail_gid: int = field(default_factory=lambda: _default_mail_owner()[1])
    # The Dovecot config `doveadm kick` reads to reach a running Dovecot (None: doveadm's default).
    dovecot_config: Path | None = None
    doveadm_path: str = "doveadm"
    rate_limit_per_second: float = 1000.0  # per API key and process; 0 turns it off
    rate_limit_burst: int = 2000

    @property
    def maildir_root(self) -> Path:
        return self.data_dir / "mail"

    @property
    def mail_trash_root(self) -> Path:
        """Deleted mailboxes wait here for the retention; beside the mail root, on the same disk."""
        return self.data_dir / "mail-trash"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The database file, for SQLite (None for anything else, an in-memory database included)."""
        database = make_url(self.database_url).database if self.is_sqlite else None
        return Path(database).resolve() if database and database != ":memory:" else None


def _load_or_create_secret(data_dir: Path) -> bytes:
    """The secret key encrypts DKIM private keys at rest; on first start it is generated, mode 0600."""
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip().encode()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token.encode()


def async_database_url(url: str) -> str:
    """Accept the plain libpq form (postgresql://) and pick our async drivers."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def printable_url(url: str) -> str:
    """`url` fit for a log line or an error: no credentials. Not the user name either, since some
    providers take the API token as the user name (Postmark: as both), or a token alone."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")  # the last @: a password may hold one, a host cannot
    if not sep or not at:
        return url
    return f"{scheme}://{'***:***' if ':' in credentials else '***'}@{host}"


def printable_database_url(url: str) -> str:
    """The database as an operator names it: postgresql://host:port/db or sqlite:///path, without
    credentials or query (libpq accepts a password there too) and without our driver names."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return printable_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:///{parsed.database or ''}"
    host = parsed.host or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parsed.port or 5432}" if host else ""
    return f"{parsed.get_backend_name()}://{host}{port}/{parsed.database or ''}"


def _database_url_problem(url: str) -> str | None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "not a URL"
    except ValueError:  # SQLAlchemy reads the port as an int
        return "the port is not a number from 1 to 65535"
    if parsed.get_backend_name() == "sqlite" and (not url.startswith("sqlite+aiosqlite:///") or not parsed.database):
        return "no file named"
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        return "not a database orgmail supports"
    if parsed.drivername == "sqlite+aiosqlite" and not Path(parsed.database or "").resolve().parent.is_dir():
        return f"the folder {Path(parsed.database or '').resolve().parent} does not exist"
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return "the port is not a number from 1 to 65535"
    return None


class _Environment:
    """The ORGMAIL_* variables: each reader notes a problem and answers the default for a bad value,
    so that one pass finds them all."""

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ
        self.problems: list[str] = []

    def text(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def secret(self, name: str) -> str | None:
        """A token or key, taken as it is (not stripped); empty counts as unset."""
        return self._environ.get(name) or None

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        bounds = f"of at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        expected = f"expected a whole number {bounds} (default {default})"
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r}: not a whole number; {expected}")
            return default
        if value < minimum:
            self.problems.append(f"{name}={raw!r}: too small; {expected}")
            return default
        if maximum is not None and value > maximum:
            self.problems.append(f"{name}={raw!r}: too large; {expected}")
            return default
        return value

    def number(self, name: str, default: float, *, zero_allowed: bool) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        expected = f"expected a number {'of at least 0' if zero_allowed else 'above 0'} (default {default:g})"
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r}: not a number; {expected}")
            return default
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
            self.problems.append(f"{name}={raw!r}: out of range; {expected}")
            return default
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() not in _BOOLEANS:
            self.problems.append(f"{name}={raw!r}: not a yes/no value; expected 1/0, true/false, yes/no or on/off")
            return default
        return _BOOLEANS[raw.lower()]

    def data_dir(self) -> Path:
        data_dir = Path(self.text("ORGMAIL_DATA_DIR") or "./data").resolve()
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            wrong = "not a folder" if isinstance(exc, FileExistsError) else f"cannot create it ({exc.strerror or exc})"
            self.problems.append(f"ORGMAIL_DATA_DIR={str(data_dir)!r}: {wrong}; expected a folder orgmail may write")
        return data_dir

    def secret_key(self, data_dir: Path) -> bytes:
        secret = self.secret("ORGMAIL_SECRET_KEY")
        if secret is not None:
            return secret.encode()
        try:
            return _load_or_create_secret(data_dir)
        except OSError as exc:
            self.problems.append(
                f"ORGMAIL_SECRET_KEY is unset and {data_dir / 'secret.key'} cannot be read or created "
                f"({exc.strerror or exc}); set it, or let orgmail write the data folder"
            )
            return b""

    def database_url(self, data_dir: Path) -> str:
        raw = self.text("ORGMAIL_DATABASE_URL")
        if raw is None:
            return async_database_url(f"sqlite:///{data_dir / 'orgmail.db'}")
        url = async_database_url(raw)  # our own driver names are accepted too: they are what we pick
        problem = _database_url_problem(url)
        if problem is not None:
            self.problems.append(
                f"ORGMAIL_DATABASE_URL={printable_url(raw)!r}: {problem}; expected {_DATABASE_URLS_ACCEPTED}"
            )
        return url

    def relay_url(self) -> str:
        raw = self.text("ORGMAIL_RELAY_URL") or "outbox"
        if raw.lower() == "outbox":
            return raw
        # Imported here: the relay module reads Settings from this one.
        from orgmail.mail.relay import smtp_target_from_url

        shown = printable_url(raw)
        try:
            port = urlsplit(raw).port
        except ValueError:
            port = 0
        if port == 0:
            self.problems.append(
                f"ORGMAIL_RELAY_URL={shown!r}: the port is not a number from 1 to 65535; "
                "expected outbox, smtp://, smtp+starttls:// or smtps:// with HOST[:PORT]"
            )
            return raw
        try:
            smtp_target_from_url(raw)
        except ValueError as exc:
            message = str(exc).replace(repr(raw), repr(shown)).replace(raw, shown)
            password = urlsplit(raw).password
            if password and password in message:  # the validator printed it some other way
                message = f"unsupported relay URL {shown!r}: use outbox, smtp://, smtp+starttls:// or smtps://"
            self.problems.append(f"ORGMAIL_RELAY_URL: {message}")
        except OSError as exc:  # ?cafile= names a file that is missing or not PEM (ssl.SSLError)
            self.problems.append(
                f"ORGMAIL_RELAY_URL={shown!r}: cannot load the cafile ({exc.strerror or exc}); "
                "expected ?cafile=/path/to/ca.pem, a PEM file orgmail may read"
            )
        return raw

    def nameservers(self) -> tuple[tuple[str, int], ...]:
        """`127.0.0.1:5353,10.0.0.2,[::1]:5353,::1` -> ((host, port), ...); the port defaults to 53."""
        servers = []
        for item in filter(None, (part.strip() for part in (self.text("ORGMAIL_DNS_NAMESERVERS") or "").split(","))):
            if item.startswith("[") and "]" in item:  # [IPv6]:port
                host, _, rest = item[1:].partition("]")
                port = rest.removeprefix(":") if rest.startswith(":") else rest or "53"
            elif item.count(":") == 1:
                host, _, port = item.partition(":")
            else:  # IPv4 without a port, or a bare IPv6 address
                host, port = item, "53"
            try:
                ipaddress.ip_address(host)
            except ValueError:
                self.problems.append(
                    f"ORGMAIL_DNS_NAMESERVERS={item!r}: {host!r} is not an IP address; expected {_NAMESERVERS_ACCEPTED}"
                )
                continue
            if not port.isdigit() or not 0 < int(port) < 65536:
                self.problems.append(
                    f"ORGMAIL_DNS_NAMESERVERS={item!r}: the port {port!r} is not a number from 1 to 65535; "
                    f"expected {_NAMESERVERS_ACCEPTED}"
                )
                continue
            servers.append((host, int(port)))
        return tuple(servers)

    def domain(self, name: str, *, example: str = "bounces.mail.example.net") -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        candidate = raw.lower().rstrip(".")
        if not _HOST_NAME.fullmatch(candidate) or "." not in candidate:
            self.problems.append(f"{name}={raw!r}: not a domain name; expected e.g. {example}")
            return None
        return candidate

    def dsn_notify(self) -> tuple[str, ...]:
        raw = self.text("ORGMAIL_DSN_NOTIFY")
        if raw is None:
            return ("FAILURE", "DELAY")
        wanted = tuple(dict.fromkeys(part.strip().upper() for part in raw.split(",") if part.strip()))
        valid = wanted == ("NEVER",) or (wanted and set(wanted) <= {"SUCCESS", "FAILURE", "DELAY"})
        if not valid:
            self.problems.append(
                f"ORGMAIL_DSN_NOTIFY={raw!r}: expected NEVER, or any of SUCCESS, FAILURE, DELAY joined by commas "
                "(RFC 3461; default FAILURE,DELAY)"
            )
            return ("FAILURE", "DELAY")
        return wanted

    def listen_address(self, name: str) -> tuple[str, int] | None:
        raw = self.text(name)
        if raw is None:
            return None
        host, _, port = raw.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            self.problems.append(f"{name}={raw!r}: expected HOST:PORT, e.g. 0.0.0.0:25 or 127.0.0.1:2525")
            return None
        return host, int(port)

    def readable_file(self, name: str) -> Path | None:
        raw = self.text(name)
        if raw is None:
            return None
        path = Path(raw).resolve()
        try:
            path.read_bytes()
        except OSError as exc:
            self.problems.append(f"{name}={raw!r}: cannot read it ({exc.strerror or exc}); expected a PEM file")
            return None
        return path

    def mail_owner(self) -> tuple[int, int]:
        uid, gid = _default_mail_owner()
        user, group = self.text("ORGMAIL_MAIL_USER"), self.text("ORGMAIL_MAIL_GROUP")
        if user is not None:
            try:
                account = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
            except KeyError:
                self.problems.append(
                    f"ORGMAIL_MAIL_USER={user!r}: no such user on this system; "
                    "expected a user name or uid from the user database (getent passwd)"
                )
            else:
                uid, gid = account.pw_uid, account.pw_gid
        if group is not None:
            try:
                gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
            except KeyError:
                self.problems.append(
                    f"ORGMAIL_MAIL_GROUP={group!r}: no such group on this system; "
                    "expected a group name or gid from the group database (getent group)"
                )
        return uid, gid


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """The settings from `environ` (default: the process environment); `overrides` are Settings
    fields that win over it (tests). Raises `SettingsError` listing every bad variable."""
    env = _Environment(os.environ if environ is None else environ)
    data_dir = Path(overrides["data_dir"]) if "data_dir" in overrides else env.data_dir()
    dovecot_config = env.text("ORGMAIL_DOVECOT_CONFIG")
    values: dict[str, Any] = dict(
        data_dir=data_dir,
        database_url=env.database_url(data_dir),
        relay_url=env.relay_url(),
        admin_token=env.secret("ORGMAIL_ADMIN_TOKEN"),
        dns_nameservers=env.nameservers(),
        dns_timeout_seconds=env.number("ORGMAIL_DNS_TIMEOUT", 5.0, zero_allowed=False),
        max_recipients=env.integer("ORGMAIL_MAX_RECIPIENTS", 50, minimum=1),
        max_message_bytes=env.integer("ORGMAIL_MAX_MESSAGE_BYTES", 10 * 1024 * 1024, minimum=1),
        max_request_bytes=env.integer("ORGMAIL_MAX_REQUEST_BYTES", 15 * 1024 * 1024, minimum=1),
        relay_timeout_seconds=env.number("ORGMAIL_RELAY_TIMEOUT", 30.0, zero_allowed=False),
        relay_pool_size=env.integer("ORGMAIL_RELAY_POOL_SIZE", 4, minimum=1),
        relay_pipelining=env.boolean("ORGMAIL_RELAY_PIPELINING", True),
        mailbox_retention_days=env.number("ORGMAIL_MAILBOX_RETENTION", 7.0, zero_allowed=True),
        purge_interval_seconds=env.number("ORGMAIL_PURGE_INTERVAL", 3600.0, zero_allowed=False),
        dovecot_config=Path(dovecot_config).resolve() if dovecot_config else None,
        doveadm_path=env.text("ORGMAIL_DOVEADM") or "doveadm",
        rate_limit_per_second=env.number("ORGMAIL_RATE_LIMIT", 1000.0, zero_allowed=True),
        rate_limit_burst=env.integer("ORGMAIL_RATE_LIMIT_BURST", 2000, minimum=1),
        bounce_domain=env.domain("ORGMAIL_BOUNCE_DOMAIN"),
        dsn_notify=env.dsn_notify(),
        inbound_listen=env.listen_address("ORGMAIL_INBOUND_LISTEN"),
        tls_cert=env.readable_file("ORGMAIL_TLS_CERT"),
        tls_key=env.readable_file("ORGMAIL_TLS_KEY"),
        webhook_allow_private=env.boolean("ORGMAIL_WEBHOOK_ALLOW_PRIVATE", False),
        webhook_delivery=env.boolean("ORGMAIL_WEBHOOK_DELIVERY", True),
        webhook_nice=env.integer("ORGMAIL_WEBHOOK_NICE", 19, minimum=0, maximum=19),
        submission_listen=env.listen_address("ORGMAIL_SUBMISSION_LISTEN"),
        submission_tls_listen=env.listen_address("ORGMAIL_SUBMISSION_TLS_LISTEN"),
        mail_host=env.domain("ORGMAIL_MAIL_HOST", example="mail.example.net"),
        imap_port=env.integer("ORGMAIL_IMAP_PORT", 993, minimum=1),
    )
    if values["inbound_listen"] is not None and values["bounce_domain"] is None:
        env.problems.append(
            "ORGMAIL_INBOUND_LISTEN: the inbound listener takes reports for the bounce domain; "
            "set ORGMAIL_BOUNCE_DOMAIN too (e.g. bounces.mail.example.net)"
        )
    if (values["tls_cert"] is None) != (values["tls_key"] is None) and not env.problems:
        env.problems.append("ORGMAIL_TLS_CERT and ORGMAIL_TLS_KEY: set both (a certificate and its key) or neither")
    if values["submission_tls_listen"] is not None and values["tls_cert"] is None and not env.problems:
        env.problems.append(
            "ORGMAIL_SUBMISSION_TLS_LISTEN: implicit TLS needs a certificate; set ORGMAIL_TLS_CERT and ORGMAIL_TLS_KEY"
        )
    values["mail_uid"], values["mail_gid"] = env.mail_owner()
    if "secret_key" not in overrides and not env.problems:  # no secret file written for a run that stops here
        values["secret_key"] = env.secret_key(data_dir)
    if env.problems:
        raise SettingsError(env.problems)
    values.update(overrides)
    return Settings(**values)
