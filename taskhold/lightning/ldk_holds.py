"""The LDK backend's own record of its hold invoices, next to the node's storage.

LDK Node keeps an inbound payment as Pending from the invoice until it is claimed or failed: it
has no "accepted" state, and it forgets the invoice's terms. lnd keeps both. This table keeps what
the Protocol reports (terms, state, the held HTLC's heights) so a lookup after a restart answers
as it did before. Every change is committed before the node is told the event was handled, so a
crash at any point replays the event instead of losing it.

One SQLite file, written from the event thread and from the event loop; a lock serialises them.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from taskhold.lightning.base import AcceptedHtlc, InvoiceState, InvoiceStatus

__all__ = ["HoldRecord", "HoldRecords"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hold_invoices (
    payment_hash TEXT PRIMARY KEY,
    payment_request TEXT NOT NULL,
    amount_msat INTEGER NOT NULL,
    cltv_expiry_delta INTEGER NOT NULL,
    expiry_seconds INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    amount_paid_msat INTEGER NOT NULL DEFAULT 0,
    accept_height INTEGER,
    expiry_height INTEGER
)
"""
_COLUMNS = (
    "payment_hash, payment_request, amount_msat, cltv_expiry_delta, expiry_seconds, created_at,"
    " state, amount_paid_msat, accept_height, expiry_height"
)


@dataclass(frozen=True, slots=True)
class HoldRecord:
    """One hold invoice as the backend reports it."""

    payment_hash: bytes
    payment_request: str
    amount_msat: int
    cltv_expiry_delta: int
    expiry_seconds: int
    created_at: int
    state: InvoiceState = InvoiceState.OPEN
    amount_paid_msat: int = 0
    accept_height: int | None = None
    expiry_height: int | None = None

    def status(self) -> InvoiceStatus:
        htlcs: tuple[AcceptedHtlc, ...] = ()
        if self.state is InvoiceState.ACCEPTED and self.expiry_height is not None:
            htlcs = (
                AcceptedHtlc(
                    amount_msat=self.amount_paid_msat,
                    accept_height=self.accept_height or 0,
                    expiry_height=self.expiry_height,
                ),
            )
        return InvoiceStatus(
            payment_hash=self.payment_hash,
            state=self.state,
            amount_msat=self.amount_msat,
            amount_paid_msat=self.amount_paid_msat,
            htlcs=htlcs,
            payment_request=self.payment_request,
        )

    def expired_unpaid(self, now: int) -> bool:
        return self.state is InvoiceState.OPEN and now >= self.created_at + self.expiry_seconds

    def with_state(self, state: InvoiceState) -> HoldRecord:
        return replace(self, state=state)


class HoldRecords:
    """The hold invoices of one LDK node, in ``<storage_dir>/taskhold-holds.sqlite3``."""

    FILE_NAME = "taskhold-holds.sqlite3"

    def __init__(self, storage_dir: Path) -> None:
        storage_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            storage_dir / self.FILE_NAME, check_same_thread=False, isolation_level=None
        )
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)

    def add(self, record: HoldRecord) -> bool:
        """Insert a new invoice; False if its hash is already recorded."""
        with self._lock:
            try:
                self._db.execute(
                    f"INSERT INTO hold_invoices ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    _row(record),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def save(self, record: HoldRecord, *, if_state: tuple[InvoiceState, ...]) -> bool:
        """Write an invoice's state and held HTLC (its terms never change) if it is still in one
        of ``if_state``: the event thread and the event loop race, and the first change wins."""
        states = [state.value for state in if_state]
        marks = ",".join("?" * len(states))
        with self._lock:
            cursor = self._db.execute(
                "UPDATE hold_invoices SET state=?, amount_paid_msat=?, accept_height=?,"
                f" expiry_height=? WHERE payment_hash=? AND state IN ({marks})",
                (
                    record.state.value,
                    record.amount_paid_msat,
                    record.accept_height,
                    record.expiry_height,
                    record.payment_hash.hex(),
                    *states,
                ),
            )
        return cursor.rowcount == 1

    def get(self, payment_hash: bytes) -> HoldRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM hold_invoices WHERE payment_hash=?", (payment_hash.hex(),)
            ).fetchone()
        return None if row is None else _record(row)

    def pending(self) -> list[HoldRecord]:
        """Every OPEN or ACCEPTED invoice, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM hold_invoices WHERE state IN (?, ?) ORDER BY created_at",
                (InvoiceState.OPEN.value, InvoiceState.ACCEPTED.value),
            ).fetchall()
        return [_record(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row(record: HoldRecord) -> tuple[object, ...]:
    return (
        record.payment_hash.hex(),
        record.payment_request,
        record.amount_msat,
        record.cltv_expiry_delta,
        record.expiry_seconds,
        record.created_at,
        record.state.value,
        record.amount_paid_msat,
        record.accept_height,
        record.expiry_height,
    )


def _record(row: tuple[object, ...]) -> HoldRecord:
    (
        payment_hash,
        payment_request,
        amount_msat,
        cltv_expiry_delta,
        expiry_seconds,
        created_at,
        state,
        amount_paid_msat,
        accept_height,
        expiry_height,
    ) = row
    return HoldRecord(
        payment_hash=bytes.fromhex(str(payment_hash)),
        payment_request=str(payment_request),
        amount_msat=int(str(amount_msat)),
        cltv_expiry_delta=int(str(cltv_expiry_delta)),
        expiry_seconds=int(str(expiry_seconds)),
        created_at=int(str(created_at)),
        state=InvoiceState(str(state)),
        amount_paid_msat=int(str(amount_paid_msat)),
        accept_height=None if accept_height is None else int(str(accept_height)),
        expiry_height=None if expiry_height is None else int(str(expiry_height)),
    )
