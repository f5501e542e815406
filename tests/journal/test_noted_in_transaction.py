"""A key use noted while a write's transaction is open (the signature of its log entry) is
journaled in that transaction's commit, not in a write of its own; and it is never lost: if the
transaction rolls back, the use still happened and the entry is written by the next flush.

Invariant: every noted key use reaches the chain exactly once, whatever the transaction it was
noted in does; the chain stays whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from taskhold.journal.chain import AuditLog, verify_chain
from taskhold.store import Store, create_engine, migrate
from taskhold.store.models import AuditRow


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    await migrate(engine)
    store = Store(engine)
    try:
        yield store
    finally:
        await store.close()


async def _subjects(store: Store) -> list[str]:
    async with store.transaction() as tx:
        rows = await tx.session.execute(select(AuditRow.subject).order_by(AuditRow.seq))
        return [row.subject for row in rows]


async def _rows(store: Store) -> int:
    async with store.transaction() as tx:
        return int((await tx.session.execute(select(func.count()).select_from(AuditRow))).scalar())


async def test_a_note_in_a_transaction_commits_with_it(store: Store) -> None:
    audit = AuditLog(store)
    async with store.transaction():
        audit.note("operator", "key.sign", "event-1", {"kind": 1})
        audit.note("operator", "key.sign", "event-2", {"kind": 1})
        assert audit.pending == 0, "kept for the commit, not queued for a write of its own"
    assert await _subjects(store) == ["event-1", "event-2"]
    assert audit._flusher is None, "no separate flush was scheduled"
    async with store.transaction() as tx:
        assert (await verify_chain(tx.session)).ok


async def test_a_note_in_a_rolled_back_transaction_is_still_journaled(store: Store) -> None:
    """The key was used even though the write did not commit: the entry must not vanish."""
    audit = AuditLog(store)
    with pytest.raises(RuntimeError):
        async with store.transaction():
            audit.note("operator", "key.sign", "event-rolled-back", {})
            raise RuntimeError("the write is refused after signing")
    assert audit._flusher is not None
    await audit._flusher
    assert await _subjects(store) == ["event-rolled-back"]


async def test_notes_after_the_commit_began_and_outside_go_to_the_queue(store: Store) -> None:
    audit = AuditLog(store)
    outside = Store(store.engine)  # another store's transaction is not this journal's
    async with outside.transaction():
        audit.note("operator", "key.sign", "event-outside", {})
        assert audit.pending == 1
    await audit.aclose()
    assert await _subjects(store) == ["event-outside"]

    async with store.transaction() as tx:
        audit.note("operator", "key.sign", "event-in", {})
        await tx.run_before_commit()  # the commit has begun: a later note cannot join it
        audit.note("operator", "key.sign", "event-late", {})
        assert audit.pending == 1
    await audit.aclose()
    assert sorted(await _subjects(store)) == ["event-in", "event-late", "event-outside"]


async def test_concurrent_writers_keep_one_whole_chain(store: Store) -> None:
    """Notes in many concurrent transactions and queued notes from outside any: each is
    written once and the chain verifies."""
    audit = AuditLog(store)

    async def write(index: int) -> None:
        async with store.transaction():
            audit.note("operator", "key.sign", f"in-{index}", {})
            await asyncio.sleep(0)
            audit.note("operator", "key.sign", f"in-{index}-b", {})

    async def noted_outside(index: int) -> None:
        await asyncio.sleep(0)
        audit.note("operator", "key.derive_secret", f"out-{index}", {})

    await asyncio.gather(*(write(i) for i in range(12)), *(noted_outside(i) for i in range(6)))
    await audit.aclose()
    subjects = await _subjects(store)
    assert sorted(subjects) == sorted(
        [f"in-{i}" for i in range(12)] + [f"in-{i}-b" for i in range(12)]
        + [f"out-{i}" for i in range(6)]
    )  # fmt: skip
    assert await _rows(store) == len(subjects)
    async with store.transaction() as tx:
        assert (await verify_chain(tx.session)).ok
