"""The append-only, hash-chained audit log of security-relevant actions.

Every key use (preimage derivation, signature, unseal), settle, cancel, payout, admin action and
configuration change is one row: ``seq``, ``at``, ``actor``, ``action``, ``subject``, ``details``,
``prev_hash`` and ``hash = sha256(frame(version) | prev_hash | seq | at | frame(actor) |
frame(action) | frame(subject) | frame(canonical details))`` (see :func:`entry_hash`), so changing,
inserting or deleting a row breaks the chain from that row on.

On PostgreSQL the application cannot write the table at all: rows are appended only by the
``SECURITY DEFINER`` function ``taskhold_audit_append`` (migration 0003), which computes ``seq``,
``at`` and both hashes itself under an advisory lock, and triggers refuse UPDATE, DELETE and
TRUNCATE even for the owner. On SQLite this module keeps the chain inside the writer's
``BEGIN IMMEDIATE`` transaction. A superuser can still rewrite the chain end to end; the signed
checkpoints (:mod:`taskhold.journal.checkpoints`) published outside the database catch that.

Nothing secret is ever passed in: details hold ids, hashes and public keys only.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import json
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from taskhold.store import Tx, open_transaction
from taskhold.store.models import AuditRow, table_of
from taskhold.tasks import SYSTEM_ACTOR

__all__ = [
    "GENESIS_HASH",
    "HASH_VERSION",
    "AuditEntry",
    "AuditHead",
    "AuditLog",
    "ChainFault",
    "ChainReport",
    "admin_actor",
    "canonical_details",
    "entry_hash",
    "read_head",
    "verify_chain",
]

HASH_VERSION = "taskhold/audit/v1"
GENESIS_HASH = "0" * 64
APPEND_FUNCTION = "taskhold_audit_append"

log = structlog.get_logger("taskhold.audit")

Executor = AsyncSession | AsyncConnection


class _HasSession(Protocol):
    @property
    def session(self) -> AsyncSession: ...


class _Transactions(Protocol):
    def transaction(self) -> contextlib.AbstractAsyncContextManager[_HasSession]: ...


def admin_actor(name: str | None = None) -> str:
    """Who an operator's command acts as in the journal: ``admin:`` and the name given, else
    the user running it."""
    return f"admin:{name or getpass.getuser()}"


def canonical_details(details: Mapping[str, Any]) -> str:
    """The one JSON spelling of ``details`` that is hashed (sorted keys, no spaces, UTF-8)."""
    return json.dumps(
        details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _frame(value: str) -> bytes:
    data = value.encode()
    return len(data).to_bytes(4, "big") + data


def entry_hash(
    *, prev_hash: str, seq: int, at: int, actor: str, action: str, subject: str, details: str
) -> str:
    """The row hash; ``details`` is the canonical JSON text. Mirrored in SQL by migration 0003."""
    material = b"".join(
        [
            _frame(HASH_VERSION),
            bytes.fromhex(prev_hash),
            seq.to_bytes(8, "big", signed=True),
            at.to_bytes(8, "big", signed=True),
            _frame(actor),
            _frame(action),
            _frame(subject),
            _frame(details),
        ]
    )
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: int
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditHead:
    seq: int
    hash: str
    at: int


@dataclass(frozen=True, slots=True)
class ChainFault:
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    rows: int
    head: AuditHead | None
    first_broken: ChainFault | None

    @property
    def ok(self) -> bool:
        return self.first_broken is None


@dataclass(frozen=True, slots=True)
class _Pending:
    actor: str
    action: str
    subject: str
    details: dict[str, Any]


@dataclass(slots=True)
class _Noted:
    """What was noted inside one open transaction, written just before it commits."""

    items: list[_Pending] = field(default_factory=list)
    taken: bool = False


class _Unread:
    """The chain's head is not read yet (``None`` is an empty chain)."""


UNREAD = _Unread()


def _executor(tx_or_session: object) -> Executor:
    if isinstance(tx_or_session, AsyncSession | AsyncConnection):
        return tx_or_session
    session = getattr(tx_or_session, "session", None)
    if isinstance(session, AsyncSession):
        return session
    raise TypeError(f"need a Tx, AsyncSession or AsyncConnection, not {type(tx_or_session)}")


def _dialect(executor: Executor) -> str:
    if isinstance(executor, AsyncConnection):
        return executor.dialect.name
    return executor.get_bind().dialect.name


