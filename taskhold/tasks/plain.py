"""Frozen records as plain JSON-ready values, the way ``dataclasses.asdict`` builds them.

``asdict`` deep-copies every leaf and looks each class's fields up again at every level; a
write turns its task into a dict three times (the row, the log entry's state digest, the
listing), which made this one of the larger costs of a write. Here the fields of each class
are read once, and immutable leaves are shared instead of copied. The result is equal to
``asdict``'s, containers of the same types included.
"""

from __future__ import annotations

import copy
import dataclasses
from enum import Enum
from typing import Any

__all__ = ["as_plain", "plain_value"]

_ATOMS = frozenset({str, int, float, bool, type(None), bytes})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def as_plain(record: Any) -> dict[str, Any]:
    """``dataclasses.asdict(record)``, faster; ``record`` must be a dataclass instance."""
    if not dataclasses.is_dataclass(record) or isinstance(record, type):
        raise TypeError("as_plain() should be called on dataclass instances")
    plain: dict[str, Any] = _plain(record)
    return plain


def plain_value(value: Any) -> Any:
    """What ``as_plain`` makes of ``value`` as a field of a record: a record as a dict, an
    immutable leaf as itself, a container rebuilt around its items' plain values."""
    return _plain(value)


def _plain(value: Any) -> Any:
    cls = type(value)
    if cls in _ATOMS or isinstance(value, Enum):
        return value
    names = _FIELD_NAMES.get(cls)
    if names is None and dataclasses.is_dataclass(value):
        names = tuple(field.name for field in dataclasses.fields(value))
        _FIELD_NAMES[cls] = names
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if cls is tuple or cls is list:
        return cls(_plain(item) for item in value)
    if cls is dict:
        return {_plain(key): _plain(item) for key, item in value.items()}
    return copy.deepcopy(value)  # anything else, as asdict does
