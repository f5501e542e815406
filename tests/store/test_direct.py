"""The write path's statements run on the driver (``taskhold.store.direct``) store the rows
SQLAlchemy's execute stores, byte for byte, read back what it reads, and keep the write's
guards: a task row moved on by another writer updates nothing (a write conflict), a duplicate
key fails the transaction as a write conflict, and it all rolls back together."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from support.stacks import Stack, new_database
from support.task_flows import created

from taskhold.moderation import gate
from taskhold.publiclog import writer
from taskhold.store import Store, controls, create_engine, migrate, repo
from taskhold.store.direct import DirectStatement, fetch, run
from taskhold.store.models import (
    Base,
    BlockedKeyRow,
    OperatorControlRow,
    TaskRow,
    TransitionRow,
    table_of,
)

TASK_ID = "a" * 64
EVENT = {"type": "TaskCreated", "title": 'naïve 🦀 "quoted"', "nested": [1, {"x": None}]}
SIGNED = {"id": "e" * 64, "kind": 3910, "content": "é", "tags": [["op", "x"]], "sig": "f" * 128}


def _writes() -> list[tuple[DirectStatement, Any]]:
    """Every write the hot path makes, with values that exercise each column type: JSON with
    non-ASCII text, JSON ``null`` from ``None``, booleans, several rows in one insert."""
    task = {
        "task_id": TASK_ID,
        "version": 1,
        "state": "PENDING_FUNDING",
        "employer_pubkey": "b" * 64,
        "worker_pubkey": None,
        "payment_hash_hex": "c" * 64,
        "amount_msat": 2**40,
        "pending_action": None,
        "deposit_action": "hold",
        "created_at": 1_700_000_000,
        "updated_at": 1_700_000_000,
        "data": {"title": "ünïcode", "deposits": [], "amount_msat": 2**40},
        "timer_due_at": 1_700_003_600,
        "hold_margin": None,
        "hold_expiry_height": None,
        "deposit_expiry_height": 900,
    }
    transition = {
        "task_id": TASK_ID,
        "event_type": "TaskCreated",
        "actor": "b" * 64,
        "at": 1_700_000_000,
        "state_after": "PENDING_FUNDING",
        "event": EVENT,
    }
    outbox = writer.outbox_values(SIGNED, 1_700_000_001)
    return [
        (repo._INSERT_TASK, task),
        (
            repo._INSERT_TRANSITIONS,
            [
                {**transition, "version": 1, "request": {"op": "create", "x": "ß"}},
                {**transition, "version": 2, "request": None},
            ],
        ),
        (
            repo._UPDATE_TASK,
            {**task, "at_task_id": TASK_ID, "at_version": 1, "version": 2, "data": EVENT},
        ),
        (
            repo._INSERT_REQUEST,
            {"event_id": "d" * 64, "pubkey": "b" * 64, "op": "create", "task_id": TASK_ID}
            | {"received_at": 5},
        ),
        (
            repo._INSERT_RESPONSE,
            {"pubkey": "b" * 64, "key": "k1", "request_fingerprint": "0" * 64}
            | {"status_code": 201, "response": {"task": EVENT}, "created_at": 6},
        ),
        (writer._INSERT_OUTBOX, outbox),
        (writer._INSERT_OUTBOX, [{**outbox, "event_id": "1" * 64, "done": True}]),
        (
            writer._INSERT_ENTRIES,
            [
                {"gseq": 0, "event_id": "2" * 64, "task_id": TASK_ID, "seq": 1}
                | {"created_at": 7, "raw": SIGNED},
                {"gseq": 1, "event_id": "3" * 64, "task_id": TASK_ID, "seq": 2}
                | {"created_at": 8, "raw": {**SIGNED, "content": ""}},
            ],
        ),
        (writer._INSERT_HEAD, {"id": 1, "gseq": 1, "event_id": "3" * 64, "created_at": 8}),
        (writer._UPDATE_HEAD, {"gseq": 2, "event_id": None, "created_at": 9}),
        (writer._INSERT_LISTING, {"task_id": TASK_ID, "event_id": "4" * 64, "created_at": 10}),
        (
            writer._UPDATE_LISTING,
            {"task_id": TASK_ID, "event_id": "5" * 64, "created_at": 11, "at_task_id": TASK_ID},
        ),
        (
            DirectStatement(insert(table_of(OperatorControlRow))),
            {"name": controls.INTAKE_PAUSED, "value": 1, "changed_by": "op", "changed_at": 12},
        ),
        (
            DirectStatement(insert(table_of(BlockedKeyRow))),
            {"pubkey": "b" * 64, "reason": "spam ✉", "blocked_at": 13},
        ),
    ]


READS: list[tuple[DirectStatement, dict[str, Any]]] = [
    (repo._LOAD_TASK, {"task_id": TASK_ID}),
    (repo._LOG_HEAD_OF, {"task_id": TASK_ID}),
    (repo._REQUEST_SEEN, {"event_id": "d" * 64}),
    (repo._STORED_RESPONSE, {"pubkey": "b" * 64, "key": "k1"}),
    (writer._HEAD, {}),
    (writer._ENTRY_AT, {"task_id": TASK_ID, "seq": 1}),
    (writer._LISTING_OF, {"task_id": TASK_ID}),
    (writer._LISTING_OF, {"task_id": "none"}),
    (controls._READ, {"name": controls.INTAKE_PAUSED}),
    (gate._REASON, {"pubkey": "b" * 64}),
]


async def _stored(engine: AsyncEngine, kind: str) -> dict[str, list[Any]]:
    """Every row of every table as the database holds it: PostgreSQL's text form of the row,
    SQLite's stored values with their storage classes."""
    tables: dict[str, list[Any]] = {}
    async with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            order = ", ".join(f'"{column.name}"' for column in table.primary_key.columns)
            if kind == "postgresql":
                sql = f'SELECT t::text FROM "{table.name}" t ORDER BY {order}'
            else:
                columns = ", ".join(f'typeof("{c.name}"), quote("{c.name}")' for c in table.columns)
                sql = f'SELECT {columns} FROM "{table.name}" ORDER BY {order}'
            tables[table.name] = [tuple(row) for row in await conn.exec_driver_sql(sql)]
    return tables


