"""`orgmail check`: every part the configuration names, tried for real, one line each.

What `postfix check` and `doveconf -n` are for their users: run it after changing ORGMAIL_* and
before (re)starting. It changes nothing but probe files it writes and removes (the database is not
migrated), and every check has its own short time limit, so a part that never answers costs seconds.
It also owns the words for an unreachable database, which the other commands print too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import shutil
import socket
import sqlite3
import ssl
import tempfile
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import aiosmtplib
import asyncpg
import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from orgmail.config import Settings, printable_database_url, printable_url
from orgmail.db.session import MIGRATIONS_DIR, create_engine, is_connection_failure
from orgmail.mail.dovecot import folder_blocking_mail_user
from orgmail.mail.relay import SmtpTarget, smtp_target_from_url

CHECK_SECONDS_MAX = 10.0  # no check waits longer, whatever the configured timeouts
DATABASE_SECONDS = 10.0  # the engine's own connect timeout (5 s) usually answers first
DNS_ATTEMPT_SECONDS = 2.0  # one try against one nameserver, as the app's resolver does
# IANA's domain, published for as long as DNS has existed: a working resolver answers for it, and
# a private nameserver that does not serve it answers NXDOMAIN, which is an answer too.
DNS_PROBE_NAME = "example.com."
SMTP_EXTENSIONS_REPORTED = ("STARTTLS", "AUTH", "PIPELINING", "DSN", "SIZE")

Status = Literal["ok", "warn", "fail"]
ExceptionT = TypeVar("ExceptionT", bound=BaseException)


@dataclass(frozen=True)
class CheckResult:
    part: str  # database, relay, dns, dovecot, data
    status: Status
    detail: str

    @property
    def line(self) -> str:
        label = "FAIL" if self.status == "fail" else self.status
        return f"{label:<5} {self.part:<9} {self.detail}"


async def check_all(settings: Settings) -> list[CheckResult]:
    """Every check, at the same time; the results in a fixed order."""
    return list(
        await asyncio.gather(
            _bounded("database", check_database(settings), DATABASE_SECONDS),
            _bounded("relay", check_relay(settings), _relay_seconds(settings)),
            _bounded("dns", check_dns(settings), _dns_seconds(settings)),
            _bounded("dovecot", asyncio.to_thread(check_dovecot, settings), CHECK_SECONDS_MAX),
            _bounded("data", asyncio.to_thread(check_data_folder, settings), CHECK_SECONDS_MAX),
        )
    )


async def _bounded(part: str, check: Awaitable[CheckResult], seconds: float) -> CheckResult:
    """A last guard: a check that overruns its limit, or fails in a way nobody foresaw, is a line."""
    try:
        async with asyncio.timeout(seconds + 1):
            return await check
    except TimeoutError:
        return CheckResult(part, "fail", f"no answer within {seconds:g} s")
    except Exception as exc:
        return CheckResult(part, "fail", f"the check itself failed: {type(exc).__name__}: {_first_line(exc)}")


# --- database ------------------------------------------------------------------------------------
async def check_database(settings: Settings) -> CheckResult:
    """Reachable, and migrated to the newest revision this orgmail knows."""
    where = printable_database_url(settings.database_url)
    path = settings.sqlite_path
    if path is not None and not path.exists():  # connecting would create it: report instead
        problem = _unwritable(path.parent)
        if problem is not None:
            return CheckResult("database", "fail", f"{where} cannot be created: {path.parent} {problem}")
        return CheckResult("database", "warn", f"{where} does not exist yet; `orgmail migrate` creates it")
    try:
        current = await reach_database(settings)
    except Exception as exc:
        return CheckResult("database", "fail", f"{where} {database_unreachable_reason(exc) or _first_line(exc)}")
    return _migration_state(where, current)


async def reach_database(settings: Settings, *, create: bool = False) -> set[str]:
    """Connect, within DATABASE_SECONDS, and answer the Alembic revisions the database is at.
    `create`: a SQLite file that does not exist yet is created (as migrating would)."""
    if settings.sqlite_path is not None:
        # The standard library first: a failed aiosqlite connect leaves its thread behind, which
        # prints a traceback of its own once the event loop is closed.
        uri = f"{settings.sqlite_path.as_uri()}?mode={'rwc' if create else 'rw'}"
        sqlite3.connect(uri, uri=True).close()
    engine = create_engine(settings.database_url)
    try:
        async with asyncio.timeout(DATABASE_SECONDS):
            async with engine.connect() as connection:
                return await connection.run_sync(_current_revisions)
    finally:
        await engine.dispose()


def _current_revisions(connection) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    return set(MigrationContext.configure(connection).get_current_heads())


def _migration_state(where: str, current: set[str]) -> CheckResult:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    heads = set(script.get_heads())
    known = {revision.revision for revision in script.walk_revisions()}
    newest = ", ".join(sorted(heads))
    if current == heads:
        return CheckResult("database", "ok", f"{where} reachable, migrated to {newest}")
    if not current:
        return CheckResult(
            "database", "warn", f"{where} reachable, not migrated (newest is {newest}): run `orgmail migrate`"
        )
    at = ", ".join(sorted(current))
    if current <= known:
        return CheckResult(
            "database", "warn", f"{where} reachable, at {at} (newest is {newest}): run `orgmail migrate`"
        )
    return CheckResult(
        "database", "fail", f"{where} reachable, at {at}, which this orgmail does not know (its newest is {newest})"
    )


def database_unreachable_reason(exc: BaseException) -> str | None:
    """Why the database cannot be reached, in a few words ("connection refused"); None when `exc`
    is something else (a statement the database refused, a bug)."""
    chain = list(_causes(exc))
    reason = _network_reason(chain)
    if reason is not None:
        return reason
    for cause in chain:
        if isinstance(cause, asyncpg.PostgresError):
            sqlstate = cause.sqlstate or ""
            if sqlstate.startswith("28"):  # invalid authorization: no such role, wrong password, pg_hba
                return f"login refused: {cause}"
            # connection exception, no such database, too many connections, shutting down
            if sqlstate[:2] in ("08", "3D", "53", "57"):
                return str(cause)
        if isinstance(cause, sqlite3.Error) and any(
            words in str(cause) for words in ("unable to open", "is locked", "not a database", "disk I/O")
        ):
            return str(cause)
    if is_connection_failure(exc):
        return _first_line(chain[-1])
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it wraps: SQLAlchemy's `.orig`, then each `__cause__` (or context)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            current = orig
        elif current.__cause__ is not None:
            current = current.__cause__
        else:
            current = None if current.__suppress_context__ else current.__context__


def _network_reason(chain: list[BaseException], seconds: float | None = None) -> str | None:
    """A failure to connect anywhere (database, relay), from the most telling cause in the chain."""
    if (unresolved := _first(chain, socket.gaierror)) is not None:
        if unresolved.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return "unknown host"
        return f"cannot resolve the host name ({unresolved.strerror})"
    if _first(chain, ConnectionRefusedError) is not None:
        return "connection refused"
    if (unverified := _first(chain, ssl.SSLCertVerificationError)) is not None:
        return f"TLS certificate not verified: {unverified.verify_message} (a private CA: add ?cafile=/path/ca.pem)"
    if (tls := _first(chain, ssl.SSLError)) is not None:
        return f"TLS failed: {_ssl_words(tls)}"
    if _first(chain, TimeoutError) is not None:
        return "timed out" if seconds is None else f"no answer within {seconds:g} s"
    if (other := _first(chain, OSError)) is not None:  # reset, unreachable network, ...
        return other.strerror or _first_line(other)
    return None


def _first(chain: list[BaseException], kind: type[ExceptionT]) -> ExceptionT | None:
    return next((cause for cause in chain if isinstance(cause, kind)), None)


def _ssl_words(exc: ssl.SSLError) -> str:
    """OpenSSL's words without its codes: `[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)`."""
    return re.sub(r"^\[SSL: \w+\] | \(_ssl\.c:\d+\)$", "", exc.strerror or str(exc))


