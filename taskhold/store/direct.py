"""The write path's statements run on the transaction's own driver connection, without
SQLAlchemy's execute machinery.

Why (issue #17): a create runs some twenty statements, and going through
``AsyncSession.execute`` costs each one a greenlet switch, the ORM's and the engine's execution
contexts, a compiled-cache lookup and SQLAlchemy's result objects, about a fifth of a create's
CPU on the server's one event loop. A :class:`DirectStatement` is compiled once per dialect and
set of parameter names into its SQL text and the order of its parameters, and each value goes
through its column type's bind processor for the dialect, as SQLAlchemy's execute would (the
JSON columns' text, ``None`` as JSON ``null``, booleans as SQLite integers; the rebuild's COPY
does the same, ``taskhold.rebuild.replay._copied``). So the rows written are the ones the
SQLAlchemy path writes, byte for byte.

It runs on the connection of the transaction the session already holds, so it commits or rolls
back with everything else of the write:

- SQLite: the ``sqlite3`` connection under ``InlineConnection``, called on the loop's thread
  exactly as that connection runs these statements itself (``.sqlite_driver``), and only while
  no call is outstanding on its worker and the ``BEGIN IMMEDIATE`` is in force.
- PostgreSQL: the asyncpg connection, once SQLAlchemy's adapter has started its transaction;
  asyncpg prepares each statement once per connection (its statement cache), and several rows
  of one insert go in one ``executemany``, one round trip.

Anywhere else (another driver, a transaction not begun on the driver yet, a call outstanding on
the SQLite worker) the statement runs through ``session.execute`` as before. A driver's error is
raised as the ``sqlalchemy.exc`` error SQLAlchemy would raise (``IntegrityError`` for a
duplicate key, which the store turns into a write conflict), with the driver's error as
``orig``. A read whose statement names mapped classes flushes what a caller added through the
ORM first, as the ORM's autoflush would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import Compiled

from .sqlite_driver import InlineConnection

__all__ = ["DirectStatement", "fetch", "run"]

Params = Mapping[str, Any]
_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One statement's SQL for one dialect, with what each of its positions takes."""

    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    """The value of a position the parameters need not give (a ``LIMIT``), or _REQUIRED."""
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]

    def row_of(self, params: Params) -> list[Any]:
        row = [
            params[name] if default is _REQUIRED else params.get(name, default)
            for name, default in zip(self.names, self.defaults, strict=True)
        ]
        for index, process in self.processors:
            row[index] = process(row[index])
        return row

    def result_row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if not self.results:
            return tuple(row)
        values = list(row)
        for index, process in self.results:
            values[index] = process(values[index])
        return tuple(values)


class DirectStatement:
    """A Core or ORM statement built once at import, run through the driver (:func:`run`,
    :func:`fetch`); ``reads_mapped`` when it selects from mapped classes, so that what a caller
    added through the ORM is flushed first."""

    __slots__ = ("_compiled", "reads_mapped", "statement")

    def __init__(self, statement: Executable, *, reads_mapped: bool = False) -> None:
        self.statement = statement
        self.reads_mapped = reads_mapped
        self._compiled: dict[tuple[str, tuple[str, ...] | None, bool], _Compiled] = {}

    def compiled(self, dialect: Dialect, keys: tuple[str, ...] | None, many: bool) -> _Compiled:
        """The statement's SQL for ``dialect`` with parameters named ``keys`` (an insert's or
        an update's columns are the ones given, as for ``session.execute``)."""
        cache_key = (dialect.name, keys, many)
        found = self._compiled.get(cache_key)
        if found is None:
            found = self._compiled[cache_key] = _compile(self.statement, dialect, keys, many)
        return found


def _compile(
    statement: Executable, dialect: Dialect, keys: tuple[str, ...] | None, many: bool
) -> _Compiled:
    compiled: Compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=dialect, column_keys=None if keys is None else list(keys), for_executemany=many
    )
    names = tuple(compiled.positiontup or ())  # type: ignore[attr-defined]
    binds = compiled.binds  # type: ignore[attr-defined]
    defaults = tuple(
        _REQUIRED if binds[name].required else binds[name].effective_value for name in names
    )
    processors = tuple(
        (index, process)
        for index, name in enumerate(names)
        if (process := binds[name].type.dialect_impl(dialect).bind_processor(dialect))
    )
    results = tuple(
        (index, process)
        for index, column in enumerate(getattr(statement, "selected_columns", ()))
        if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))
    )
    return _Compiled(compiled.string, names, defaults, processors, results)


async def run(
    session: AsyncSession, statement: DirectStatement, params: Params | Sequence[Params]
) -> int:
    """Execute a write (one row's parameters, or several rows' for an insert): the number of
    rows it changed, as ``rowcount`` reports it."""
    rows = [params] if isinstance(params, Mapping) else list(params)
    driver = await _driver(session, statement)
    if driver is None:
        result = await session.execute(statement.statement, params)
        return int(result.rowcount)  # type: ignore[attr-defined]
    compiled = statement.compiled(driver.dialect, tuple(sorted(rows[0])), len(rows) > 1)
    return await driver.run(compiled, [compiled.row_of(row) for row in rows])


