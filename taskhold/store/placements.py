"""The escrow pool's placement directory in the database (``taskhold.lightning.pool``).

One row per payment hash names the pool node that holds the hold invoice or made the payment.
The pool writes it before the node call, in its own committed transaction, so every replica
and every retry after a crash sends that hash to the same node.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .repo import Store, WriteConflict

__all__ = ["StorePlacements"]


class StorePlacements:
    """Satisfies ``taskhold.lightning.pool.Placements``; bound to the store once it exists
    (the backend is opened before the database)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._store: Store | None = None
        self._clock = clock

    def bind(self, store: Store) -> None:
        self._store = store

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the placement directory is used before its store is bound")
        return self._store

    async def node_of(self, payment_hash: bytes) -> str | None:
        async with self.store.transaction() as tx:
            return await tx.placement_of(payment_hash.hex())

    async def place(self, payment_hash: bytes, node: str) -> str:
        try:
            async with self.store.transaction() as tx:
                return await tx.place(payment_hash.hex(), node, int(self._clock()))
        except WriteConflict:  # another replica placed it first: its choice stands
            placed = await self.node_of(payment_hash)
            if placed is None:
                raise
            return placed
