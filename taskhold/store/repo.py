"""Repositories over one database transaction: the only code that writes rows.

``Store.transaction()`` opens a transaction; the :class:`Tx` it yields loads tasks (locking the
row on PostgreSQL), appends events with the ``(task_id, version)`` guard, and keeps the replay
and idempotency records in the same commit as the transition they belong to.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from taskhold.errors import Conflict, RefusalCode
from taskhold.tasks.due import deposit_expiry_height, hold_margin, timer_due_at
from taskhold.tasks.events import Event, event_to_dict
from taskhold.tasks.machine import evolve
from taskhold.tasks.model import FUNDED_STATES, DepositState, Task, TaskState
from taskhold.tasks.rounds import rounds_to_cancel

from .codec import task_from_data, task_to_data
from .db import is_sqlite
from .direct import DirectStatement, fetch, run
from .models import (
    DelistedTaskRow,
    DepositPayoutRow,
    EngineLeaseRow,
    IdempotencyRow,
    InvoiceRow,
    LogEntryRow,
    PayoutRow,
    PlacementRow,
    RefundPayoutRow,
    RequestEventRow,
    TaskRow,
    TransitionRow,
    table_of,
)

__all__ = [
    "Store",
    "StoredResponse",
    "TransitionLog",
    "Tx",
    "WriteConflict",
    "open_transaction",
]

_OPEN_TX: ContextVar[Tx | None] = ContextVar("taskhold_open_tx", default=None)


def open_transaction() -> Tx | None:
    """The transaction the running code is inside, if any: what it notes (a key use) can be
    written in the same commit instead of a transaction of its own."""
    return _OPEN_TX.get()


class WriteConflict(Conflict):
    """Another writer changed the task first; the caller may decide again on fresh state."""

    code = RefusalCode.WRITE_CONFLICT


@dataclass(frozen=True, slots=True)
class StoredResponse:
    fingerprint: str
    status_code: int
    body: dict[str, Any]


def pending_action(task: Task) -> str | None:
    """The Lightning action a task waits for, kept in an indexed column for the engine."""
    if task.refund_ordered:
        return "refund"
    if task.release_pending:
        return "release"
    if rounds_to_cancel(task):
        return "rounds"
    if task.waits_for_previous_milestone or task.awaits_series_worker:
        return "series"
    return None


def deposit_action(task: Task) -> str | None:
    """What the escrow engine owes the task's deposits: ``return`` and ``payout`` are Lightning
    steps, ``hold`` means a deposit is open or held and must be watched and guarded."""
    actions = {deposit.pending_action for deposit in task.deposits}
    for action in ("return", "payout"):
        if action in actions:
            return action
    return "hold" if any(deposit.is_live for deposit in task.deposits) else None


def projection_values(task: Task) -> dict[str, Any]:
    """The ``tasks`` row of a task, apart from its id."""
    return {
        "version": task.version,
        "state": task.state.value,
        "employer_pubkey": task.employer_pubkey,
        "worker_pubkey": task.worker_pubkey,
        "payment_hash_hex": task.payment_hash_hex,
        "amount_msat": task.amount_msat,
        "pending_action": pending_action(task),
        "deposit_action": deposit_action(task),
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "data": task_to_data(task),
        **due_values(task),
    }


def due_values(task: Task) -> dict[str, Any]:
    """The indexed columns the engine's tick selects due tasks by (``taskhold.tasks.due``)."""
    margin = hold_margin(task)
    return {
        "timer_due_at": timer_due_at(task),
        "hold_margin": margin,
        "hold_expiry_height": None if margin is None else task.accepted_htlc_expiry_height,
        "deposit_expiry_height": deposit_expiry_height(task),
    }


