"""A private Postfix: Debian's binaries with a configuration, queue and data folder of its own under a
temporary folder, started with `postfix -c DIR start` beside any system Postfix (which it never reads
nor touches: `postfix -c` run as root needs no `alternate_config_directories` entry in
/etc/postfix/main.cf; that list binds only the set-gid commands run by other users).

It listens on loopback only, routes every domain it knows through `transport_maps` to loopback servers,
sends everything else to the `error` transport, and never looks anything up in DNS, so nothing it does
leaves the machine. Its timers are seconds, so that a delay warning and a give-up at the end of the
queue lifetime happen within a test.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Queue timers in seconds. Postfix takes unit suffixes; the defaults are hours and days.
TEST_TIMERS: dict[str, str] = {
    "queue_run_delay": "1s",  # how often the deferred queue is scanned
    "minimal_backoff_time": "1s",
    "maximal_backoff_time": "2s",
    "maximal_queue_lifetime": "10s",  # then a temporary failure becomes a bounce (Action: failed, 4.x.x)
    "bounce_queue_lifetime": "10s",  # the same for Postfix's own bounces
    "delay_warning_time": "2s",  # the DELAY DSN (Postfix sends none unless this is set)
    "transport_retry_time": "1s",  # a transport that failed is tried again this soon
    "smtp_connect_timeout": "5s",
    "smtp_helo_timeout": "10s",
    "smtp_data_done_timeout": "10s",
}

# Postfix's built-in delay notice counts in hours and days, which are 0 here (it logs a warning for
# each notice): the same text in seconds. Only the human-readable part of the DSN changes.
DELAY_TEMPLATE = """\
delay_template = <<EOF
Charset: us-ascii
From: Mail Delivery System <MAILER-DAEMON>
Subject: Delayed Mail (still being retried)
Postmaster-Subject: Postmaster Warning: Delayed Mail

This is the mail system at host $myhostname.