def _noting(verbs: list[str]) -> Any:
    """A ``before_cursor_execute`` listener noting each statement's verb SQLAlchemy runs."""

    def seen(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        verbs.append(sql.split(maxsplit=1)[0].upper())

    return seen


async def test_direct_rows_equal_the_sqlalchemy_rows(database_kind: str, tmp_path: Path) -> None:
    stored: dict[str, dict[str, list[Any]]] = {}
    for way in ("direct", "sqlalchemy"):
        async with new_database(database_kind, tmp_path / way) as url:
            engine = create_engine(url)
            try:
                await migrate(engine)
                bypassed: list[str] = []
                seen = _noting(bypassed)
                event.listen(engine.sync_engine, "before_cursor_execute", seen)
                async with Store(engine).transaction() as tx:
                    # The transaction's first statement begins it (through SQLAlchemy on
                    # PostgreSQL); every later one runs on the driver.
                    assert await fetch(tx.session, repo._REQUEST_SEEN, {"event_id": "-"}) == []
                    for statement, params in _writes():
                        if way == "direct":
                            assert await run(tx.session, statement, params) == (
                                len(params) if isinstance(params, list) else 1
                            )
                        else:
                            await tx.session.execute(statement.statement, params)
                    if way == "direct":
                        for statement, params in READS:
                            expected = [
                                tuple(row)
                                for row in await tx.session.execute(statement.statement, params)
                            ]
                            assert expected, statement.statement  # each read finds a row
                            assert await fetch(tx.session, statement, params) == expected
                event.remove(engine.sync_engine, "before_cursor_execute", seen)
                if way == "direct":
                    assert "INSERT" not in bypassed and "UPDATE" not in bypassed
                stored[way] = await _stored(engine, database_kind)
            finally:
                await engine.dispose()
    assert stored["direct"]["tasks"] and stored["direct"]["outbox"]
    assert stored["direct"] == stored["sqlalchemy"]


async def test_a_task_row_another_writer_moved_on_is_a_conflict(stack: Stack) -> None:
    task = await created(stack, stack.client())
    store = stack.services.store

    with pytest.raises(repo.WriteConflict):
        async with store.transaction() as tx:
            read = await tx.load_task(task["task_id"], for_update=True)
            assert read is not None
            moved = dataclasses.replace(read, version=read.version + 1, updated_at=1)
            await tx._save_projection(read, moved)  # the other writer: at the version read
            await tx._save_projection(read, dataclasses.replace(moved, updated_at=2))

    async with store.transaction() as tx:  # the whole transaction rolled back
        version, updated_at = (
            await tx.session.execute(
                select(TaskRow.version, TaskRow.updated_at).where(
                    TaskRow.task_id == task["task_id"]
                )
            )
        ).one()
    assert (version, updated_at) == (read.version, read.updated_at)


async def test_a_duplicate_key_on_the_driver_is_a_conflict(stack: Stack) -> None:
    task = await created(stack, stack.client())
    store = stack.services.store
    async with store.transaction() as tx:
        (row,) = await tx.transitions(task["task_id"])
        copy = {column.key: getattr(row, column.key) for column in TransitionRow.__table__.c}

    with pytest.raises(repo.WriteConflict):
        async with store.transaction() as tx:
            await run(tx.session, repo._INSERT_RESPONSE, _response("kept-not"))
            await run(tx.session, repo._INSERT_TRANSITIONS, copy)

    async with store.transaction() as tx:
        assert await tx.stored_response("b" * 64, "kept-not") is None  # rolled back with it
        assert len(await tx.transitions(task["task_id"])) == 1


def _response(key: str) -> dict[str, Any]:
    return {
        "pubkey": "b" * 64,
        "key": key,
        "request_fingerprint": "0" * 64,
        "status_code": 201,
        "response": {},
        "created_at": 1,
    }
