"""create_app(): routers, error handlers, and the lifespan that owns the database and adapters."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orgmail import __version__
from orgmail.api import admin, autoconfig, domains, mailboxes, members, messages, suppressions, webhooks
from orgmail.api.deps import ApiKeyCache
from orgmail.api.errors import install_error_handlers
from orgmail.api.limits import BodySizeLimit
from orgmail.api.ratelimit import RateLimit
from orgmail.config import Settings, load_settings
from orgmail.core import webhook_dispatcher
from orgmail.core.feedback import InboundReports
from orgmail.core.mailboxes import tidy_periodically
from orgmail.core.sending import Limits, ReturnPath, SendPipeline, settle_unfinished_sends
from orgmail.core.sending.submission import SubmissionIntake
from orgmail.db import postfix_copy
from orgmail.db.sendlog import open_send_log
from orgmail.db.session import (
    CONNECTION_FAILURE_TYPES,
    create_engine,
    create_session_factory,
    is_connection_failure,
    ping,
)
from orgmail.mail import inbound, submission
from orgmail.mail.dkim import KeyVault
from orgmail.mail.dns import DnsTxtResolver
from orgmail.mail.dovecot import DoveadmSessions
from orgmail.mail.relay import relay_from_url
from orgmail.mail.store import MaildirStore

log = logging.getLogger("orgmail")

# The web console (web/console), built into the package by `make web` / `make run`; absent in a bare checkout.
CONSOLE_DIR = Path(__file__).parent / "console"


def _metrics(app: FastAPI) -> None:
    registry = CollectorRegistry()
    requests = Counter("orgmail_http_requests", "HTTP requests answered", ["path", "status"], registry=registry)
    latency = Histogram(
        "orgmail_http_request_seconds",
        "HTTP request latency",
        ["path"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    app.state.metrics_registry = registry
    app.add_middleware(_ObserveRequests, requests=requests, latency=latency)


class _ObserveRequests:
    """Counts and times every request, as plain ASGI: Starlette's BaseHTTPMiddleware (the
    `@app.middleware` decorator) runs each request in an extra task with memory streams, which
    cost more than a whole signed send's DKIM signature."""

    def __init__(self, app: ASGIApp, *, requests: Counter, latency: Histogram):
        self.app, self.requests, self.latency = app, requests, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(path, str(status)).inc()
            self.latency.labels(path).observe(time.perf_counter() - started)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI documents 422 for validation; we answer 400 `invalid_request`, so say that instead."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title="orgmail",
        version=__version__,
        routes=app.routes,
        description="Transactional email and mailbox provisioning behind one JSON API.",
    )
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            if "422" in responses and "all_recipients_suppressed" not in responses["422"].get("description", ""):
                del responses["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    schema["security"] = [{"bearer": []}]
    app.openapi_schema = schema
    return schema


def _console(app: FastAPI, directory: Path) -> None:
    """Serve the built console at /console/ and send / there; without a build, / goes to the API docs."""
    built = (directory / "index.html").is_file()
    if built:
        app.mount("/console", StaticFiles(directory=directory, html=True), name="console")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/" if built else "/docs")


async def _settle_unfinished_sends(app: FastAPI, settings: Settings) -> None:
    """Rows a previous run left `queued` (DESIGN.md §5); a database that is not up yet is not fatal."""
    try:
        count = await settle_unfinished_sends(
            app.state.send_log, older_than=timedelta(seconds=settings.relay_timeout_seconds)
        )
    except Exception as exc:  # the service must start (and answer 503) even with the database down
        log.warning("could not settle unfinished sends at start: %s", exc.__class__.__name__)
        return
    if count:
        log.warning("%d message(s) were cut off mid-relay and are now failed/outcome_unknown", count)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = create_engine(settings.database_url)
        app.state.engine = engine
        app.state.session_factory = create_session_factory(engine)
        app.state.relay = relay_from_url(settings)
        app.state.send_log = await open_send_log(settings.database_url, engine)
        app.state.send_pipeline = SendPipeline(
            relay=app.state.relay,
            vault=app.state.vault,
            log=app.state.send_log,
            limits=Limits(
                max_recipients=settings.max_recipients,
                max_message_bytes=settings.max_message_bytes,
                relay_timeout_seconds=settings.relay_timeout_seconds,
            ),
            return_path=ReturnPath(settings.bounce_domain, settings.dsn_notify) if settings.bounce_domain else None,
        )
        await _settle_unfinished_sends(app, settings)
        await postfix_copy.refresh(settings.database_url)  # a change whose refresh a crash cut off
        app.state.webhook_dispatcher = (
            await webhook_dispatcher.start(app.state, event_data=webhooks.EVENT_DATA)
            if settings.webhook_delivery
            else None  # ORGMAIL_WEBHOOK_DELIVERY=0: `orgmail webhook deliver` runs elsewhere
        )
        # Everything loaded so far (modules, routes, SQLAlchemy and Pydantic machinery) lives as long
        # as the process: out of the collector's sight, a full collection scans only what requests
        # left behind. Measured: gen-2 pauses of 80-100 ms (the p99 of a loaded worker) became ~12 ms.
        gc.collect()  # garbage of the start-up itself is not worth keeping forever
        gc.freeze()
        purger = asyncio.create_task(
            tidy_periodically(
                app.state.session_factory, store=app.state.store, interval_seconds=settings.purge_interval_seconds
            )
        )
        listener = None
        if settings.inbound_listen is not None and settings.bounce_domain is not None:
            listener = await inbound.start(
                settings,
                reports=InboundReports(engine, bounce_domain=settings.bounce_domain),
                registry=app.state.metrics_registry,
            )
        submission_listener = None
        if settings.submission_listen is not None or settings.submission_tls_listen is not None:
            submission_listener = await submission.start(
                settings, intake=SubmissionIntake(app.state.session_factory, app.state.send_pipeline)
            )
        app.state.submission_listener = submission_listener
        try:
            yield
        finally:
            if submission_listener is not None:
                await submission_listener.stop()  # before the relay and the send log it uses close
            if listener is not None:
                await listener.stop()  # before the engine it stores through is disposed
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            if app.state.webhook_dispatcher is not None:
                await app.state.webhook_dispatcher.stop()
            await app.state.relay.close()
            await app.state.send_log.close()
            await engine.dispose()

    app = FastAPI(title="orgmail", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = MaildirStore.from_settings(
        settings,
        # Kicking needs to know which Dovecot: only when ORGMAIL_DOVECOT_CONFIG names one.
        sessions=DoveadmSessions.from_settings(settings) if settings.dovecot_config else None,
    )
    app.state.vault = KeyVault(settings.secret_key)
    app.state.api_key_cache = ApiKeyCache()
    app.state.dns_resolver = DnsTxtResolver(settings.dns_nameservers, timeout_seconds=settings.dns_timeout_seconds)
    install_error_handlers(
        app, connection_failure_types=CONNECTION_FAILURE_TYPES, is_connection_failure=is_connection_failure
    )

    app.include_router(mailboxes.router)
    app.include_router(suppressions.router)
    app.include_router(members.router)
    app.include_router(messages.router)
    app.include_router(domains.router)
    app.include_router(webhooks.router)
    app.include_router(autoconfig.router)
    if settings.admin_token:
        app.include_router(admin.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            await ping(app.state.engine)
        except Exception as exc:  # any failure to reach the database means "not ready"
            log.warning("readyz: database unreachable: %s", exc.__class__.__name__)
            return JSONResponse({"status": "unavailable"}, status_code=503, headers={"Retry-After": "5"})
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    _console(app, CONSOLE_DIR)  # after the API routes, which therefore always win
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    if settings.rate_limit_per_second > 0:
        app.add_middleware(
            RateLimit,
            rate_per_second=settings.rate_limit_per_second,
            burst=settings.rate_limit_burst,
            admin_token=settings.admin_token,
            verified_keys=app.state.api_key_cache,
        )
    _metrics(app)  # added last, so outermost: 413 and 429 answers are counted too
    return app


def create_app_from_env() -> FastAPI:
    """The factory uvicorn's workers import (`--workers N`)."""
    return create_app(load_settings())
