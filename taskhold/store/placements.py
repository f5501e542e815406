"""The escrow pool's placement directory (``taskhold.lightning.pool.Placements``).

One row per payment hash names the pool node that holds the hold invoice or made the payment.
The pool writes it before the node call and it must be committed then, even though the call
often runs inside a request's transaction (``fund`` holds the task row while it asks the node
for the invoice). On PostgreSQL it is the ``placements`` table, written in a transaction of its
own on another connection, shared by every replica. SQLite allows one writer and the request's
transaction holds it, so there the directory is a small SQLite file of its own next to the
database: SQLite runs one process, so nothing else needs to read it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from .repo import Store, WriteConflict

__all__ = ["SIDE_FILE", "StorePlacements"]

SIDE_FILE = "placements.sqlite3"
"""The directory's file in the data directory when the database is SQLite."""


class StorePlacements:
    """Bound to the store once it exists (the backend is opened before the database)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._store: Store | None = None
        self._side: sqlite3.Connection | None = None
        self._clock = clock

    def bind(self, store: Store, data_dir: Path) -> None:
        self._store = store
        if store.dialect == "sqlite":
            self._side = sqlite3.connect(data_dir / SIDE_FILE, isolation_level=None)
            self._side.execute(
                "CREATE TABLE IF NOT EXISTS placements (payment_hash_hex TEXT PRIMARY KEY,"
                " node TEXT NOT NULL, created_at INTEGER NOT NULL)"
            )

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the placement directory is used before its store is bound")
        return self._store

    async def node_of(self, payment_hash: bytes) -> str | None:
        if self._side is not None:
            row = self._side.execute(
                "SELECT node FROM placements WHERE payment_hash_hex = ?", (payment_hash.hex(),)
            ).fetchone()
            return None if row is None else str(row[0])
        async with self.store.transaction() as tx:
            return await tx.placement_of(payment_hash.hex())

    async def place(self, payment_hash: bytes, node: str) -> str:
        if self._side is not None:
            self._side.execute(
                "INSERT OR IGNORE INTO placements VALUES (?, ?, ?)",
                (payment_hash.hex(), node, int(self._clock())),
            )
            placed = await self.node_of(payment_hash)
            assert placed is not None
            return placed
        try:
            async with self.store.transaction() as tx:
                return await tx.place(payment_hash.hex(), node, int(self._clock()))
        except WriteConflict:  # another replica placed it first: its choice stands
            placed = await self.node_of(payment_hash)
            if placed is None:
                raise
            return placed

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = None