async def fetch(
    session: AsyncSession, statement: DirectStatement, params: Params | None = None
) -> list[tuple[Any, ...]]:
    """The rows a read selects, as tuples of its columns' values (each through its column
    type's result processor, as SQLAlchemy's result would)."""
    params = params or {}
    driver = await _driver(session, statement)
    if driver is None:
        return [tuple(row) for row in await session.execute(statement.statement, params)]
    compiled = statement.compiled(driver.dialect, None, False)
    found = await driver.fetch(compiled, compiled.row_of(params))
    return [compiled.result_row(row) for row in found]


async def _driver(session: AsyncSession, statement: DirectStatement) -> _Driver | None:
    """The session's transaction's driver, when a statement can run on it now."""
    if statement.reads_mapped and (session.new or session.dirty or session.deleted):
        await session.flush()
    transaction = session.sync_session.get_transaction()
    if transaction is None:
        return None
    held = session.info.get(_INFO_KEY)
    if held is None or held[0] is not transaction:
        held = session.info[_INFO_KEY] = (transaction, await _driver_of(session))
    driver: _Driver | None = held[1]
    return driver if driver is not None and driver.ready() else None


_INFO_KEY = "taskhold.direct"


async def _driver_of(session: AsyncSession) -> _Driver | None:
    connection = await session.connection()
    dialect = connection.dialect
    raw: Any = (await connection.get_raw_connection()).driver_connection
    if dialect.driver == "aiosqlite" and isinstance(raw, InlineConnection):
        return _SQLite(dialect, raw)
    if dialect.driver == "asyncpg":
        return _Asyncpg(dialect, raw)
    return None


class _Driver:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def ready(self) -> bool:
        raise NotImplementedError

    async def run(self, compiled: _Compiled, rows: list[list[Any]]) -> int:
        raise NotImplementedError

    async def fetch(self, compiled: _Compiled, row: list[Any]) -> list[Sequence[Any]]:
        raise NotImplementedError


class _SQLite(_Driver):
    def __init__(self, dialect: Dialect, connection: InlineConnection) -> None:
        super().__init__(dialect)
        self._connection = connection

    def ready(self) -> bool:
        inline = self._connection.inline()
        return inline is not None and inline.in_transaction

    async def run(self, compiled: _Compiled, rows: list[list[Any]]) -> int:
        connection = self._inline()
        try:
            if len(rows) == 1:
                return connection.execute(compiled.sql, rows[0]).rowcount
            return connection.executemany(compiled.sql, rows).rowcount
        except sqlite3.Error as exc:
            raise _wrapped(compiled.sql, rows, exc, integrity=sqlite3.IntegrityError) from exc

    async def fetch(self, compiled: _Compiled, row: list[Any]) -> list[Sequence[Any]]:
        connection = self._inline()
        try:
            return connection.execute(compiled.sql, row).fetchall()
        except sqlite3.Error as exc:
            raise _wrapped(compiled.sql, row, exc, integrity=sqlite3.IntegrityError) from exc

    def _inline(self) -> sqlite3.Connection:
        connection = self._connection.inline()
        if connection is None:  # ready() said otherwise a moment ago, on the same thread
            raise RuntimeError("the SQLite connection is busy on its worker")
        return connection


class _Asyncpg(_Driver):
    def __init__(self, dialect: Dialect, connection: Any) -> None:
        super().__init__(dialect)
        self._connection = connection
        import asyncpg  # type: ignore[import-untyped]

        self._errors: tuple[type[BaseException], ...] = (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            OSError,
        )
        self._integrity = asyncpg.IntegrityConstraintViolationError

    def ready(self) -> bool:
        return bool(self._connection.is_in_transaction())

    async def run(self, compiled: _Compiled, rows: list[list[Any]]) -> int:
        try:
            if len(rows) == 1:
                status = await self._connection.execute(compiled.sql, *rows[0])
                return _changed(status)
            await self._connection.executemany(compiled.sql, rows)
            return len(rows)
        except self._errors as exc:
            raise _wrapped(compiled.sql, rows, exc, integrity=self._integrity) from exc

    async def fetch(self, compiled: _Compiled, row: list[Any]) -> list[Sequence[Any]]:
        try:
            return list(await self._connection.fetch(compiled.sql, *row))
        except self._errors as exc:
            raise _wrapped(compiled.sql, row, exc, integrity=self._integrity) from exc


def _changed(status: str) -> int:
    """The row count of asyncpg's command status (``UPDATE 1``, ``INSERT 0 2``)."""
    count = status.rsplit(" ", 1)[-1]
    return int(count) if count.isdigit() else -1


def _wrapped(
    sql: str, params: Any, exc: BaseException, *, integrity: type[BaseException]
) -> DBAPIError:
    """The ``sqlalchemy.exc`` error for a driver's error, as callers of ``session.execute``
    catch it (``IntegrityError`` for a key or constraint violation)."""
    kind = IntegrityError if isinstance(exc, integrity) else DBAPIError
    return kind(sql, params, exc)
