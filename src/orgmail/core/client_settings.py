"""What a member's mail client connects to: IMAP, SMTP submission, and the Thunderbird autoconfig document.

Built from the configuration only (DESIGN.md §10); nothing here reveals more than a host name and ports.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.config import Settings
from orgmail.db.tables import Domain
from orgmail.errors import NotFound

Security = Literal["tls", "starttls"]
AUTOCONFIG_PATH = "/.well-known/autoconfig/mail/config-v1.1.xml"


@dataclass(frozen=True)
class MailServer:
    host: str
    port: int
    security: Security  # "tls": implicit TLS from the first byte (RFC 8314); "starttls": upgraded in plain text


@dataclass(frozen=True)
class ClientSettings:
    username: str  # the full address, for IMAP and submission alike
    imap: MailServer
    submission: list[MailServer]  # implicit TLS first: RFC 8314 §3.3 prefers it over STARTTLS
    autoconfig_url: str


def mail_servers(settings: Settings, *, request_host: str) -> tuple[MailServer, list[MailServer]]:
    """The IMAP server and each submission listener that is on, as a client reaches them."""
    host = settings.mail_host or request_host
    imap = MailServer(host=host, port=settings.imap_port, security="tls")
    submission = []
    if settings.submission_tls_listen is not None:
        submission.append(MailServer(host=host, port=settings.submission_tls_listen[1], security="tls"))
    if settings.submission_listen is not None:
        submission.append(MailServer(host=host, port=settings.submission_listen[1], security="starttls"))
    return imap, submission


def client_settings(settings: Settings, *, address: str, request_host: str, base_url: str) -> ClientSettings:
    imap, submission = mail_servers(settings, request_host=request_host)
    autoconfig_url = f"{base_url.rstrip('/')}{AUTOCONFIG_PATH}?{urlencode({'emailaddress': address})}"
    return ClientSettings(username=address, imap=imap, submission=submission, autoconfig_url=autoconfig_url)


async def is_served_domain(session: AsyncSession, *, name: str) -> bool:
    """Whether some org has verified `name`. Across orgs on purpose: autoconfig is fetched anonymously."""
    found = await session.scalar(
        select(Domain.id).where(Domain.name == name.lower(), Domain.status == "verified").limit(1)
    )
    return found is not None


def domain_of(address: str) -> str | None:
    """The domain of an address a client sent, or None when it is not one we could serve."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain or len(domain) > 253:
        return None
    return domain.lower().rstrip(".")


async def autoconfig_for(session: AsyncSession, settings: Settings, *, email_address: str, request_host: str) -> bytes:
    """The autoconfig document for an address on a served domain; anything else is 404, saying nothing more."""
    domain = domain_of(email_address)
    if domain is None or not await is_served_domain(session, name=domain):
        raise NotFound()
    return autoconfig_xml(settings, domain=domain, request_host=request_host)


def autoconfig_xml(settings: Settings, *, domain: str, request_host: str) -> bytes:
    """Mozilla's clientConfig v1.1 (the ISPDB format Thunderbird fetches), for one served domain."""
    imap, submission = mail_servers(settings, request_host=request_host)
    config = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(config, "emailProvider", id=domain)
    ET.SubElement(provider, "domain").text = domain
    ET.SubElement(provider, "displayName").text = domain
    ET.SubElement(provider, "displayShortName").text = domain
    _server(ET.SubElement(provider, "incomingServer", type="imap"), imap)
    for server in submission:
        _server(ET.SubElement(provider, "outgoingServer", type="smtp"), server)
    return ET.tostring(config, encoding="utf-8", xml_declaration=True)


def _server(element: ET.Element, server: MailServer) -> None:
    ET.SubElement(element, "hostname").text = server.host
    ET.SubElement(element, "port").text = str(server.port)
    ET.SubElement(element, "socketType").text = "SSL" if server.security == "tls" else "STARTTLS"
    ET.SubElement(element, "username").text = "%EMAILADDRESS%"  # Thunderbird substitutes the address typed
    ET.SubElement(element, "authentication").text = "password-cleartext"  # plain, inside TLS
