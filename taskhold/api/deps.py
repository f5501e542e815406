"""Reaching the composition root's services from a request, without globals."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi import Request

if TYPE_CHECKING:
    from taskhold.services import Services

__all__ = ["services_of"]


def services_of(request: Request) -> Services:
    return cast("Services", request.app.state.services)
