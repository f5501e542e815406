"""SQLite serves one process: ``serve`` holds a lock beside the database file while it runs.

SQLite is the embedded default, and a second ``serve`` on the same file would run a second
escrow engine beside the first, with nothing between them but the in-memory guards of each
(and a simulator world of its own). Replicas need PostgreSQL, whose row locks and leases
share the work (``docs/replicas.md``); a second ``serve`` on one SQLite file is refused at
start. The lock is the operating system's (``flock``), so a killed process leaves none behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from .db import is_sqlite

__all__ = ["SQLiteTaken", "one_process_on_sqlite"]


class SQLiteTaken(Exception):
    """Another process serves this SQLite database."""


def _database_file(url: str) -> Path | None:
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


@contextmanager
def one_process_on_sqlite(url: str) -> Iterator[None]:
    """Hold the SQLite database of ``url`` for this process; :class:`SQLiteTaken` if another
    process holds it. Nothing is held for PostgreSQL, where replicas are welcome."""
    database = _database_file(url)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    lock = database.with_name(database.name + ".serve-lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SQLiteTaken(
                f"another taskhold serve already runs on the SQLite database {database}:"
                " SQLite serves one process; to run replicas, point every one of them at one"
                " PostgreSQL database (TASKHOLD_DATABASE_URL=postgresql+asyncpg://...)"
            ) from None
        yield
    finally:
        os.close(fd)
