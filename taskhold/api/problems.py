"""problem+json (RFC 9457) for every refusal, in one place."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskhold.errors import Refusal, RefusalCode, problem_body
from taskhold.lightning.base import LightningError

__all__ = ["install_problem_handlers", "problem"]

log = structlog.get_logger("taskhold.api")

_HTTP_CODES = {404: RefusalCode.NOT_FOUND, 405: RefusalCode.METHOD_NOT_ALLOWED}


def problem(status: int, code: RefusalCode, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        problem_body(status, code, detail, **extra),
        status_code=status,
        media_type="application/problem+json",
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal) -> JSONResponse:
        response = problem(exc.status, exc.code, exc.detail, **exc.extra)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem(422, RefusalCode.INVALID_REQUEST, f"{where}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, RefusalCode.HTTP_ERROR)
        return problem(exc.status_code, code, str(exc.detail))

    @app.exception_handler(LightningError)
    async def _lightning(request: Request, exc: LightningError) -> JSONResponse:
        log.warning("lightning_error", error=type(exc).__name__, path=request.url.path)
        return problem(
            503,
            RefusalCode.LIGHTNING_UNAVAILABLE,
            "the Lightning node could not do this now; retry later",
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(ConnectionError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        """The database cannot be reached (a restart, a dropped connection): a 503 to retry,
        not an internal error; any other database error stays a 500."""
        if isinstance(exc, DBAPIError) and not _database_unreachable(exc):
            return await _fault(request, exc)
        log.warning("database_unavailable", error=type(exc).__name__, path=request.url.path)
        return problem(
            503,
            RefusalCode.DATABASE_UNAVAILABLE,
            "the database could not be reached; nothing was changed, retry later",
            title="Database unavailable",
        )

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal_error", error=type(exc).__name__, path=request.url.path)
        return problem(
            500, RefusalCode.INTERNAL_ERROR, "taskhold failed internally; nothing was changed"
        )


def _database_unreachable(exc: DBAPIError) -> bool:
    """A connection that dropped or could not be made, as opposed to a refused statement."""
    if exc.connection_invalidated:
        return True
    cause: BaseException | None = exc.orig
    while cause is not None:
        if isinstance(cause, OSError) or type(cause).__name__ in _UNREACHABLE:
            return True
        cause = cause.__cause__
    return False


_UNREACHABLE = frozenset({"CannotConnectNowError", "ConnectionDoesNotExistError"})
"""asyncpg's names for a server that is starting or shutting down, or a connection it closed."""