# --- relay ---------------------------------------------------------------------------------------
def _relay_seconds(settings: Settings) -> float:
    return min(settings.relay_timeout_seconds, CHECK_SECONDS_MAX)


async def check_relay(settings: Settings) -> CheckResult:
    """The outbox folder is writable; or the smarthost answers EHLO, with TLS verified when the URL
    asks for it and our credentials accepted when it has some."""
    url = settings.relay_url.strip()
    if url.lower() in ("", "outbox"):
        problem = _outbox_problem(settings.outbox_dir)
        if problem is not None:
            return CheckResult("relay", "fail", f"outbox {settings.outbox_dir} {problem}")
        return CheckResult("relay", "ok", f"outbox {settings.outbox_dir} writable")
    return await _check_smtp(settings, smtp_target_from_url(url), printable_url(url))


async def _check_smtp(settings: Settings, target: SmtpTarget, shown: str) -> CheckResult:
    seconds = _relay_seconds(settings)
    smtp = aiosmtplib.SMTP(
        hostname=target.hostname,
        port=target.port,
        use_tls=target.use_tls,
        start_tls=False,  # by hand below, to tell "not offered" from "not verified"
        tls_context=target.tls_context,
        timeout=seconds,
    )
    notes: list[str] = []
    try:
        async with asyncio.timeout(seconds):
            await smtp.connect()
            await smtp.ehlo()
            if target.start_tls:
                if not smtp.supports_extension("starttls"):
                    return CheckResult(
                        "relay", "fail", f"{shown} does not offer STARTTLS, which smtp+starttls:// needs"
                    )
                await smtp.starttls(tls_context=target.tls_context)
                await smtp.ehlo()
            offered = _ehlo_keywords(smtp, started_tls=target.start_tls)
            server = _server_name(smtp)  # before QUIT, which forgets the EHLO reply
            if target.use_tls or target.start_tls:
                notes.append(_tls_words(smtp, target))
            if target.username is not None:
                if "AUTH" not in offered:
                    return CheckResult("relay", "fail", f"{shown} does not offer AUTH, but the URL has credentials")
                await smtp.login(target.username, target.password or "")
                notes.append("logged in")
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):  # all we asked was answered
                await smtp.quit()
    except aiosmtplib.SMTPAuthenticationError as exc:
        return CheckResult("relay", "fail", f"{shown} refused our credentials: {exc.code} {exc.message}")
    except aiosmtplib.SMTPResponseException as exc:
        return CheckResult("relay", "fail", f"{shown} answered {exc.code} {exc.message}")
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        reason = _network_reason(list(_causes(exc)), seconds) or _first_line(exc)
        return CheckResult("relay", "fail", f"{shown} {reason}")
    finally:
        smtp.close()
    warnings = _relay_warnings(settings, target, offered)
    greeting = f"{shown} ({server}) answered EHLO: {_offer_words(offered)}"
    detail = "; ".join([greeting, *notes, *warnings])
    return CheckResult("relay", "warn" if warnings else "ok", detail)


