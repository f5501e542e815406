"""The operator's switches (``taskhold admin``), one row each in ``operator_controls``.

| name | value | who reads it |
|---|---|---|
| ``intake_paused`` | 1 while new tasks are refused, 0 after a resume | ``create`` and ``fund`` |
| ``reconcile_asked`` | how many engine passes the operator asked for | each engine, every tick |
| ``reconcile_done`` | the last ask an engine finished a pass for | ``taskhold admin reconcile`` |
| ``chain_height`` | the node's block height an engine last saw | ``taskhold admin stuck`` |

The rows are read inside the transaction that uses them, so a switch is seen by every replica
on its next request or tick, and survives a restart. A bump is one atomic upsert, so two
operators bumping ``reconcile_asked`` at once count twice; a first ``set_control`` of a row two
writers race for ends in a write conflict for one of them, which may simply retry.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .direct import DirectStatement, fetch
from .models import OperatorControlRow
from .repo import Tx

__all__ = [
    "CHAIN_HEIGHT",
    "INTAKE_PAUSED",
    "RECONCILE_ASKED",
    "RECONCILE_DONE",
    "Control",
    "bump_control",
    "read_control",
    "set_control",
]

INTAKE_PAUSED = "intake_paused"
RECONCILE_ASKED = "reconcile_asked"
RECONCILE_DONE = "reconcile_done"
CHAIN_HEIGHT = "chain_height"


@dataclass(frozen=True, slots=True)
class Control:
    value: int
    changed_by: str
    changed_at: int


_READ_STATEMENT = select(
    OperatorControlRow.value, OperatorControlRow.changed_by, OperatorControlRow.changed_at
).where(OperatorControlRow.name == bindparam("name"))
_READ = DirectStatement(_READ_STATEMENT, reads_mapped=True)
"""Built once, run on the driver: every create and fund reads ``intake_paused`` through it."""
_READ_LOCKED = DirectStatement(_READ_STATEMENT.with_for_update(), reads_mapped=True)


def _locking(tx: Tx) -> bool:
    return tx.session.get_bind().dialect.name == "postgresql"


async def read_control(tx: Tx, name: str, *, for_update: bool = False) -> Control | None:
    """The switch as it stands; None if nobody ever set it."""
    stmt = _READ_LOCKED if for_update and _locking(tx) else _READ
    found = await fetch(tx.session, stmt, {"name": name})
    return Control(*found[0]) if found else None


async def set_control(tx: Tx, name: str, value: int, *, actor: str, now: int) -> Control | None:
    """Set the switch; returns what it was before (None: never set). Setting the value it
    already has changes nothing, not even who set it last."""
    row = await tx.session.get(
        OperatorControlRow, name, with_for_update=_locking(tx), populate_existing=True
    )
    if row is None:
        tx.session.add(OperatorControlRow(name=name, value=value, changed_by=actor, changed_at=now))
        await tx.session.flush()
        return None
    before = Control(row.value, row.changed_by, row.changed_at)
    if row.value != value:
        row.value, row.changed_by, row.changed_at = value, actor, now
        await tx.session.flush()
    return before


async def bump_control(tx: Tx, name: str, *, actor: str, now: int) -> int:
    """Add one to the switch (0 if never set) and return the new value.

    One atomic upsert: two bumps at once, even of a row neither has seen yet, count twice
    (a read, then a write, would let both read nothing and both write 1)."""
    row = OperatorControlRow
    insert = pg_insert if _locking(tx) else sqlite_insert
    statement = (
        insert(row)
        .values(name=name, value=1, changed_by=actor, changed_at=now)
        .on_conflict_do_update(
            index_elements=["name"],
            set_={"value": row.value + 1, "changed_by": actor, "changed_at": now},
        )
        .returning(row.value)
    )
    return int((await tx.session.execute(statement)).scalar_one())