def engine_work(values: dict[str, Any]) -> tuple[object, ...]:
    """What the escrow engine's pass selects a task by, out of its ``tasks`` row values
    (:func:`projection_values`): the Lightning action owed, a deposit's return or payout, and
    the due figures. A write that leaves these as they were gives a pass nothing it would not
    have found before, so the write need not wake one (:attr:`Tx.wakes_engine`); the pass at
    the engine's tick still runs whatever comes due with time or block height."""
    deposits = values["deposit_action"]
    return (
        values["pending_action"],
        deposits if deposits in _OWED_DEPOSIT_ACTIONS else None,
        values["timer_due_at"],
        values["hold_margin"],
        values["hold_expiry_height"],
        values["deposit_expiry_height"],
    )


_OWED_DEPOSIT_ACTIONS = ("return", "payout")
"""The deposit actions a pass selects (``task_ids_deposits_due``); ``hold`` alone it does not."""

NO_ENGINE_WORK = (None,) * 6
""":func:`engine_work` of a task that does not exist yet."""


def engine_work_of(task: Task) -> tuple[object, ...]:
    return engine_work(
        {
            "pending_action": pending_action(task),
            "deposit_action": deposit_action(task),
            **due_values(task),
        }
    )


class TransitionLog(Protocol):
    """The public log writer as the store sees it (``taskhold.publiclog.writer.LogWriter``):
    it signs each transition and listing inside the transaction that records them."""

    async def record_all(
        self,
        session: AsyncSession,
        steps: Sequence[tuple[Task, Event, dict[str, Any] | None]],
    ) -> list[dict[str, Any]]: ...

    async def record_listing(self, session: AsyncSession, task: Task) -> dict[str, Any]: ...


# The statements every write runs, built once and run on the driver (``.direct``): each is
# compiled once per dialect, and values travel as parameters.
_TASKS = table_of(TaskRow)
_LOAD_TASK_STATEMENT = select(TaskRow.data).where(TaskRow.task_id == bindparam("task_id"))
_LOAD_TASK = DirectStatement(_LOAD_TASK_STATEMENT, reads_mapped=True)
_LOAD_TASK_LOCKED = DirectStatement(_LOAD_TASK_STATEMENT.with_for_update(), reads_mapped=True)
_INSERT_TASK = DirectStatement(insert(_TASKS))
_UPDATE_TASK = DirectStatement(
    update(_TASKS).where(
        _TASKS.c.task_id == bindparam("at_task_id"), _TASKS.c.version == bindparam("at_version")
    )
)
_INSERT_TRANSITIONS = DirectStatement(insert(table_of(TransitionRow)))
_LOG_HEAD_OF = DirectStatement(
    select(LogEntryRow.event_id)
    .where(LogEntryRow.task_id == bindparam("task_id"))
    .order_by(LogEntryRow.seq.desc())
    .limit(1),
    reads_mapped=True,
)
_REQUEST_SEEN = DirectStatement(
    select(RequestEventRow.event_id).where(RequestEventRow.event_id == bindparam("event_id")),
    reads_mapped=True,
)
_INSERT_REQUEST = DirectStatement(insert(table_of(RequestEventRow)))
_STORED_RESPONSE = DirectStatement(
    select(
        IdempotencyRow.request_fingerprint, IdempotencyRow.status_code, IdempotencyRow.response
    ).where(IdempotencyRow.pubkey == bindparam("pubkey"), IdempotencyRow.key == bindparam("key")),
    reads_mapped=True,
)
_INSERT_RESPONSE = DirectStatement(insert(table_of(IdempotencyRow)))

HOLDING_STATES = (TaskState.PENDING_FUNDING, *sorted(FUNDED_STATES))
"""States whose task has a hold invoice open on the node: unpaid, or paid and held."""


@dataclass(frozen=True, slots=True)
class HoldCommitments:
    """Hold invoices of open tasks, counted and summed (see :meth:`Tx.hold_commitments`)."""

    awaiting_count: int = 0
    awaiting_msat: int = 0
    held_count: int = 0
    held_msat: int = 0
    key_count: int = 0
    key_msat: int = 0

    def plus(
        self, *, awaiting: bool, count: int, msat: int, key_count: int, key_msat: int
    ) -> HoldCommitments:
        return HoldCommitments(
            awaiting_count=self.awaiting_count + (count if awaiting else 0),
            awaiting_msat=self.awaiting_msat + (msat if awaiting else 0),
            held_count=self.held_count + (0 if awaiting else count),
            held_msat=self.held_msat + (0 if awaiting else msat),
            key_count=self.key_count + key_count,
            key_msat=self.key_msat + key_msat,
        )


