"""`smtp_target_from_url`: the smarthost an `ORGMAIL_RELAY_URL` names."""

from __future__ import annotations

import ssl
from urllib.parse import parse_qs, unquote, urlsplit

from orgmail.mail.relay.smtp import SmtpTarget

_SCHEMES = {  # scheme -> (default port, implicit TLS, STARTTLS required)
    "smtp": (25, False, False),
    "smtp+starttls": (587, False, True),
    "smtps": (465, True, False),
}


def smtp_target_from_url(url: str) -> SmtpTarget:
    """`smtp://`, `smtp+starttls://` or `smtps://`, with optional `user:pass@` and, for private
    certificate authorities, `?cafile=/path/ca.pem` (or `?verify=false`, for development only)."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ValueError(f"unsupported relay URL {url!r}: use outbox, smtp://, smtp+starttls:// or smtps://")
    default_port, use_tls, start_tls = _SCHEMES[parts.scheme]
    query = parse_qs(parts.query)
    tls_context = None
    if use_tls or start_tls:
        cafile = query.get("cafile", [None])[0]
        tls_context = ssl.create_default_context(cafile=cafile)
        if query.get("verify", ["true"])[0].lower() in ("false", "0", "no"):
            tls_context.check_hostname = False
            tls_context.verify_mode = ssl.CERT_NONE
    return SmtpTarget(
        hostname=parts.hostname,
        port=parts.port or default_port,
        use_tls=use_tls,
        start_tls=start_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls_context=tls_context,
    )
