"""The SQLite connection taskhold's async engine uses: aiosqlite, with its thread kept for the
statements that can wait and nothing else.

aiosqlite runs every call (each execute, fetch and cursor close) on a worker thread and hands
the answer back to the event loop. A write is some 60 such calls; each hand-off costs a thread
switch and a turn of the loop, and the write holds the database for all of them. Here a call
runs on the loop's thread, where a statement on a local file takes microseconds, unless it can
block:

- ``BEGIN`` (and the ``PRAGMA``s at connect) may wait for another connection's write lock
  (``busy_timeout``): waiting on the loop would stall every request, and if that connection's
  transaction belongs to a coroutine of this same loop it could never finish.
- ``COMMIT`` syncs the write-ahead log to disk: the loop serves other requests meanwhile.

Inside a ``BEGIN IMMEDIATE`` transaction nothing else waits on a lock in WAL mode (readers never
block the writer, and the writer holds the lock already), so the calls that run inline never
block on another connection. Durability is unchanged: the commit is the same ``COMMIT`` with
the same ``synchronous`` setting, only issued from the worker thread as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiosqlite

__all__ = ["InlineConnection", "sqlite_connector"]


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose non-blocking calls run on the caller's thread, but only
    while no call is outstanding on its worker: a call whose awaiting task was cancelled (a
    ``COMMIT`` under a timeout) still runs there, and a call made meanwhile (the pool's
    rollback or close of that connection) must queue behind it, never use the connection at
    the same time from another thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._calls = _Calls()
        # As SQLAlchemy sets it for the connections it makes itself: a connection the pool
        # dropped without closing must not keep the process from exiting.
        self._thread.daemon = True

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        calls = self._calls
        if calls.sent == calls.done and not _may_block(fn, args):
            if not self._running or self._connection is None:
                raise ValueError("Connection closed")
            return fn(*args, **kwargs)
        calls.sent += 1
        return await super()._execute(partial(_counted, calls, fn), *args, **kwargs)  # type: ignore[no-untyped-call]

    def inline(self) -> sqlite3.Connection | None:
        """The ``sqlite3`` connection, to be called on this thread now, or None while a call
        is outstanding on the worker (or the connection is closed): for the statements that
        run without SQLAlchemy (``.direct``), which never wait on a lock inside a ``BEGIN
        IMMEDIATE`` transaction."""
        calls = self._calls
        if calls.sent != calls.done or not self._running:
            return None
        return self._connection


class _Calls:
    """Calls handed to the worker, in two counters each written by one thread only: ``sent``
    by the caller's, ``done`` by the worker's once the call has really finished (not when its
    awaiter gave up). Kept apart from the connection, so the worker's last call does not keep
    an abandoned connection (and with it the worker thread) alive."""

    __slots__ = ("done", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.done = 0


def _counted(calls: _Calls, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    finally:
        calls.done += 1


_WAITING_STATEMENTS = ("BEGIN", "PRAGMA", "COMMIT", "VACUUM")


def _may_block(fn: Callable[..., Any], args: Any) -> bool:
    """Whether ``fn(*args)`` may wait on another connection's lock or on the disk."""
    name = getattr(fn, "__name__", "")
    if name == "commit":
        return True
    if name in ("execute", "executescript") and args and isinstance(args[0], str):
        return args[0].lstrip()[:6].upper().startswith(_WAITING_STATEMENTS)
    return False


def sqlite_connector(
    path: str, *, timeout_s: float
) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    """The ``async_creator`` for ``create_async_engine``: a connection to the file at ``path``.

    ``check_same_thread=False``: the connection is opened on the worker thread and used from
    the loop's too, never from both at once (each call is awaited before the next is made).
    """
    connector = partial(sqlite3.connect, path, timeout=timeout_s, check_same_thread=False)

    async def connect() -> aiosqlite.Connection:
        return await InlineConnection(connector, iter_chunk_size=64)

    return connect