def _ehlo_keywords(smtp: aiosmtplib.SMTP, *, started_tls: bool) -> dict[str, str]:
    """EHLO's extension lines (RFC 5321 §4.1.1.1: a keyword, then its parameters) -> {KEYWORD: params}."""
    reply = smtp.last_ehlo_response
    lines = reply.message.splitlines()[1:] if reply is not None else []  # the first line is the server's name
    offered = {keyword.upper(): params.strip() for keyword, _, params in (line.partition(" ") for line in lines)}
    if started_tls:  # a server stops offering STARTTLS once it is in use (RFC 3207 §4.2)
        offered.setdefault("STARTTLS", "")
    return offered


def _server_name(smtp: aiosmtplib.SMTP) -> str:
    reply = smtp.last_ehlo_response
    return (reply.message.split() or ["?"])[0] if reply is not None else "?"


def _offer_words(offered: dict[str, str]) -> str:
    present = [f"{name} {offered[name]}".strip() for name in SMTP_EXTENSIONS_REPORTED if name in offered]
    absent = [name for name in SMTP_EXTENSIONS_REPORTED if name not in offered]
    words = ", ".join(present) or "no extensions"
    return f"{words} (not {', '.join(absent)})" if absent else words


def _tls_words(smtp: aiosmtplib.SMTP, target: SmtpTarget) -> str:
    ssl_object = smtp.get_transport_info("ssl_object")
    version = ssl_object.version() if ssl_object is not None else "TLS"
    verified = target.tls_context is not None and target.tls_context.verify_mode != ssl.CERT_NONE
    return f"{version}, certificate verified" if verified else f"{version}, certificate NOT verified (verify=false)"


def _relay_warnings(settings: Settings, target: SmtpTarget, offered: dict[str, str]) -> list[str]:
    warnings = []
    if target.tls_context is not None and target.tls_context.verify_mode == ssl.CERT_NONE:
        warnings.append("anyone on the path can pose as the relay: drop verify=false (or use ?cafile=)")
    if target.username is not None and not (target.use_tls or target.start_tls) and not _is_loopback(target.hostname):
        warnings.append("the password goes unencrypted: use smtp+starttls:// or smtps://")
    if settings.bounce_domain is not None and "DSN" not in offered:
        warnings.append(
            "ORGMAIL_BOUNCE_DOMAIN is set but the relay does not offer DSN: no NOTIFY is asked, so which "
            "reports come back is up to the relay (delay and success notices usually do not)"
        )
    size = offered.get("SIZE", "")
    if size.isdigit() and 0 < int(size) < settings.max_message_bytes:
        warnings.append(
            f"the relay takes at most {size} bytes, less than ORGMAIL_MAX_MESSAGE_BYTES={settings.max_message_bytes}"
        )
    return warnings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _outbox_problem(folder: Path) -> str | None:
    try:
        folder.mkdir(parents=True, exist_ok=True)  # the relay would create it with its first message
    except FileExistsError:
        return "is not a folder"
    except OSError as exc:
        return f"cannot be created ({exc.strerror or exc})"
    return _unwritable(folder)


# --- DNS -----------------------------------------------------------------------------------------
def _dns_seconds(settings: Settings) -> float:
    return min(settings.dns_timeout_seconds, CHECK_SECONDS_MAX)


