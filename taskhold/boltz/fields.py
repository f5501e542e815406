"""Typed, range-checked reading of one JSON object from Boltz.

Every accessor names the field's path in its ``BoltzProtocolError``, so a broken or hostile
answer is refused where it is read. Numbers arrive as ``Decimal`` (the client decodes JSON with
``parse_float=Decimal``); NaN, infinities and absurd magnitudes are refused before any
conversion. Swap ids are checked here too: the client uses them in URL paths and file names.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .errors import BoltzProtocolError

__all__ = ["Fields", "is_swap_id"]


def is_swap_id(text: str) -> bool:
    """A swap id names a file and a URL path on the client, so only what Boltz issues passes."""
    return (
        0 < len(text) <= 64
        and text.replace("-", "").replace("_", "").isascii()
        and (text.replace("-", "").replace("_", "").isalnum())
    )


_LARGEST = 2**63
"""No amount, height or fee Boltz sends comes near this; beyond it an answer is nonsense."""


def _finite(value: float | Decimal | int) -> bool:
    """Finite and within range, checked before any conversion (a JSON ``1e999999999`` or
    ``NaN`` must not become a huge int or poison arithmetic)."""
    if isinstance(value, int):
        return -_LARGEST < value < _LARGEST  # math.isfinite overflows on a 400-digit int
    return math.isfinite(value) and -_LARGEST < value < _LARGEST


class Fields:
    """Typed access to one JSON object; every error names the field's path."""

    def __init__(self, doc: object, where: str) -> None:
        if not isinstance(doc, Mapping):
            raise BoltzProtocolError(f"{where} is not a JSON object")
        self.doc, self.where = doc, where

    def _get(self, name: str, optional: bool) -> Any:
        if name not in self.doc or self.doc[name] is None:
            if optional:
                return None
            raise BoltzProtocolError(f"{self.where}.{name} is missing")
        return self.doc[name]

    def _wrong(self, name: str, wanted: str) -> BoltzProtocolError:
        got = type(self.doc[name]).__name__
        return BoltzProtocolError(f"{self.where}.{name} must be {wanted}, not {got}")

    def text(self, name: str, *, optional: bool = False) -> Any:
        value = self._get(name, optional)
        if value is not None and not isinstance(value, str):
            raise self._wrong(name, "a string")
        return value

    def swap_id(self, name: str) -> str:
        value: str = self.text(name)
        if not is_swap_id(value):
            raise BoltzProtocolError(f"{self.where}.{name} is not a swap id")
        return value

    def whole(self, name: str, *, optional: bool = False) -> Any:
        """A whole number (sats, heights); JSON numbers with a fraction are refused."""
        value = self._get(name, optional)
        if value is None:
            return None
        if isinstance(value, Decimal | float) and _finite(value) and value == int(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(name, "a whole number")
        if not 0 <= value < _LARGEST:
            raise BoltzProtocolError(f"{self.where}.{name} is out of range: {value}")
        return value

    def number(self, name: str) -> Decimal:
        """A fractional number (a fee percentage) kept exact: never a float in arithmetic."""
        value = self._get(name, False)
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise self._wrong(name, "a number")
        if not _finite(value):
            raise BoltzProtocolError(f"{self.where}.{name} is out of range: {value}")
        return Decimal(str(value))

    def flag(self, name: str, *, default: bool = False) -> bool:
        value = self._get(name, True)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(name, "true or false")
        return value

    def raw(self, name: str, *, size: int | None = None, optional: bool = False) -> Any:
        value = self.text(name, optional=optional)
        if value is None:
            return None
        if len(value) % 2 or value.strip(string.hexdigits):  # fromhex would skip spaces
            raise BoltzProtocolError(f"{self.where}.{name} is not hex")
        raw = bytes.fromhex(value)
        if size is not None and len(raw) != size:
            raise BoltzProtocolError(f"{self.where}.{name} must be {size} bytes, not {len(raw)}")
        return raw

    def obj(self, name: str, *, optional: bool = False) -> Fields | None:
        value = self._get(name, optional)
        return None if value is None else Fields(value, f"{self.where}.{name}")

    def need(self, name: str) -> Fields:
        found = self.obj(name)
        assert found is not None
        return found
