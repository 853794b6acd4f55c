"""GET /.well-known/autoconfig/mail/config-v1.1.xml and /mail/config-v1.1.xml: Thunderbird autoconfig.

Anonymous, as mail clients fetch it; a domain no org has verified is 404 and nothing else.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orgmail.api.deps import AppSettings, DbSession
from orgmail.core import client_settings

router = APIRouter(tags=["autoconfig"], include_in_schema=False)


# The first form for https://<domain>/.well-known/…, the second for https://autoconfig.<domain>/mail/….
@router.get(client_settings.AUTOCONFIG_PATH)
@router.get("/mail/config-v1.1.xml")
async def config_v1_1(request: Request, session: DbSession, settings: AppSettings, emailaddress: str = "") -> Response:
    xml = await client_settings.autoconfig_for(
        session, settings, email_address=emailaddress, request_host=request.url.hostname or ""
    )
    return Response(xml, media_type="application/xml", headers={"Cache-Control": "max-age=3600"})
