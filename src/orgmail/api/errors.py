"""Errors to HTTP in one place: every failure answers the DESIGN.md error shape, never a stack trace.

`error_response` renders every error body, the middlewares' (413, 429) included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from orgmail.errors import InvalidRequest, NotFound, OrgmailError, Unavailable
from orgmail.throttled_log import ThrottledLog

log = logging.getLogger("orgmail.api")

RETRY_AFTER_SECONDS = "5"


def error_response(error: OrgmailError, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    if error.status == 503:  # every 503 here is temporary (database, relay, DNS): say when to retry
        headers = {"Retry-After": RETRY_AFTER_SECONDS, **(headers or {})}
    return JSONResponse({"error": body}, status_code=error.status, headers=headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in ("body",)]
    return ".".join(parts) or "body"


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    fields = []
    for item in exc.errors():
        kind = item.get("type", "")
        if kind == "json_invalid":
            return InvalidRequest(
                "The request body is not valid JSON.", details={"fields": [{"path": "body", "message": "invalid JSON"}]}
            )
        if kind == "missing" and tuple(item.get("loc", ())) == ("body",):
            return InvalidRequest(
                "A JSON object body is required.", details={"fields": [{"path": "body", "message": "required"}]}
            )
        message = "unknown field" if kind == "extra_forbidden" else str(item.get("msg", "invalid"))
        fields.append({"path": _field_path(tuple(item.get("loc", ()))), "message": message})
    summary = "; ".join(f"{f['path']}: {f['message']}" for f in fields[:5])
    return InvalidRequest(f"The request is not valid ({summary}).", details={"fields": fields})


def install_error_handlers(
    app: FastAPI,
    *,
    connection_failure_types: tuple[type[Exception], ...],
    is_connection_failure: Callable[[BaseException], bool],
) -> None:
    """`connection_failure_types`: what a lost database raises (the db layer names them); they get a
    handler of their own, so an outage is a 503 and one log line, not a 500 and a traceback each."""
    outage_log = ThrottledLog(log)  # an outage meets every request: one line a second is plenty

    @app.exception_handler(OrgmailError)
    async def _orgmail_error(_request: Request, exc: OrgmailError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(NotFound("No such endpoint."))
        if exc.status_code == 405:
            error = OrgmailError("Method not allowed; every call is a POST.")
            error.code, error.status = "method_not_allowed", 405
            return error_response(error, headers=getattr(exc, "headers", None))  # keeps Allow
        if exc.status_code == 400:
            return error_response(InvalidRequest("The request body could not be parsed."))
        error = OrgmailError(str(exc.detail))
        error.code, error.status = "http_error", exc.status_code
        return error_response(error)

    @app.exception_handler(DataError)
    @app.exception_handler(asyncpg.DataError)  # the send log's hot path talks to asyncpg directly
    async def _data_error(_request: Request, exc: Exception) -> JSONResponse:
        # A value the database refuses (schemas should catch these first): the input's fault, not ours.
        refused = getattr(exc, "orig", None) or exc
        log.warning("database refused a value: %s", refused.__class__.__name__)
        return error_response(InvalidRequest("A value in the request cannot be stored."))

    async def _connection_failure(_request: Request, exc: Exception) -> JSONResponse:
        if is_connection_failure(exc):
            outage_log.warning("database unavailable (%s); answering 503 until it is back", exc.__class__.__name__)
            return error_response(Unavailable())
        return _internal_error(exc)

    for exception_type in connection_failure_types:
        app.add_exception_handler(exception_type, _connection_failure)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this one outermost and re-raises after answering: the server logs it too.
        if is_connection_failure(exc):
            outage_log.warning("database unavailable (%s); answering 503 until it is back", exc.__class__.__name__)
            return error_response(Unavailable())
        return error_response(OrgmailError())


def _internal_error(exc: Exception) -> JSONResponse:
    log.error("unexpected error", exc_info=exc)
    return error_response(OrgmailError())
