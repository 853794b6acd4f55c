"""The views core hands out (`MessageView`, `MessageEventView`, …) are plain dataclasses, each made
from whatever row holds its columns: an ORM object, a result row, a send log row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

View = TypeVar("View", bound="DataclassInstance")

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # per view type, worked out once


def copied(view: type[View], row: Any) -> View:
    """A `view` of `row`: each of the view's fields copied from the row's attribute (or, for a
    mapping, its key) of that name."""
    names = _FIELD_NAMES.get(view)
    if names is None:
        names = _FIELD_NAMES[view] = tuple(field.name for field in fields(view))
    if isinstance(row, Mapping):
        return view(**{name: row[name] for name in names})
    return view(**{name: getattr(row, name) for name in names})
