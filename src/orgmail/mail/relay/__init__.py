"""Relays: where a signed message goes next. The `Relay` protocol, its result and its two failures;
`OutboxRelay` (`outbox.py`, the embedded default: `.eml` files in the data folder) and `SmtpRelay`
(`smtp.py`, a smarthost over a pool of persistent connections, with PIPELINING from `pipelining.py`).
A send may carry a `DsnRequest` (RFC 3461): the SMTP relay asks for delivery status notifications
with it when the server offers DSN, and sends plain commands otherwise.

Results are values: a recipient refused with a 5xx is data in `RelayResult.rejected`, and a message
refused as a whole (5xx to MAIL FROM or DATA) is a result with nobody accepted. What leaves the outcome
open is an exception, one of two:
- `RelayTemporaryFailure`: the relay has not taken the message (down, a 4xx, a connection lost or a
  timeout before the whole message was sent). An SMTP server takes responsibility for a message with
  its reply to the end of DATA (RFC 5321 §4.1.1.4), and a 4xx for one recipient aborts the whole
  transaction (RSET), so a retry can never deliver to anyone twice.
- `RelayOutcomeUnknown`: the whole message was sent, then the connection was lost or the deadline
  passed before that reply (RFC 1047): the relay may have queued it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from orgmail.config import Settings


@dataclass(frozen=True)
class RelayResult:
    accepted: list[str]
    rejected: dict[str, tuple[int, str]] = field(default_factory=dict)  # address -> (5xx code, text)
    response: str = ""  # the relay's last reply: "250 2.0.0 queued as …", or the refusal


@dataclass(frozen=True)
class DsnRequest:
    """What a send asks of the relay's DSN extension (RFC 3461): `ENVID` names the message in every
    notification, `NOTIFY` says when to send one, `RET` how much of the message to return with it."""

    envid: str
    notify: tuple[str, ...] = ("FAILURE", "DELAY")  # or ("NEVER",); "SUCCESS" may join the others
    ret: str = "HDRS"  # or "FULL"

    def __post_init__(self) -> None:
        # Checked here, not left to the relay: it would refuse a bad one as a 5xx to MAIL or RCPT,
        # which reads as a refused message rather than our mistake.
        notify = set(self.notify)
        if not (self.notify == ("NEVER",) or (notify and notify <= _NOTIFY and len(notify) == len(self.notify))):
            raise ValueError(f"NOTIFY must be NEVER alone or some of SUCCESS, FAILURE, DELAY: {self.notify!r}")
        if self.ret not in ("FULL", "HDRS"):
            raise ValueError(f"RET must be FULL or HDRS: {self.ret!r}")
        if not self.envid:
            raise ValueError("ENVID must not be empty")


_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})


class RelayTemporaryFailure(Exception):
    """The relay did not take the message (down, 4xx, connection lost, timeout): safe to retry."""


class RelayOutcomeUnknown(Exception):
    """The whole message was sent but no reply came (connection lost, or the deadline passed): the
    relay may have queued it (RFC 1047), so a retry may deliver it twice."""


class Relay(Protocol):
    async def send(
        self, *, sender: str, recipients: list[str], message: bytes, dsn: DsnRequest | None = None
    ) -> RelayResult: ...

    async def close(self) -> None: ...


# The implementations import the values above, so they are imported after them.
from orgmail.mail.relay.outbox import OutboxRelay  # noqa: E402
from orgmail.mail.relay.smtp import SmtpRelay, SmtpTarget  # noqa: E402
from orgmail.mail.relay.url import smtp_target_from_url  # noqa: E402

__all__ = [
    "DsnRequest",
    "OutboxRelay",
    "Relay",
    "RelayOutcomeUnknown",
    "RelayResult",
    "RelayTemporaryFailure",
    "SmtpRelay",
    "SmtpTarget",
    "relay_from_url",
    "smtp_target_from_url",
]


def relay_from_url(settings: Settings) -> Relay:
    """The relay `ORGMAIL_RELAY_URL` names: `outbox` (the default) or an SMTP smarthost."""
    url = settings.relay_url.strip()
    if url.lower() in ("", "outbox"):
        return OutboxRelay(settings.outbox_dir)
    return SmtpRelay(
        smtp_target_from_url(url),
        pool_size=settings.relay_pool_size,
        timeout=settings.relay_timeout_seconds,
        pipelining=settings.relay_pipelining,
    )