class Store:
    """Owns the engine and hands out transactions. With a ``log`` writer every transition is
    also signed into the public log in the same transaction."""

    def __init__(self, engine: AsyncEngine, *, log: TransitionLog | None = None) -> None:
        self.engine = engine
        self.dialect = "sqlite" if is_sqlite(str(engine.url)) else "postgresql"
        self.log = log
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._sqlite_turn = asyncio.Lock() if self.dialect == "sqlite" else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One atomic unit: everything in it commits together or not at all."""
        if self._sqlite_turn is None:
            async with self._transaction() as tx:
                yield tx
            return
        # SQLite allows one writer; queueing here is fair and fast, where waiting on the file
        # lock polls with growing sleeps. Correctness still rests on BEGIN IMMEDIATE and keys.
        async with self._sqlite_turn, self._transaction() as tx:
            yield tx

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Tx]:
        async with self._sessions() as session:
            tx = Tx(session, lock_rows=self.dialect == "postgresql", log=self.log, origin=self)
            token = _OPEN_TX.set(tx)
            try:
                async with session.begin():
                    yield tx
                    await tx.write_log()
                    await tx.run_before_commit()
            except IntegrityError as exc:
                tx.rolled_back()
                raise WriteConflict("someone else changed this task at the same time") from exc
            except BaseException:
                tx.rolled_back()
                raise
            finally:
                _OPEN_TX.reset(token)

    async def close(self) -> None:
        await self.engine.dispose()


class Tx:
    """Reads and writes inside one transaction."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        lock_rows: bool,
        log: TransitionLog | None = None,
        origin: object = None,
    ) -> None:
        self.session = session
        self.origin = origin
        """The store that opened this transaction (None when built by hand)."""
        self._lock_rows = lock_rows
        self._log = log
        self._before_commit: list[Callable[[Tx], Awaitable[None]]] = []
        self._after_rollback: list[Callable[[], None]] = []
        self._closing = False
        self._hooks_lock = threading.Lock()  # notes may come from a signer's thread
        self._unlogged: list[tuple[Task, Event, dict[str, Any] | None]] = []
        self._logged_heads: dict[str, str] = {}
        self.wakes_engine = False
        """A task this transaction wrote now owes the escrow engine other work than before
        (:func:`engine_work`): a Lightning action, a due time or a hold to guard. A request
        wakes the engine only then; a pass after any other write would find what the last
        one found."""

    # commit hooks ----------------------------------------------------------------------------

    def before_commit(
        self, write: Callable[[Tx], Awaitable[None]], undo: Callable[[], None]
    ) -> bool:
        """Run ``write`` inside this transaction just before it commits, or ``undo`` if it
        rolls back instead. False (and nothing registered) once the commit has begun: the
        caller writes elsewhere."""
        with self._hooks_lock:
            if self._closing:
                return False
            self._before_commit.append(write)
            self._after_rollback.append(undo)
            return True

    async def run_before_commit(self) -> None:
        with self._hooks_lock:
            self._closing = True
            hooks, self._before_commit = self._before_commit, []
        for write in hooks:
            await write(self)

    def rolled_back(self) -> None:
        with self._hooks_lock:
            self._closing = True
            undo, self._after_rollback = self._after_rollback, []
        for hook in undo:
            hook()

    # tasks ---------------------------------------------------------------------------------

    async def load_task(self, task_id: str, *, for_update: bool = False) -> Task | None:
        stmt = _LOAD_TASK_LOCKED if for_update and self._lock_rows else _LOAD_TASK
        found = await fetch(self.session, stmt, {"task_id": task_id})
        return task_from_data(found[0][0]) if found else None

    async def append(
        self,
        task: Task | None,
        events: Sequence[Event],
        *,
        request: dict[str, Any] | None = None,
    ) -> Task:
        """Apply ``events`` to ``task`` and record them; returns the new task.

        The participant's signed ``request`` is embedded in the first transition it caused.
        """
        if not events:
            if task is None:
                raise ValueError("nothing to append to a task that does not exist")
            return task
        current = task
        transitions: list[dict[str, Any]] = []
        steps: list[tuple[Task, Event, dict[str, Any] | None]] = []
        for index, event in enumerate(events):
            current = evolve(current, event)
            caused_by = request if index == 0 else None
            transitions.append(
                {
                    "task_id": current.task_id,
                    "version": current.version,
                    "event_type": type(event).__name__,
                    "actor": event.actor,
                    "at": event.at,
                    "state_after": current.state.value,
                    "event": event_to_dict(event),
                    "request": caused_by,
                }
            )
            steps.append((current, event, caused_by))
        assert current is not None
        # Core statements, one per table: a conflicting (task_id, version) fails right here.
        await run(self.session, _INSERT_TRANSITIONS, transitions)
        if self._log is not None:
            await self._log.record_listing(self.session, current)
            self._unlogged.extend(steps)  # signed by write_log, as late as can be
        await self._save_projection(task, current)
        await self.session.flush()  # what a handler added through the ORM, if anything
        return current

    async def write_log(self) -> None:
        """Sign and store the public log entries of the transitions appended so far.

        Called when the transaction is about to commit, or earlier by whatever reads the log
        (:meth:`log_head`). The entries lock the log's one head row (PostgreSQL) until the
        commit: signing them last keeps every other statement of the write, and its round
        trip, out of that lock, which all writers queue for."""
        if not self._unlogged or self._log is None:
            return
        steps, self._unlogged = self._unlogged, []
        signed = await self._log.record_all(self.session, steps)
        for (task, _event, _request), entry in zip(steps, signed, strict=True):
            self._logged_heads[task.task_id] = entry["id"]

    async def _save_projection(self, before: Task | None, after: Task) -> None:
        """Insert the ``tasks`` row, or update it only from the version ``before`` was read
        at: a row another writer moved on updates nothing, and that is a conflict."""
        values = projection_values(after)
        before_work = NO_ENGINE_WORK if before is None else engine_work_of(before)
        if engine_work(values) != before_work:
            self.wakes_engine = True
        if before is None:
            await run(self.session, _INSERT_TASK, {"task_id": after.task_id, **values})
            return
        saved = await run(
            self.session,
            _UPDATE_TASK,
            {"at_task_id": after.task_id, "at_version": before.version, **values},
        )
        if saved != 1:
            raise WriteConflict("someone else changed this task at the same time")

    async def list_tasks(
        self,
        *,
        state: TaskState | None = None,
        employer: str | None = None,
        worker: str | None = None,
        limit: int = 50,
        before: int | None = None,
        before_id: str | None = None,
        listed_only: bool = False,
    ) -> list[Task]:
        """Newest first, ties by task id; ``listed_only`` leaves out the tasks the operator
        delisted. The cursor is the last row's (``created_at``, ``task_id``): with ``before``
        alone the page starts below that second; with ``before_id`` too it goes on inside the
        same second, after that task, so tasks made in one second are neither skipped nor
        repeated at a page boundary."""
        stmt = select(TaskRow).order_by(TaskRow.created_at.desc(), TaskRow.task_id).limit(limit)
        if listed_only:
            delisted = select(DelistedTaskRow.task_id).where(
                DelistedTaskRow.task_id == TaskRow.task_id
            )
            stmt = stmt.where(~delisted.exists())
        if state is not None:
            stmt = stmt.where(TaskRow.state == state.value)
        if employer is not None:
            stmt = stmt.where(TaskRow.employer_pubkey == employer)
        if worker is not None:
            stmt = stmt.where(TaskRow.worker_pubkey == worker)
        if before is not None and before_id is not None:
            stmt = stmt.where(
                (TaskRow.created_at < before)
                | ((TaskRow.created_at == before) & (TaskRow.task_id > before_id))
            )
        elif before is not None:
            stmt = stmt.where(TaskRow.created_at < before)
        rows = (await self.session.execute(stmt)).scalars()
        return [task_from_data(row.data) for row in rows]

    async def task_ids_pending(self, action: str) -> list[str]:
        """Tasks the escrow engine owes a ``release`` or a ``refund``."""
        stmt = select(TaskRow.task_id).where(TaskRow.pending_action == action)
        return list((await self.session.execute(stmt)).scalars())

    async def task_ids_timer_due(self, now: int) -> list[str]:
        """Tasks whose next timer has run out by ``now`` (the ``timer_due_at`` index)."""
        stmt = select(TaskRow.task_id).where(TaskRow.timer_due_at <= now)
        return list((await self.session.execute(stmt)).scalars())

    async def task_ids_hold_due(self, height: int, margins: dict[str, int]) -> list[str]:
        """Tasks whose held HTLC is within its margin (blocks, by ``hold_margin``) of expiry
        at ``height``: one range of the ``ix_tasks_hold_due`` index per margin."""
        stmt = select(TaskRow.task_id).where(
            or_(
                *(
                    (TaskRow.hold_margin == margin)
                    & (TaskRow.hold_expiry_height <= height + blocks)
                    for margin, blocks in sorted(margins.items())
                )
            )
        )
        return list((await self.session.execute(stmt)).scalars())

    async def task_ids_deposits_due(self, height: int | None, guard_blocks: int) -> list[str]:
        """Tasks owing a deposit a return or a payout, and, at a known ``height``, those with a
        deposit hold within ``guard_blocks`` of expiry."""
        due: ColumnElement[bool] = TaskRow.deposit_action.in_(["return", "payout"])
        if height is not None:
            due = or_(due, TaskRow.deposit_expiry_height <= height + guard_blocks)
        stmt = select(TaskRow.task_id).where(due)
        return list((await self.session.execute(stmt)).scalars())

    async def task_ids_with_deposits(self) -> list[str]:
        """Tasks with a deposit the escrow engine must watch, return or pay out."""
        stmt = select(TaskRow.task_id).where(TaskRow.deposit_action.is_not(None))
        return list((await self.session.execute(stmt)).scalars())

    async def open_invoices_of(self, pubkey: str, *, besides: str) -> int:
        """Unpaid invoices ``pubkey`` has open on tasks other than ``besides``: the tasks it
        must fund (PENDING_FUNDING) and its OPEN deposits."""
        awaiting = select(func.count()).where(
            TaskRow.employer_pubkey == pubkey,
            TaskRow.state == TaskState.PENDING_FUNDING.value,
            TaskRow.task_id != besides,
        )
        count = int((await self.session.execute(awaiting)).scalar_one())
        with_deposits = select(TaskRow.data).where(
            TaskRow.deposit_action.is_not(None), TaskRow.task_id != besides
        )
        for data in (await self.session.execute(with_deposits)).scalars():
            count += sum(
                1
                for deposit in task_from_data(data).deposits
                if deposit.depositor == pubkey and deposit.state is DepositState.OPEN
            )
        return count

    async def hold_commitments(self, pubkey: str) -> HoldCommitments:
        """What the escrow node's channels owe tasks now: the hold invoices issued and not yet
        paid (PENDING_FUNDING) and those whose HTLC is held (``FUNDED_STATES``), in all and for
        ``pubkey`` as employer."""
        own = TaskRow.employer_pubkey == pubkey
        counted = (
            select(
                TaskRow.state,
                func.count(),
                func.coalesce(func.sum(TaskRow.amount_msat), 0),
                func.coalesce(func.sum(case((own, 1), else_=0)), 0),
                func.coalesce(func.sum(case((own, TaskRow.amount_msat), else_=0)), 0),
            )
            .where(TaskRow.state.in_([s.value for s in HOLDING_STATES]))
            .group_by(TaskRow.state)
        )
        figures = HoldCommitments()
        for state, count, msat, key_count, key_msat in await self.session.execute(counted):
            figures = figures.plus(
                awaiting=state == TaskState.PENDING_FUNDING.value,
                count=int(count),
                msat=int(msat),
                key_count=int(key_count),
                key_msat=int(key_msat),
            )
        return figures

    async def count_in(self, states: Sequence[TaskState]) -> dict[TaskState, int]:
        """How many tasks are in each of ``states`` (0 for none): one grouped count over the
        state index, for the metrics."""
        stmt = (
            select(TaskRow.state, func.count())
            .where(TaskRow.state.in_([s.value for s in states]))
            .group_by(TaskRow.state)
        )
        counted = {TaskState(state): int(n) for state, n in await self.session.execute(stmt)}
        return {state: counted.get(state, 0) for state in states}

    # placements on the nodes of an escrow pool -------------------------------------------------

    async def placement_of(self, payment_hash_hex: str) -> str | None:
        """The pool node that holds this hold invoice or made this payment, if placed."""
        row = await self.session.get(PlacementRow, payment_hash_hex)
        return None if row is None else row.node

    async def place(self, payment_hash_hex: str, node: str, now: int) -> str:
        """Place the hash on ``node`` unless it is placed already; returns where it is. Two
        writers at once: the primary key lets one commit (the other gets ``WriteConflict``)."""
        placed = await self.placement_of(payment_hash_hex)
        if placed is not None:
            return placed
        self.session.add(PlacementRow(payment_hash_hex=payment_hash_hex, node=node, created_at=now))
        await self.session.flush()
        return node

    async def task_ids_in(self, states: Sequence[TaskState]) -> list[str]:
        stmt = select(TaskRow.task_id).where(TaskRow.state.in_([s.value for s in states]))
        return list((await self.session.execute(stmt)).scalars())

    async def transitions(self, task_id: str) -> list[TransitionRow]:
        stmt = (
            select(TransitionRow)
            .where(TransitionRow.task_id == task_id)
            .order_by(TransitionRow.version)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def log_head(self, task_id: str) -> str | None:
        """Id of the task's newest public log entry: what a worker's proof must reference."""
        await self.write_log()
        if task_id in self._logged_heads:  # signed in this transaction: no read needed
            return self._logged_heads[task_id]
        found = await fetch(self.session, _LOG_HEAD_OF, {"task_id": task_id})
        return found[0][0] if found else None

    async def count_transitions(self, task_id: str) -> int:
        stmt = select(func.count()).where(TransitionRow.task_id == task_id)
        return int((await self.session.execute(stmt)).scalar_one())

    # replay and idempotency ------------------------------------------------------------------

    async def request_seen(self, event_id: str) -> bool:
        return bool(await fetch(self.session, _REQUEST_SEEN, {"event_id": event_id}))

    async def record_request(
        self, *, event_id: str, pubkey: str, op: str, task_id: str, at: int
    ) -> None:
        """Remember a signed request; a second insert of the same id fails the transaction."""
        await run(
            self.session,
            _INSERT_REQUEST,
            {
                "event_id": event_id,
                "pubkey": pubkey,
                "op": op,
                "task_id": task_id,
                "received_at": at,
            },
        )

    async def stored_response(self, pubkey: str, key: str) -> StoredResponse | None:
        found = await fetch(self.session, _STORED_RESPONSE, {"pubkey": pubkey, "key": key})
        return StoredResponse(*found[0]) if found else None

    async def store_response(
        self,
        pubkey: str,
        key: str,
        fingerprint: str,
        status_code: int,
        body: dict[str, Any],
        at: int,
    ) -> None:
        await run(
            self.session,
            _INSERT_RESPONSE,
            {
                "pubkey": pubkey,
                "key": key,
                "request_fingerprint": fingerprint,
                "status_code": status_code,
                "response": body,
                "created_at": at,
            },
        )

    # invoices and payouts --------------------------------------------------------------------

    async def get_invoice(self, payment_hash_hex: str) -> InvoiceRow | None:
        return await self.session.get(InvoiceRow, payment_hash_hex)

    async def put_invoice(self, row: InvoiceRow) -> None:
        await self.session.merge(row)

    async def get_payout(self, task_id: str, funding_round: int) -> PayoutRow | None:
        return await self.session.get(PayoutRow, (task_id, funding_round))

    async def put_payout(self, row: PayoutRow) -> None:
        await self.session.merge(row)

    async def get_refund_payout(self, task_id: str, funding_round: int) -> RefundPayoutRow | None:
        return await self.session.get(RefundPayoutRow, (task_id, funding_round))

    async def put_refund_payout(self, row: RefundPayoutRow) -> None:
        await self.session.merge(row)

    async def get_deposit_payout(self, deposit_hash_hex: str) -> DepositPayoutRow | None:
        return await self.session.get(DepositPayoutRow, deposit_hash_hex)

    async def put_deposit_payout(self, row: DepositPayoutRow) -> None:
        await self.session.merge(row)

    async def issued_hold_hash(self, payment_hash_hex: str) -> bool:
        """Whether taskhold issued a hold invoice with this hash (any task's funding round, any
        deposit): paying it would pay the escrow node's own held money around in a circle."""
        if await self.session.get(InvoiceRow, payment_hash_hex) is not None:
            return True
        stmt = select(TaskRow.task_id).where(TaskRow.payment_hash_hex == payment_hash_hex)
        return (await self.session.execute(stmt.limit(1))).first() is not None

    async def payout_owners(self, payment_hash_hex: str) -> set[str]:
        """Who already pays this hash: ``task/<id>`` for a reward payout or a split's worker
        share (any round), ``refund/<id>`` for a split's employer share, ``deposit/<deposit
        hash>`` for a forfeited deposit's payout."""
        tasks = select(PayoutRow.task_id).where(PayoutRow.payment_hash_hex == payment_hash_hex)
        deposits = select(DepositPayoutRow.deposit_hash_hex).where(
            DepositPayoutRow.payment_hash_hex == payment_hash_hex
        )
        owners = {f"task/{task_id}" for task_id in (await self.session.execute(tasks)).scalars()}
        owners |= {f"deposit/{h}" for h in (await self.session.execute(deposits)).scalars()}
        refunds = select(RefundPayoutRow.task_id).where(
            RefundPayoutRow.payment_hash_hex == payment_hash_hex
        )
        owners |= {f"refund/{t}" for t in (await self.session.execute(refunds)).scalars()}
        return owners

    # engine leases (replicas) ----------------------------------------------------------------

    async def claim_lease(self, key: str, owner: str, *, now_ms: int, until_ms: int) -> bool:
        """Take ``key`` for ``owner`` until ``until_ms``, or extend it: True unless another
        owner holds it unexpired. Each statement is atomic on its row, so of two replicas
        claiming one free key exactly one wins (the insert's conflict, or the update's
        re-checked condition once the other's row lock is released)."""
        insert = pg_insert if self._lock_rows else sqlite_insert
        added = await self.session.execute(
            insert(EngineLeaseRow)
            .values(lease_key=key, owner=owner, expires_at=until_ms)
            .on_conflict_do_nothing(index_elements=["lease_key"])
        )
        if added.rowcount == 1:  # type: ignore[attr-defined]
            return True
        taken = await self.session.execute(
            update(EngineLeaseRow)
            .where(
                EngineLeaseRow.lease_key == key,
                or_(EngineLeaseRow.owner == owner, EngineLeaseRow.expires_at <= now_ms),
            )
            .values(owner=owner, expires_at=until_ms)
        )
        return bool(taken.rowcount == 1)  # type: ignore[attr-defined]

    async def release_lease(self, key: str, owner: str) -> None:
        """Give ``key`` up, if ``owner`` still holds it."""
        await self.session.execute(
            delete(EngineLeaseRow).where(
                EngineLeaseRow.lease_key == key, EngineLeaseRow.owner == owner
            )
        )

    async def lease_owner(self, key: str) -> EngineLeaseRow | None:
        return await self.session.get(EngineLeaseRow, key)
