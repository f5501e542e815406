"""The SQLite connection runs statements on the event loop's thread and only what can wait
(BEGIN, PRAGMA, COMMIT) on aiosqlite's worker. Invariant: the sqlite3 connection is never used
from both threads at once. A call whose awaiter was cancelled still runs on the worker; every
call made before it finishes queues behind it there."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from functools import partial
from pathlib import Path

from sqlalchemy import text

from taskhold.store import create_engine, sqlite_url
from taskhold.store.sqlite_driver import InlineConnection


async def _connection(path: Path) -> InlineConnection:
    connector = partial(sqlite3.connect, str(path), check_same_thread=False)
    connection = await InlineConnection(connector, iter_chunk_size=64)
    await connection.execute("PRAGMA journal_mode=WAL")
    return connection


async def test_a_call_made_while_one_is_outstanding_waits_for_it(tmp_path: Path) -> None:
    """A cancelled COMMIT keeps running on the worker; the rollback or close that follows it
    must not touch the connection from the loop's thread meanwhile (that crashed sqlite3)."""
    connection = await _connection(tmp_path / "db.sqlite")
    loop_thread = threading.get_ident()
    spans: dict[str, tuple[float, float, int]] = {}

    def commit() -> None:  # named like the call that goes to the worker
        started = time.monotonic()
        time.sleep(0.3)
        spans["commit"] = (started, time.monotonic(), threading.get_ident())

    def probe(name: str) -> int:
        started = time.monotonic()
        spans[name] = (started, time.monotonic(), threading.get_ident())
        return 1

    slow = asyncio.ensure_future(connection._execute(commit))
    await asyncio.sleep(0.05)
    slow.cancel()  # the awaiter gives up; the worker does not
    assert await connection._execute(probe, "after") == 1
    _, commit_ended, commit_thread = spans["commit"]
    after_started, _, after_thread = spans["after"]
    assert commit_thread != loop_thread
    assert after_thread == commit_thread, "queued on the worker behind the outstanding call"
    assert after_started >= commit_ended

    assert await connection._execute(probe, "idle") == 1
    assert spans["idle"][2] == loop_thread, "nothing outstanding: the call runs inline"
    await connection.close()


async def test_statements_run_inline_and_commit_on_the_worker(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path / "db.sqlite"))
    seen: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert isinstance(driver, InlineConnection)
            assert driver._thread.daemon, "a dropped connection must not block the exit"
            driver._conn.set_trace_callback(
                lambda sql: seen.append(
                    (sql.split()[0].upper(), threading.get_ident() == loop_thread)
                )
            )
            async with conn.begin():
                await conn.execute(text("CREATE TABLE t (x INTEGER)"))
                await conn.execute(text("INSERT INTO t VALUES (1)"))
                assert (await conn.execute(text("SELECT x FROM t"))).scalar_one() == 1
    finally:
        await engine.dispose()
    on_loop = dict(seen)
    assert on_loop["BEGIN"] is False
    assert on_loop["INSERT"] is True and on_loop["SELECT"] is True
    assert any(sql == "COMMIT" and not inline for sql, inline in seen)
