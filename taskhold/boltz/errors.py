"""What can go wrong talking to Boltz, as three kinds a client can act on.

``BoltzRefused``: Boltz understood and said no (4xx with its ``{"error": ...}``); retrying the
same request will not help. ``BoltzUnavailable``: it could not be reached, timed out, failed
(5xx) or said "not now" (408, 429); retrying later may. ``BoltzProtocolError``: it answered
something that is not the published API (bad JSON, a missing or mistyped field); a broken or
hostile server, never a ``KeyError`` deep in the client. Swap-fact mismatches are
``taskhold.swaps.errors.SwapMismatch``.
"""

from __future__ import annotations

from taskhold.swaps.errors import SwapMismatch, SwapTimingError

__all__ = [
    "BoltzError",
    "BoltzProtocolError",
    "BoltzRefused",
    "BoltzUnavailable",
    "RecordError",
    "StatusTimeout",
    "SwapEnded",
    "SwapMismatch",
    "SwapTimingError",
]

_MAX_TEXT = 200


def shorten(text: str) -> str:
    """Server text, made safe to show: printable characters only, bounded length."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= _MAX_TEXT else clean[:_MAX_TEXT] + "…"


class BoltzError(Exception):
    """Any failure of a call to Boltz."""


class BoltzRefused(BoltzError):
    """Boltz refused the request; ``message`` is its (shortened) reason."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.message = shorten(message)
        self.status = status
        super().__init__(f"Boltz refused ({status}): {self.message}" if status else self.message)


class BoltzUnavailable(BoltzError):
    """Boltz could not be reached, timed out, or failed on its side."""


class BoltzProtocolError(BoltzError):
    """Boltz's answer does not have the published shape."""


class StatusTimeout(BoltzError):
    """A swap did not reach the awaited status in time."""


class SwapEnded(BoltzError):
    """A swap reached a final status other than the one awaited."""

    def __init__(self, swap_id: str, status: str) -> None:
        self.swap_id = swap_id
        self.status = status
        super().__init__(f"swap {swap_id} ended in {status!r}")


class RecordError(ValueError):
    """A swap record that cannot be written, read or moved that way (an illegal transition)."""
