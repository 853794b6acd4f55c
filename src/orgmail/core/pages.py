"""Newest-first pages over time-sortable ids, with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.errors import InvalidRequest

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _encode(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


_ID_SHAPE = re.compile(r"^[a-z]{3}_[0-9A-Z]{26}$")


def _decode(cursor: str) -> str:
    try:
        padded = (cursor + "=" * (-len(cursor) % 4)).encode("ascii")
        last_id = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        last_id = ""
    if not _ID_SHAPE.match(last_id):
        raise InvalidRequest(
            "The cursor is not valid.", details={"fields": [{"path": "cursor", "message": "not a cursor"}]}
        )
    return last_id


async def newest_first(session: AsyncSession, query: Select, id_column: Any, *, limit: int, cursor: str | None) -> Page:
    if cursor:
        query = query.where(id_column < _decode(cursor))
    rows = list((await session.scalars(query.order_by(id_column.desc()).limit(limit + 1))).all())
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, _encode(getattr(rows[-1], id_column.key)))
    return Page(rows, None)
