"""The two branches of taskhold's errors.

:class:`Refusal` is what a user sees: a stable ``code``, an HTTP status and a sentence a person can
act on. The API turns every refusal into a problem+json response in one handler. Anything else
that escapes is an internal :class:`Fault` (or a bug) and becomes a 500 without leaking details.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["Conflict", "Fault", "Forbidden", "Invalid", "NotFound", "Refusal", "TooLarge"]


class Refusal(Exception):
    """A request taskhold refuses on purpose. Nothing was written."""

    status: int = 400
    code: str = "invalid_request"
    extra: Mapping[str, Any] = MappingProxyType({})
    """Further problem+json members, e.g. ``required_bits`` for ``pow_required``."""
    headers: Mapping[str, str] = MappingProxyType({})
    """HTTP headers of the refusal, e.g. ``Retry-After`` for 429."""

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class Invalid(Refusal):
    """The request is well-formed JSON but its values break a rule (422)."""

    status = 422
    code = "invalid_value"


class Forbidden(Refusal):
    """The signer is not allowed to do this (403)."""

    status = 403
    code = "forbidden"


class NotFound(Refusal):
    """No such task (404)."""

    status = 404
    code = "not_found"


class Conflict(Refusal):
    """The task's state does not allow this now, or someone else won a race (409)."""

    status = 409
    code = "conflict"


class TooLarge(Refusal):
    """The request exceeds a configured limit (413)."""

    status = 413
    code = "too_large"


class Fault(Exception):
    """An internal failure taskhold cannot blame on the request (a node, the database)."""