class AuditLog:
    """Appends to the audit log; ``note`` queues from synchronous code (signer, key store)."""

    def __init__(
        self, store: _Transactions | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._clock = clock
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self._flusher: asyncio.Task[int] | None = None
        self._in_tx: weakref.WeakKeyDictionary[Tx, _Noted] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"AuditLog(pending={len(self._pending)})"

    def bind(self, store: _Transactions) -> None:
        """Give a log built before the store (the signer needs it first) its store."""
        self._store = store
        self._schedule_flush()

    async def record_config_start(self, digest: str, summary: Mapping[str, Any]) -> AuditEntry:
        """A start of the server: the settings digest, and whether it changed since last time."""
        target = self._store
        if target is None:
            raise RuntimeError("AuditLog.record_config_start needs a bound store")
        async with target.transaction() as tx:
            previous = (
                await _executor(tx).execute(
                    select(AuditRow.details)
                    .where(AuditRow.action == "config.start")
                    .order_by(AuditRow.seq.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        before = previous.get("digest") if isinstance(previous, dict) else None
        details = {**summary, "digest": digest, "previous_digest": before}
        details["changed"] = before is not None and before != digest
        return await self.record(SYSTEM_ACTOR, "config.start", "settings", details)

    async def append(
        self,
        tx_or_session: object,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one row inside the caller's transaction: it commits or rolls back with it."""
        executor = _executor(tx_or_session)
        body = canonical_details(details or {})
        if _dialect(executor) == "postgresql":
            return await self._append_pg(executor, actor, action, subject, body)
        return await self._append_app_chained(executor, actor, action, subject, body)

    async def _append_pg(
        self, executor: Executor, actor: str, action: str, subject: str, body: str
    ) -> AuditEntry:
        row = (
            await executor.execute(
                text(
                    "SELECT entry_seq, entry_at, entry_prev_hash, entry_hash "
                    f"FROM {APPEND_FUNCTION}(:actor, :action, :subject, :details)"
                ),
                {"actor": actor, "action": action, "subject": subject, "details": body},
            )
        ).one()
        return AuditEntry(
            row.entry_seq, row.entry_at, actor, action, subject, json.loads(body),
            row.entry_prev_hash, row.entry_hash,
        )  # fmt: skip

    async def _append_many_pg(
        self, executor: Executor, batch: Sequence[_Pending]
    ) -> AuditEntry | None:
        """The append function on each entry of ``batch``, in order, in one round trip (a
        write's notes of its two signatures): one statement, so the function's advisory lock,
        which every writer of the journal queues for, is taken once per write, not per entry.
        Each call is a query of its own (the function is VOLATILE) and sees the row the call
        before it added."""
        if not batch:
            return None
        bodies = [canonical_details(item.details or {}) for item in batch]
        if len(batch) == 1:
            item = batch[0]
            return await self._append_pg(executor, item.actor, item.action, item.subject, bodies[0])
        rows = (
            await executor.execute(
                _APPEND_MANY_PG,
                {
                    "actors": [item.actor for item in batch],
                    "actions": [item.action for item in batch],
                    "subjects": [item.subject for item in batch],
                    "details": bodies,
                },
            )
        ).all()
        assert len(rows) == len(batch), "the append function returns one row per entry"
        row, item = rows[-1], batch[-1]
        return AuditEntry(
            row.entry_seq, row.entry_at, item.actor, item.action, item.subject,
            json.loads(bodies[-1]), row.entry_prev_hash, row.entry_hash,
        )  # fmt: skip

    async def _append_app_chained(
        self,
        executor: Executor,
        actor: str,
        action: str,
        subject: str,
        body: str,
        head: AuditHead | _Unread | None = UNREAD,
    ) -> AuditEntry:
        if isinstance(head, _Unread):
            head = await read_head(executor)
        seq = 1 if head is None else head.seq + 1
        prev_hash = GENESIS_HASH if head is None else head.hash
        at = max(int(self._clock()), head.at if head else 0)
        digest = entry_hash(
            prev_hash=prev_hash, seq=seq, at=at, actor=actor, action=action,
            subject=subject, details=body,
        )  # fmt: skip
        details = json.loads(body)
        await executor.execute(
            _INSERT_ENTRY,
            {
                "seq": seq, "at": at, "actor": actor, "action": action, "subject": subject,
                "details": details, "prev_hash": prev_hash, "hash": digest,
            },
        )  # fmt: skip
        return AuditEntry(seq, at, actor, action, subject, details, prev_hash, digest)

    async def record(
        self,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, Any] | None = None,
        *,
        store: _Transactions | None = None,
    ) -> AuditEntry:
        """Append in a transaction of its own, after whatever ``note`` queued before.

        If the database cannot be reached the entry stays queued for the next flush, and the
        error is raised: what it records (a settle, a cancel) already happened on the node,
        and the step that retries it finds it done and does not record it again."""
        target = store or self._store
        if target is None:
            raise RuntimeError("AuditLog.record needs a store")
        try:
            if self._flusher is not None and not self._flusher.done():
                await asyncio.shield(self._flusher)  # keep the order in which things happened
            entry = _Pending(actor, action, subject, dict(details or {}))
            with self._pending_lock:
                batch, self._pending = [*self._pending, entry], []
            try:
                async with target.transaction() as tx:  # what was queued, then this: one write
                    last = await self._append_all(tx, batch)
            except BaseException:
                self._requeue(batch[:-1])
                raise
            assert last is not None
            return last
        except (DBAPIError, OSError):
            self.note(actor, action, subject, details)
            raise

    def note(
        self, actor: str, action: str, subject: str, details: Mapping[str, Any] | None = None
    ) -> None:
        """Queue an entry from synchronous code; it is written by the next flush, which is
        scheduled at once when an event loop runs and a store is bound."""
        pending = _Pending(actor, action, subject, {**(details or {}), "noted_at": self._now()})
        canonical_details(pending.details)  # refuse what cannot be hashed now, not at flush
        if self._noted_in_transaction(pending):
            return
        with self._pending_lock:
            self._pending.append(pending)
        self._schedule_flush()

    def _noted_in_transaction(self, pending: _Pending) -> bool:
        """Keep ``pending`` for the commit of the transaction it was noted in (a signature of
        a log entry, made while the entry's transaction is open): one commit for both, not a
        second write transaction. Should that transaction roll back, the entry is queued for
        the next flush instead, since the key was used all the same. False when no
        transaction of this log's store is open, or it is already committing."""
        tx = open_transaction()
        if tx is None or self._store is None or tx.origin is not self._store:
            return False
        with self._pending_lock:
            noted = self._in_tx.get(tx)
            if noted is not None and not noted.taken:
                noted.items.append(pending)
                return True
            if noted is not None:
                return False
            noted = _Noted([pending])
            if not tx.before_commit(
                lambda open_tx: self._write_noted(open_tx, noted),
                lambda: self._requeue_noted(noted),
            ):
                return False
            self._in_tx[tx] = noted
            return True

    async def _write_noted(self, tx: Tx, noted: _Noted) -> None:
        # Not after the queued flush, as record() waits for it: that flush may need the turn
        # this transaction holds (SQLite). Entries written concurrently may interleave.
        with self._pending_lock:
            noted.taken = True
            batch = list(noted.items)
        await self._append_all(tx, batch)

    def _requeue_noted(self, noted: _Noted) -> None:
        with self._pending_lock:
            noted.taken = True
            batch = list(noted.items)
        self._requeue(batch)
        self._schedule_flush()

    def _now(self) -> int:
        return int(self._clock())

    def _schedule_flush(self) -> None:
        if self._store is None or (self._flusher is not None and not self._flusher.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._flusher = loop.create_task(self._flush_soon(), name="taskhold-audit-flush")

    async def _flush_soon(self) -> int:
        written = 0
        try:
            while self._pending:
                written += await self.flush()
        except Exception as exc:  # the entries stay queued for the next flush
            log.warning("audit_flush_failed", error=type(exc).__name__)
        return written

    async def flush(self, *, store: _Transactions | None = None) -> int:
        """Write every queued entry in one transaction; on failure they stay queued."""
        target = store or self._store
        with self._pending_lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        if target is None:
            self._requeue(batch)
            return 0
        try:
            async with target.transaction() as tx:
                await self._append_all(tx, batch)
        except BaseException:
            self._requeue(batch)
            raise
        return len(batch)

    async def _append_all(self, tx: object, batch: Sequence[_Pending]) -> AuditEntry | None:
        """Append ``batch`` in order inside ``tx``; the last entry. On SQLite the head is read
        once and chained in memory (the transaction is the only writer); PostgreSQL's append
        function reads it itself, called once per entry by one statement."""
        executor = _executor(tx)
        if _dialect(executor) == "postgresql":
            return await self._append_many_pg(executor, batch)
        head: AuditHead | _Unread | None = UNREAD
        last = None
        for item in batch:
            body = canonical_details(item.details or {})
            last = await self._append_app_chained(
                executor, item.actor, item.action, item.subject, body, head
            )
            head = AuditHead(seq=last.seq, hash=last.hash, at=last.at)
        return last

    def _requeue(self, batch: list[_Pending]) -> None:
        with self._pending_lock:
            self._pending[:0] = batch

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def aclose(self) -> None:
        """Write what is still queued; call before the database engine is disposed."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        if self._store is not None:
            await self.flush()

    def signature_observer(self, actor: str = "operator") -> Callable[[dict[str, Any]], None]:
        """A ``LocalSigner`` observer that records every signature (event id, kind, key)."""

        def observe(event: dict[str, Any]) -> None:
            self.note(
                actor,
                "key.sign",
                str(event.get("id", "")),
                {k: event[k] for k in ("kind", "created_at", "pubkey") if k in event},
            )

        return observe

    async def verify(self, tx_or_session: object) -> ChainReport:
        return await verify_chain(_executor(tx_or_session))


_APPEND_MANY_PG = text(
    "SELECT appended.entry_seq, appended.entry_at, appended.entry_prev_hash, appended.entry_hash"
    " FROM unnest(CAST(:actors AS text[]), CAST(:actions AS text[]), CAST(:subjects AS text[]),"
    " CAST(:details AS text[])) WITH ORDINALITY AS batch(actor, action, subject, details, n)"
    f" CROSS JOIN LATERAL {APPEND_FUNCTION}(batch.actor, batch.action, batch.subject,"
    " batch.details) AS appended ORDER BY batch.n"
)
"""The append function once per row of the arrays, in their order: a batch in one statement."""

_INSERT_ENTRY = insert(table_of(AuditRow))
"""Built once: every write's notes of its key uses go in through it (SQLite)."""
_HEAD = select(AuditRow.seq, AuditRow.hash, AuditRow.at).order_by(AuditRow.seq.desc()).limit(1)


async def read_head(executor: Executor) -> AuditHead | None:
    row = (await executor.execute(_HEAD)).first()
    return None if row is None else AuditHead(seq=row.seq, hash=row.hash, at=row.at)


async def verify_chain(executor: Executor, *, batch: int = 1000) -> ChainReport:
    """Walk the chain in ``seq`` order and return the first row that does not check out:
    a gap or a repeat in ``seq``, a ``prev_hash`` that is not the previous row's hash, or a
    hash that does not match the row's content."""
    table = AuditRow.__table__
    expected_seq, prev_hash, rows, head = 1, GENESIS_HASH, 0, None
    while True:
        chunk = (
            await executor.execute(
                select(table).where(table.c.seq >= expected_seq).order_by(table.c.seq).limit(batch)
            )
        ).all()
        for row in chunk:
            fault = _check_row(row, expected_seq, prev_hash)
            if fault is not None:
                return ChainReport(rows=rows, head=head, first_broken=fault)
            rows += 1
            expected_seq, prev_hash = row.seq + 1, row.hash
            head = AuditHead(seq=row.seq, hash=row.hash, at=row.at)
        if len(chunk) < batch:
            return ChainReport(rows=rows, head=head, first_broken=None)


def _check_row(row: Any, expected_seq: int, prev_hash: str) -> ChainFault | None:
    if row.seq != expected_seq:
        return ChainFault(row.seq, f"expected seq {expected_seq}: rows are missing")
    if row.prev_hash != prev_hash:
        return ChainFault(row.seq, "prev_hash is not the hash of the row before")
    details = row.details if isinstance(row.details, dict) else json.loads(row.details)
    recomputed = entry_hash(
        prev_hash=row.prev_hash, seq=row.seq, at=row.at, actor=row.actor, action=row.action,
        subject=row.subject, details=canonical_details(details),
    )  # fmt: skip
    if recomputed != row.hash:
        return ChainFault(row.seq, "hash does not match the row's content: the row was changed")
    return None
