"""The audit log: one hash chain, append-only for the application, tampering reported — on
SQLite (the application keeps the chain) and on PostgreSQL (the database does)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from support.keystores import run_taskhold

from taskhold.journal.chain import (
    GENESIS_HASH,
    AuditLog,
    canonical_details,
    entry_hash,
    read_head,
    verify_chain,
)
from taskhold.journal.checkpoints import checkpoint_payload, verify_checkpoints
from taskhold.journal.cli import verify_audit_log
from taskhold.nostr import NostrKeys
from taskhold.store import Store, Tx, create_engine, migrate

POSTGRESQL_ONLY = ["postgresql"] if os.environ.get("TASKHOLD_TEST_PG_URL") else []
"""Roles and grants exist only on PostgreSQL; scripts/test always provides one."""


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _fill(audit: AuditLog, store: Store, count: int = 4) -> None:
    for index in range(count):
        await audit.record("system", "escrow.settle", f"task-{index}", {"n": index, "t": 'é"\n'})


async def _tamper(engine: AsyncEngine, kind: str, statement: str) -> None:
    """What a superuser can do: switch the guard off, change rows, switch it on again."""
    async with engine.begin() as conn:
        if kind == "postgresql":
            await conn.exec_driver_sql(
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"
            )
            await conn.exec_driver_sql(statement)
            await conn.exec_driver_sql(
                "ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_append_only"
            )
        else:
            await conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
            await conn.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
            await conn.exec_driver_sql(statement)


async def test_entries_form_one_verifiable_chain(engine: AsyncEngine) -> None:
    store = Store(engine)
    audit = AuditLog(store)
    entries = [
        await audit.record("admin:root", "keys.init", "pkcs11", {"created": ["a"], "n": 1}),
        await audit.record("system", "escrow.cancel", "task-1", {"invoice_state": "CANCELED"}),
    ]
    async with store.transaction() as tx:  # several in one transaction
        entries.append(await audit.append(tx, "system", "escrow.payout", "task-2", {"x": "ü"}))
        entries.append(await audit.append(tx, "system", "escrow.settle", "task-2", {}))
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    for entry in entries:  # the database's hash (PostgreSQL) is the one Python computes
        assert entry.hash == entry_hash(
            prev_hash=entry.prev_hash, seq=entry.seq, at=entry.at, actor=entry.actor,
            action=entry.action, subject=entry.subject, details=canonical_details(entry.details),
        )  # fmt: skip
    async with engine.connect() as conn:
        report = await verify_chain(conn)
    assert report.ok and report.rows == 4
    assert report.head is not None and report.head.hash == entries[-1].hash


async def test_a_rolled_back_append_leaves_no_gap(engine: AsyncEngine) -> None:
    store = Store(engine)
    audit = AuditLog(store)
    await audit.record("system", "a", "s")
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await audit.append(tx, "system", "b", "s")
            raise RuntimeError("the transition failed")
    entry = await audit.record("system", "c", "s")
    assert entry.seq == 2
    async with engine.connect() as conn:
        assert (await verify_chain(conn)).ok


async def test_concurrent_writers_extend_one_chain(engine: AsyncEngine) -> None:
    store = Store(engine)
    audit = AuditLog(store)
    await asyncio.gather(*(audit.record("system", "w", f"s{i}", {"i": i}) for i in range(20)))
    async with engine.connect() as conn:
        report = await verify_chain(conn)
    assert report.ok and report.rows == 20


async def test_update_and_delete_are_refused(engine: AsyncEngine, database_kind: str) -> None:
    audit = AuditLog(Store(engine))
    await _fill(audit, Store(engine), 2)
    statements = ["UPDATE audit_log SET actor = 'x' WHERE seq = 1", "DELETE FROM audit_log"]
    if database_kind == "postgresql":
        statements += [
            "TRUNCATE audit_log",
            # ENABLE ALWAYS: replication mode does not silence the guard either
            "SET LOCAL session_replication_role = replica; DELETE FROM audit_log",
        ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                for part in statement.split("; "):
                    await conn.exec_driver_sql(part)
    async with engine.connect() as conn:
        report = await verify_chain(conn)
    assert report.ok and report.rows == 2


async def test_an_edited_row_is_reported(engine: AsyncEngine, database_kind: str) -> None:
    store = Store(engine)
    audit = AuditLog(store)
    await _fill(audit, store, 4)
    details = json.dumps({"n": 1, "t": "changed"})
    await _tamper(
        engine, database_kind, f"UPDATE audit_log SET details = '{details}' WHERE seq = 2"
    )
    async with engine.connect() as conn:
        report = await verify_chain(conn)
    assert report.first_broken is not None and report.first_broken.seq == 2
    assert "changed" in report.first_broken.reason
    verdict = await verify_audit_log(str(engine.url.render_as_string(hide_password=False)))
    assert not verdict.ok
    assert "BROKEN at seq 2" in "\n".join(verdict.lines())


async def test_a_deleted_row_is_reported(engine: AsyncEngine, database_kind: str) -> None:
    store = Store(engine)
    await _fill(AuditLog(store), store, 4)
    await _tamper(engine, database_kind, "DELETE FROM audit_log WHERE seq = 3")
    async with engine.connect() as conn:
        report = await verify_chain(conn)
    assert report.first_broken is not None and report.first_broken.seq == 4
    assert "missing" in report.first_broken.reason


async def test_the_cli_exits_non_zero_on_a_fault(
    engine: AsyncEngine, database_kind: str, tmp_path: Path
) -> None:
    store = Store(engine)
    await _fill(AuditLog(store), store, 3)
    url = engine.url.render_as_string(hide_password=False)
    ok = run_taskhold("audit-log", "verify", "--database-url", url, "--data-dir", str(tmp_path))
    assert "chain: ok" in ok.stdout and "rows: 3" in ok.stdout
    await _tamper(engine, database_kind, "UPDATE audit_log SET subject = 'forged' WHERE seq = 1")
    bad = run_taskhold("audit-log", "verify", "--database-url", url, check=False)
    assert bad.returncode == 1
    assert "BROKEN at seq 1" in bad.stdout


async def test_checkpoints_are_checked(engine: AsyncEngine, database_kind: str) -> None:
    store = Store(engine)
    audit = AuditLog(store)
    operator, stranger = NostrKeys.generate(), NostrKeys.generate()
    await audit.record(
        "system", "config.start", "settings", {"operator_pubkey": operator.pubkey_hex}
    )
    await _fill(audit, store, 3)
    async with engine.connect() as conn:
        head = await read_head(conn)
    assert head is not None
    content, tags = checkpoint_payload(head)
    signed = operator.sign_event(30078, content, tags, 1_700_000_000)
    forged = stranger.sign_event(30078, content, tags, 1_700_000_000)
    url = engine.url.render_as_string(hide_password=False)

    verdict = await verify_audit_log(url, checkpoint_events=[signed])
    assert verdict.ok and [r.ok for r in verdict.checkpoints] == [True]
    verdict = await verify_audit_log(url, checkpoint_events=[forged])
    assert not verdict.ok and "no operator key" in verdict.checkpoints[0].reason

    # a superuser rewrites row 2 and recomputes every hash after it: the chain checks out,
    # the published checkpoint does not
    await _rewrite_consistently(engine, database_kind, seq=2)
    async with engine.connect() as conn:
        assert (await verify_chain(conn)).ok
        results = await verify_checkpoints(conn, [signed], trusted_pubkeys={operator.pubkey_hex})
    assert [r.ok for r in results] == [False]
    assert "differs" in results[0].reason


async def _rewrite_consistently(engine: AsyncEngine, kind: str, seq: int) -> None:
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM audit_log ORDER BY seq"))).all()
    prev, statements = GENESIS_HASH, []
    for row in rows:
        details = row.details if isinstance(row.details, dict) else json.loads(row.details)
        subject = "rewritten" if row.seq == seq else row.subject
        digest = entry_hash(
            prev_hash=prev, seq=row.seq, at=row.at, actor=row.actor, action=row.action,
            subject=subject, details=canonical_details(details),
        )  # fmt: skip
        if row.seq >= seq:
            statements.append(
                f"UPDATE audit_log SET subject = '{subject}', prev_hash = '{prev}', "
                f"hash = '{digest}' WHERE seq = {row.seq}"
            )
        prev = digest
    await _tamper(engine, kind, statements[0])
    async with engine.begin() as conn:
        if kind == "postgresql":
            await conn.exec_driver_sql(
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"
            )
        for statement in statements[1:]:
            await conn.exec_driver_sql(statement)
        if kind == "postgresql":
            await conn.exec_driver_sql(
                "ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_append_only"
            )


async def test_noted_entries_are_flushed_in_order(engine: AsyncEngine) -> None:
    store = Store(engine)
    audit = AuditLog()
    audit.note("operator", "key.sign", "event-1", {"kind": 3910})
    audit.note("system", "key.derive_preimage", "task-1", {"funding_round": 1})
    assert audit.pending == 2
    await audit.record("system", "escrow.settle", "task-1", store=store)  # flushes first
    assert audit.pending == 0
    async with engine.connect() as conn:
        actions = (await conn.execute(text("SELECT action FROM audit_log ORDER BY seq"))).all()
    assert [a for (a,) in actions] == ["key.sign", "key.derive_preimage", "escrow.settle"]


async def test_a_record_writes_the_queued_entries_with_it_in_one_transaction(
    engine: AsyncEngine,
) -> None:
    store = Store(engine)
    opened, count = store.transaction, [0]

    @asynccontextmanager
    async def counted() -> AsyncIterator[Tx]:
        count[0] += 1
        async with opened() as tx:
            yield tx

    store.transaction = counted  # type: ignore[method-assign]
    audit = AuditLog()
    for index in range(3):
        audit.note("operator", "key.sign", f"event-{index}", {"kind": 3910})

    entry = await audit.record("system", "escrow.settle", "task-1", {"n": 1}, store=store)

    assert (count[0], entry.seq, audit.pending) == (1, 4, 0)
    async with engine.connect() as conn:
        report = await verify_chain(conn)
        actions = (await conn.execute(text("SELECT action FROM audit_log ORDER BY seq"))).all()
    assert report.ok and report.rows == 4
    assert [a for (a,) in actions] == ["key.sign"] * 3 + ["escrow.settle"]


async def test_a_failed_record_keeps_the_queued_entries_and_itself_in_order(
    engine: AsyncEngine,
) -> None:
    class Broken:
        def transaction(self):  # type: ignore[no-untyped-def]
            raise ConnectionError("database away")

    audit = AuditLog()
    audit.note("operator", "key.sign", "event-1")
    with pytest.raises(ConnectionError):
        await audit.record("system", "escrow.settle", "task-1", store=Broken())  # type: ignore[arg-type]
    assert audit.pending == 2
    assert await audit.flush(store=Store(engine)) == 2
    async with engine.connect() as conn:
        actions = (await conn.execute(text("SELECT action FROM audit_log ORDER BY seq"))).all()
    assert [a for (a,) in actions] == ["key.sign", "escrow.settle"]


async def test_a_failed_flush_keeps_the_entries(engine: AsyncEngine) -> None:
    class Broken:
        def transaction(self):  # type: ignore[no-untyped-def]
            raise ConnectionError("database away")

    audit = AuditLog()
    audit.note("system", "key.unseal", "operator")
    with pytest.raises(ConnectionError):
        await audit.flush(store=Broken())  # type: ignore[arg-type]
    assert audit.pending == 1
    assert await audit.flush(store=Store(engine)) == 1


@pytest.mark.parametrize("database_kind", POSTGRESQL_ONLY, indirect=True)
async def test_the_application_role_can_only_append(
    engine: AsyncEngine, database_kind: str
) -> None:
    """Roles and grants are PostgreSQL's; SQLite relies on its triggers (tested above)."""
    await _fill(AuditLog(Store(engine)), Store(engine), 2)
    refused = [
        "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) "
        "VALUES (99, 0, 'a', 'b', 'c', '{}', 'x', 'y')",
        "UPDATE audit_log SET actor = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "ALTER TABLE audit_log OWNER TO taskhold_app",
    ]
    for statement in refused:
        with pytest.raises(DBAPIError, match=r"permission denied|must be owner"):
            async with engine.begin() as conn:
                await conn.exec_driver_sql("SET LOCAL ROLE taskhold_app")
                await conn.exec_driver_sql(statement)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("SET LOCAL ROLE taskhold_app")
        entry = await AuditLog().append(conn, "system", "escrow.settle", "task-9", {"ok": True})
        assert entry.seq == 3
        assert (await conn.execute(text("SELECT count(*) FROM audit_log"))).scalar_one() == 3
    async with engine.connect() as conn:
        assert (await verify_chain(conn)).ok


@pytest.mark.parametrize("database_kind", POSTGRESQL_ONLY, indirect=True)
async def test_a_batch_goes_through_the_append_function_in_one_statement(
    engine: AsyncEngine,
) -> None:
    """A write's notes (its signatures) take the journal's advisory lock once, not per note."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if "taskhold_audit_append" in sql:
            statements.append(sql)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    audit = AuditLog()
    for index in range(3):
        audit.note("operator", "key.sign", f"event-{index}", {"kind": 3910, "n": index})
    assert await audit.flush(store=Store(engine)) == 3
    event.remove(engine.sync_engine, "before_cursor_execute", seen)

    async with engine.connect() as conn:
        report = await verify_chain(conn)
        subjects = (await conn.execute(text("SELECT subject FROM audit_log ORDER BY seq"))).all()
    assert len(statements) == 1
    assert report.ok and report.rows == 3
    assert [s for (s,) in subjects] == ["event-0", "event-1", "event-2"]
