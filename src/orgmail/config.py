"""Settings, read once from ORGMAIL_* variables at start and passed down.

The embedded defaults (SQLite and Maildir under the data folder, the local outbox as relay) make
`orgmail serve` work with no configuration at all.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def _parse_nameservers(value: str) -> tuple[tuple[str, int], ...]:
    """`127.0.0.1:5353,10.0.0.2,[::1]:5353,::1` -> ((host, port), ...); the port defaults to 53."""
    servers = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        if item.startswith("[") and "]" in item:  # [IPv6]:port
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        elif item.count(":") == 1:
            host, _, port = item.partition(":")
        else:  # IPv4 without a port, or a bare IPv6 address
            host, port = item, ""
        servers.append((host, int(port) if port else 53))
    return tuple(servers)


def _mail_owner(user: str | None, group: str | None) -> tuple[int, int]:
    """Who owns the mail files; Dovecot runs its mail processes as this uid/gid.

    Default: `nobody` (and its group, `nogroup` on Debian) when orgmail runs as root, else the user
    orgmail runs as, so that an unprivileged `make run` and a root Dovecot agree on the owner.
    """
    if user is None:
        account = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    else:
        account = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    if group is None:
        return account.pw_uid, account.pw_gid
    return account.pw_uid, int(group) if group.isdigit() else grp.getgrnam(group).gr_gid


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
    mailbox_retention_days: float = 7.0
    purge_interval_seconds: float = 3600.0
    mail_uid: int = field(default_factory=lambda: _mail_owner(None, None)[0])
    mail_gid: int = field(default_factory=lambda: _mail_owner(None, None)[1])
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


def load_settings(environ: dict[str, str] | None = None, **overrides) -> Settings:
    env = dict(os.environ if environ is None else environ)
    data_dir = Path(env.get("ORGMAIL_DATA_DIR", "./data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    database_url = async_database_url(env.get("ORGMAIL_DATABASE_URL") or f"sqlite:///{data_dir / 'orgmail.db'}")
    secret = env.get("ORGMAIL_SECRET_KEY")
    mail_uid, mail_gid = _mail_owner(env.get("ORGMAIL_MAIL_USER"), env.get("ORGMAIL_MAIL_GROUP"))
    dovecot_config = env.get("ORGMAIL_DOVECOT_CONFIG")
    values = dict(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=secret.encode() if secret else _load_or_create_secret(data_dir),
        relay_url=env.get("ORGMAIL_RELAY_URL", "outbox"),
        admin_token=env.get("ORGMAIL_ADMIN_TOKEN") or None,
        dns_nameservers=_parse_nameservers(env.get("ORGMAIL_DNS_NAMESERVERS", "")),
        dns_timeout_seconds=float(env.get("ORGMAIL_DNS_TIMEOUT", 5)),
        max_recipients=int(env.get("ORGMAIL_MAX_RECIPIENTS", 50)),
        max_message_bytes=int(env.get("ORGMAIL_MAX_MESSAGE_BYTES", 10 * 1024 * 1024)),
        max_request_bytes=int(env.get("ORGMAIL_MAX_REQUEST_BYTES", 15 * 1024 * 1024)),
        relay_timeout_seconds=float(env.get("ORGMAIL_RELAY_TIMEOUT", 30)),
        relay_pool_size=int(env.get("ORGMAIL_RELAY_POOL_SIZE", 4)),
        relay_pipelining=env.get("ORGMAIL_RELAY_PIPELINING", "1").strip().lower() not in ("0", "false", "no", "off"),
        mailbox_retention_days=float(env.get("ORGMAIL_MAILBOX_RETENTION", 7)),
        purge_interval_seconds=float(env.get("ORGMAIL_PURGE_INTERVAL", 3600)),
        mail_uid=mail_uid,
        mail_gid=mail_gid,
        dovecot_config=Path(dovecot_config).resolve() if dovecot_config else None,
        doveadm_path=env.get("ORGMAIL_DOVEADM", "doveadm"),
        rate_limit_per_second=float(env.get("ORGMAIL_RATE_LIMIT", 1000)),
        rate_limit_burst=int(env.get("ORGMAIL_RATE_LIMIT_BURST", 2000)),
    )
    values.update(overrides)
    return Settings(**values)
