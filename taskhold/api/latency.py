"""Request latency by route template, for ``/metrics`` (an ASGI middleware, no Prometheus
object: it fills a :class:`~taskhold.escrow.stats.Durations` owned by the app).

Labels are the HTTP method (one of the usual ones, else ``other``), the route's path template
(``/v1/tasks/{task_id}``, never the path itself, which names a task) or ``unmatched``, and the
status class (``2xx`` …). A client cannot grow the set of series past the API's routes.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskhold.escrow.stats import Durations

__all__ = ["METHODS", "RequestTiming"]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestTiming:
    """Times every HTTP request into ``durations``; a request that raises counts as 5xx."""

    def __init__(self, app: ASGIApp, durations: Durations) -> None:
        self.app = app
        self.durations = durations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.durations.observe(time.perf_counter() - started, *labels_of(scope, status))


def labels_of(scope: dict[str, Any] | Scope, status: int) -> tuple[str, str, str]:
    method = scope.get("method", "")
    route = getattr(scope.get("route"), "path", None)
    return (
        method if method in METHODS else "other",
        route if isinstance(route, str) else "unmatched",
        f"{status // 100}xx",
    )