Your message could not be delivered for more than $delay_warning_time_seconds second(s).
It will be retried until it is $maximal_queue_lifetime_seconds second(s) old.
EOF
"""

# The bounce daemon's log line for each notification it queues: the original's queue id, the kind
# (non-delivery, delay, or delivery status, i.e. success) and the notification's own queue id.
_NOTIFICATION = re.compile(
    r"postfix/bounce\[\d+\]: (?P<original>\w+): sender (?P<kind>non-delivery|delay|delivery status) "
    r"notification: (?P<queue_id>\w+)"
)


@dataclass(frozen=True)
class Notification:
    """A DSN Postfix wrote (to the original's envelope sender), as its log tells it."""

    original: str  # the queue id of the message it is about
    kind: str  # "non-delivery", "delay" or "delivery status" (a success notice: relayed/delivered)
    queue_id: str  # its own queue id


@dataclass
class PrivatePostfix:
    """One private instance. `transports` maps a domain to its next hop (`smtp:[127.0.0.1]:2525`);
    `relay_domains` are the domains it takes from anyone (the bounce domain, as its MX), limited to
    the addresses `relay_recipients` (POSIX regular expressions) match. The SMTP server on `port`
    relays for `mynetworks` (loopback: orgmail); the one on `mx_port` treats every client as the
    Internet (no relaying for loopback), like an MX."""

    binary: str
    root: Path
    port: int
    mx_port: int
    hostname: str
    transports: Mapping[str, str]
    relay_domains: Sequence[str] = ()
    relay_recipients: Sequence[str] = ()
    timers: Mapping[str, str] = field(default_factory=lambda: dict(TEST_TIMERS))
    extra_main_cf: str = ""  # appended last (so it wins): e.g. what `orgmail postfix-config` wrote

    @property
    def config_directory(self) -> Path:
        return self.root / "etc"

    @property
    def queue_directory(self) -> Path:
        return self.root / "queue"

    @property
    def data_directory(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postfix.log"

    def main_cf(self) -> str:
        etc = self.config_directory
        lines = [
            "compatibility_level = 3.6",
            f"queue_directory = {self.queue_directory}",
            f"data_directory = {self.data_directory}",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            f"myhostname = {self.hostname}",
            "myorigin = $myhostname",
            "mydestination =",  # no local delivery at all
            "alias_maps =",
            "alias_database =",
            "local_transport = error:5.1.1 no local delivery here",
            "default_transport = error:5.4.4 no route to this domain in the test",  # never the Internet
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
            f"relay_domains = {', '.join(self.relay_domains)}" if self.relay_domains else "",
            f"relay_recipient_maps = regexp:{etc / 'relay_recipients'}" if self.relay_recipients else "",
            f"transport_maps = texthash:{etc / 'transport'}" if self.transports else "",
            "smtpd_discard_ehlo_keywords =",  # the default, said out loud: DSN stays offered
            "message_size_limit = 20971520",  # above ORGMAIL_MAX_MESSAGE_BYTES (10 MiB; Postfix's default is less)
            # No DNS: next hops are [address]:port, and any name goes to getaddrinfo (/etc/hosts).
            "smtp_dns_support_level = disabled",
            "disable_dns_lookups = yes",
            "smtp_host_lookup = native",
            "smtpd_peername_lookup = no",
            "smtp_tls_security_level = none",
            "biff = no",
            f"bounce_template_file = {etc / 'bounce.cf'}",
            f"maillog_file = {self.log_path}",
            f"maillog_file_prefixes = {self.root}",
            *(f"{name} = {value}" for name, value in self.timers.items()),
        ]
        return "\n".join(line for line in lines if line) + "\n" + self.extra_main_cf

    def master_cf(self) -> str:
        # Nothing chrooted: a chroot would need copies of /etc files inside the private queue folder.
        services = [
            f"127.0.0.1:{self.port} inet n - n - - smtpd",
            f"127.0.0.1:{self.mx_port} inet n - n - - smtpd",
            "  -o syslog_name=postfix/mx",
            "  -o smtpd_relay_restrictions=reject_unauth_destination",
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "lmtp unix - - n - - lmtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        return "\n".join(services) + "\n"

    def write_config(self) -> None:
        for folder in (self.config_directory, self.queue_directory, self.data_directory):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # the postfix user opens its log and queue through this folder
        os.chown(self.data_directory, *_postfix_ids())  # the queue folder stays root's: `postfix check` wants it so
        (self.config_directory / "main.cf").write_text(self.main_cf())
        (self.config_directory / "master.cf").write_text(self.master_cf())
        (self.config_directory / "transport").write_text(
            "".join(f"{domain} {nexthop}\n" for domain, nexthop in self.transports.items())
        )
        (self.config_directory / "bounce.cf").write_text(DELAY_TEMPLATE)
        (self.config_directory / "relay_recipients").write_text(
            "".join(f"/{pattern}/ OK\n" for pattern in self.relay_recipients)
        )

    def start(self) -> None:
        """Write the configuration, start the master and wait until the SMTP server answers.
        (`postfix start` first runs the checks of `postfix check`, which create the queue's folders
        with the owners and modes Postfix wants; a separate `check` would cost 2 s more.)"""
        self.write_config()
        self.command("start")
        deadline = time.monotonic() + 15
        while not self._answers():
            if time.monotonic() > deadline:
                raise AssertionError(f"the private Postfix did not answer on port {self.port}: {self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """`postfix stop`, then wait for the master to be gone (kill it, by its pid, if it lingers)."""
        pid = self.master_pid()
        if pid is None:
            return
        subprocess.run(self._argv("stop"), capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)

    def master_pid(self) -> int | None:
        try:
            pid = int((self.queue_directory / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def command(self, *args: str) -> str:
        """`postfix -c DIR <args>`; its output, or an AssertionError with the log."""
        done = subprocess.run(self._argv(*args), capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise AssertionError(f"postfix {' '.join(args)}: {done.stdout}{done.stderr}\n{self.log_tail()}")
        return done.stdout + done.stderr

    def queue_listing(self) -> str:
        """What `postqueue -p` shows: the messages still queued (and why, for deferred ones)."""
        postqueue = str(Path(self.binary).with_name("postqueue"))
        done = subprocess.run(
            [postqueue, "-c", str(self.config_directory), "-p"], capture_output=True, text=True, timeout=30
        )
        return done.stdout + done.stderr

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def notifications(self) -> list[Notification]:
        return [Notification(**match.groupdict()) for match in _NOTIFICATION.finditer(self.log())]

    def delivery_lines(self, queue_id: str) -> list[str]:
        """The smtp client's log lines for one queued message (`status=sent (…)` once delivered)."""
        return [line for line in self.log().splitlines() if f"]: {queue_id}: to=<" in line]

    def _argv(self, *args: str) -> list[str]:
        return [self.binary, "-c", str(self.config_directory), *args]

    def _answers(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(1)
            try:
                probe.connect(("127.0.0.1", self.port))
                return probe.recv(3) == b"220"
            except OSError:
                return False


def _postfix_ids() -> tuple[int, int]:
    account = pwd.getpwnam("postfix")
    return account.pw_uid, account.pw_gid


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie does not: the master is nobody's child once daemonized)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
