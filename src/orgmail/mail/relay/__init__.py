"""Relays: where a signed message goes next. The `Relay` protocol, its result and its two failures;
`OutboxRelay` (`outbox.py`, the embedded default: `.eml` files in the data folder) and `SmtpRelay`
(`smtp.py`, a smarthost over a pool of persistent connections, with PIPELINING from `pipelining.py`).

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


class RelayTemporaryFailure(Exception):
    """The relay did not take the message (down, 4xx, connection lost, timeout): safe to retry."""


class RelayOutcomeUnknown(Exception):
    """The whole message was sent but no reply came (connection lost, or the deadline passed): the
    relay may have queued it (RFC 1047), so a retry may deliver it twice."""


class Relay(Protocol):
    async def send(self, *, sender: str, recipients: list[str], message: bytes) -> RelayResult: ...

    async def close(self) -> None: ...


# The implementations import the values above, so they are imported after them.
from orgmail.mail.relay.outbox import OutboxRelay  # noqa: E402
from orgmail.mail.relay.smtp import SmtpRelay, SmtpTarget  # noqa: E402
from orgmail.mail.relay.url import smtp_target_from_url  # noqa: E402

__all__ = [
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
