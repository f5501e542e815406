"""What the engine reads from and writes to the operator's switches (``store.controls``).

The operator's console reaches every running engine through the database: ``taskhold admin
reconcile`` bumps ``reconcile_asked`` and each engine, at its next tick, runs one full pass for
a count it has not answered yet, then raises ``reconcile_done`` to it. The engine also keeps
``chain_height`` (once a block, not once a tick), so ``taskhold admin stuck`` sees how near
their margins the holds are without a connection to the node.

A replica that loses the race to write a row's first version leaves it to the winner: both
facts are the same whoever writes them.
"""

from __future__ import annotations

import contextlib

from taskhold.store import Store, WriteConflict
from taskhold.store.controls import (
    CHAIN_HEIGHT,
    RECONCILE_ASKED,
    RECONCILE_DONE,
    read_control,
    set_control,
)
from taskhold.tasks import SYSTEM_ACTOR

__all__ = ["OperatorAsks"]


class OperatorAsks:
    """One engine's view of the switches: the last ask it answered, the last height it wrote."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.answered = 0
        self._height_noted: int | None = None

    async def asked(self) -> int:
        """How many passes the operator has asked for so far (one primary-key read)."""
        async with self.store.transaction() as tx:
            asked = await read_control(tx, RECONCILE_ASKED)
        return 0 if asked is None else asked.value

    async def new_ask(self) -> int | None:
        """The count to answer with a pass, or None if nothing was asked since the last."""
        count = await self.asked()
        return count if count > self.answered else None

    async def answered_with_pass(self, count: int, now: int) -> None:
        self.answered = count
        with contextlib.suppress(WriteConflict):
            async with self.store.transaction() as tx:
                done = await read_control(tx, RECONCILE_DONE, for_update=True)
                if done is None or done.value < count:
                    await set_control(tx, RECONCILE_DONE, count, actor=SYSTEM_ACTOR, now=now)

    async def note_height(self, height: int, now: int) -> None:
        if height == self._height_noted:
            return
        try:
            async with self.store.transaction() as tx:
                await set_control(tx, CHAIN_HEIGHT, height, actor=SYSTEM_ACTOR, now=now)
        except WriteConflict:
            return  # another replica wrote the first row at once: ours at the next block
        self._height_noted = height