async def check_dns(settings: Settings) -> CheckResult:
    """The nameservers domain verification uses answer (NXDOMAIN is an answer; silence is not)."""
    seconds = _dns_seconds(settings)
    if settings.dns_nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in settings.dns_nameservers]
        where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in settings.dns_nameservers)
    else:
        try:
            resolver = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            return CheckResult(
                "dns", "fail", "no nameservers: /etc/resolv.conf lists none and ORGMAIL_DNS_NAMESERVERS is unset"
            )
        where = f"system resolver ({', '.join(str(server) for server in resolver.nameservers)})"
    resolver.lifetime = seconds
    resolver.timeout = min(DNS_ATTEMPT_SECONDS, seconds)
    resolver.cache = None
    started = time.monotonic()
    try:
        answer = await resolver.resolve(DNS_PROBE_NAME, dns.rdatatype.TXT, raise_on_no_answer=False, search=False)
        outcome = f"{len(answer.rrset) if answer.rrset is not None else 0} TXT record(s)"
    except dns.resolver.NXDOMAIN:
        outcome = "NXDOMAIN"
    except dns.exception.Timeout:
        return CheckResult("dns", "fail", f"{where} did not answer within {seconds:g} s")
    except dns.resolver.NoNameservers as exc:
        return CheckResult("dns", "fail", f"{where} failed or refused: {_nameserver_errors(exc)}")
    except dns.exception.DNSException as exc:
        return CheckResult("dns", "fail", f"{where} {_first_line(exc)}")
    elapsed = (time.monotonic() - started) * 1000
    return CheckResult(
        "dns", "ok", f"{where} answered for {DNS_PROBE_NAME.rstrip('.')} ({outcome}) in {elapsed:.0f} ms"
    )


def _nameserver_errors(exc: dns.resolver.NoNameservers) -> str:
    """dnspython's `errors` keyword: (server, tcp, port, error, answer) per failed attempt."""
    reasons = []
    for attempt in exc.kwargs.get("errors", []):
        error = attempt[3]
        reasons.append(error.strerror if isinstance(error, OSError) and error.strerror else str(error))
    return ", ".join(dict.fromkeys(reasons)) or "no usable answer"


# --- Dovecot and the data folder -----------------------------------------------------------------
def check_dovecot(settings: Settings) -> CheckResult:
    """doveadm is there and the Dovecot config readable, when ORGMAIL_DOVECOT_CONFIG names one (it
    is how deleting a mailbox disconnects its IMAP sessions); unset is a warning."""
    doveadm = shutil.which(settings.doveadm_path)
    if settings.dovecot_config is None:
        found = f"doveadm at {doveadm}" if doveadm else f"doveadm not found ({settings.doveadm_path})"
        return CheckResult(
            "dovecot",
            "warn",
            f"not configured (ORGMAIL_DOVECOT_CONFIG unset): deleting a mailbox leaves its IMAP sessions open; {found}",
        )
    problems = []
    if doveadm is None:
        problems.append(f"doveadm not found: {settings.doveadm_path!r} is not on PATH (ORGMAIL_DOVEADM)")
    try:
        settings.dovecot_config.open("rb").close()
    except OSError as exc:
        problems.append(f"{settings.dovecot_config} is not readable ({exc.strerror or exc}) (ORGMAIL_DOVECOT_CONFIG)")
    if problems:
        return CheckResult("dovecot", "fail", "; ".join(problems))
    return CheckResult("dovecot", "ok", f"doveadm at {doveadm}, config {settings.dovecot_config} readable")


def check_data_folder(settings: Settings) -> CheckResult:
    """The data folder is writable, and Dovecot's mail user can reach the Maildirs under it."""
    problems = []
    unwritable = _unwritable(settings.data_dir)
    if unwritable is not None:
        problems.append(f"{settings.data_dir} {unwritable} (ORGMAIL_DATA_DIR)")
    blocking = folder_blocking_mail_user(settings)
    if blocking is not None:
        problems.append(
            f"the mail user (uid {settings.mail_uid}) cannot enter {blocking}, so Dovecot cannot reach the "
            "Maildirs: move the data folder (ORGMAIL_DATA_DIR) or set ORGMAIL_MAIL_USER"
        )
    if problems:
        return CheckResult("data", "fail", "; ".join(problems))
    return CheckResult(
        "data",
        "ok",
        f"{settings.data_dir} writable; the mail user (uid {settings.mail_uid}) can reach {settings.maildir_root}",
    )


def _unwritable(folder: Path) -> str | None:
    """Why no file can be written in `folder` (tried, not guessed from the mode bits), or None."""
    if not folder.is_dir():
        return "is not a folder" if folder.exists() else "does not exist"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".orgmail-check-"):
            pass
    except OSError as exc:
        return f"is not writable ({exc.strerror or exc})"
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
