"""SQLAlchemy tables. The ``transitions`` table is the task history; ``tasks`` is its projection.

``(task_id, version)`` is the primary key of ``transitions``: two writers that decided on the same
task version cannot both append, which is what makes concurrent claims have one winner.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AuditRow",
    "Base",
    "EngineLeaseRow",
    "IdempotencyRow",
    "InvoiceRow",
    "ListingRow",
    "LogEntryRow",
    "LogHeadRow",
    "NoticeRow",
    "OperatorControlRow",
    "OutboxRow",
    "PayoutRow",
    "ReceiptRow",
    "ReputationAssertionRow",
    "RequestEventRow",
    "ReviewRow",
    "TaskRow",
    "TransitionRow",
    "WebhookRow",
    "table_of",
]


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, int: BigInteger}


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class: inserts and updates on it run as one statement each,
    without the ORM's unit of work (the hot write path, ``taskhold/store/repo.py``)."""
    return cast(Table, model.__table__)


class TaskRow(Base):
    """The current state of a task (a fold of its transitions); ``data`` is the whole Task."""

    __tablename__ = "tasks"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(24), index=True)
    employer_pubkey: Mapped[str] = mapped_column(String(64), index=True)
    worker_pubkey: Mapped[str | None] = mapped_column(String(64), index=True)
    payment_hash_hex: Mapped[str | None] = mapped_column(String(64), unique=True)
    amount_msat: Mapped[int]
    pending_action: Mapped[str | None] = mapped_column(String(16), index=True)
    """``release`` or ``refund`` while the escrow engine owes the task a Lightning action."""
    deposit_action: Mapped[str | None] = mapped_column(String(16), index=True)
    """``return``/``payout`` while a deposit waits for a Lightning action; ``hold`` while one is
    only watched (open or held)."""
    created_at: Mapped[int] = mapped_column(index=True)
    updated_at: Mapped[int]
    data: Mapped[dict[str, Any]]
    timer_due_at: Mapped[int | None] = mapped_column(BigInteger, index=True)
    """When the task's next timer runs out (``taskhold.tasks.due``); the engine ticks only
    the tasks it has reached."""
    hold_margin: Mapped[str | None] = mapped_column(String(8))
    hold_expiry_height: Mapped[int | None] = mapped_column(BigInteger)
    """The held HTLC's expiry height and the margin before it at which the engine looks at the
    task (guard, renewal): indexed together, one range per margin."""
    deposit_expiry_height: Mapped[int | None] = mapped_column(BigInteger, index=True)
    """The nearest expiry height of a deposit hold the guardian watches."""


class TransitionRow(Base):
    """One applied event, with the participant's signed request that caused it, if any."""

    __tablename__ = "transitions"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[int]
    state_after: Mapped[str] = mapped_column(String(24))
    event: Mapped[dict[str, Any]]
    request: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class RequestEventRow(Base):
    """Every signed request ever accepted, by Nostr event id: the replay guard."""

    __tablename__ = "request_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pubkey: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(24))
    task_id: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[int]


class IdempotencyRow(Base):
    """The first answer to a write, so a retried write with the same key gets it again."""

    __tablename__ = "idempotency_keys"

    pubkey: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[int]


class InvoiceRow(Base):
    """A hold invoice taskhold asked the node for, and what the node last said about it."""

    __tablename__ = "invoices"

    payment_hash_hex: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    funding_round: Mapped[int] = mapped_column(Integer)
    payment_request: Mapped[str] = mapped_column(Text)
    amount_msat: Mapped[int]
    cltv_expiry_delta: Mapped[int] = mapped_column(Integer)
    node_state: Mapped[str] = mapped_column(String(16))
    accepted_htlc_expiry_height: Mapped[int | None]
    updated_at: Mapped[int]


class PayoutRow(Base):
    """One payout per task and funding round: written before paying, so a crash can't pay twice."""

    __tablename__ = "payouts"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    funding_round: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_request: Mapped[str] = mapped_column(Text)
    payment_hash_hex: Mapped[str] = mapped_column(String(64), index=True)
    amount_msat: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    fee_msat: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[int]


class DepositPayoutRow(Base):
    """The payment of one forfeited deposit to its beneficiary, written before paying."""

    __tablename__ = "deposit_payouts"

    deposit_hash_hex: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    payment_request: Mapped[str] = mapped_column(Text)
    payment_hash_hex: Mapped[str] = mapped_column(String(64), index=True)
    amount_msat: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    fee_msat: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[int]


class RefundPayoutRow(Base):
    """The payment of a split's employer share (per task and funding round), written before
    paying like ``payouts``; the worker's share is the task's ``payouts`` row."""

    __tablename__ = "refund_payouts"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    funding_round: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_request: Mapped[str] = mapped_column(Text)
    payment_hash_hex: Mapped[str] = mapped_column(String(64), index=True)
    amount_msat: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    fee_msat: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[int]


class LogEntryRow(Base):
    """One signed public log entry (kind 3910), in operator-wide order ``gseq``."""

    __tablename__ = "log_entries"
    __table_args__ = (UniqueConstraint("task_id", "seq", name="uq_log_entries_task_seq"),)

    gseq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int]
    raw: Mapped[dict[str, Any]]


class LogHeadRow(Base):
    """The single row every transition locks to extend the operator-wide chain gap-free."""

    __tablename__ = "log_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    gseq: Mapped[int]
    event_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[int]


class ListingRow(Base):
    """The newest open-task listing (kind 30402) per task; its created_at only ever grows."""

    __tablename__ = "listings"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int]


class OutboxRow(Base):
    """A signed event waiting until every configured relay has acknowledged it."""

    __tablename__ = "outbox"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[int] = mapped_column(Integer)
    raw: Mapped[dict[str, Any]]
    acked_relays: Mapped[list[str]] = mapped_column(JSON)
    done: Mapped[bool] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[int]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int]


class AuditRow(Base):
    """One entry of the append-only, hash-chained audit log (``taskhold/journal/chain.py``).

    On PostgreSQL rows are written only by ``taskhold_audit_append()`` and never changed.
    """

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[int]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(256))
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


Index("ix_tasks_state_updated", TaskRow.state, TaskRow.updated_at)
Index("ix_tasks_hold_due", TaskRow.hold_margin, TaskRow.hold_expiry_height)


class ReceiptRow(Base):
    """The operator's review receipt (kind 3913) for one party of a PAID or REFUNDED task.

    Signed in the transaction of the task's final log entry; a review must carry it.
    """

    __tablename__ = "review_receipts"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    raw: Mapped[dict[str, Any]]
    created_at: Mapped[int]


class ReviewRow(Base):
    """An accepted review, once per task and reviewer, numbered gap-free by ``rseq``.

    ``record`` is the operator-signed kind-3914 event that publishes it (the reviewer's signed
    request, receipt inside, is its content); the reputation indexer counts records in order.
    """

    __tablename__ = "reviews"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(64), primary_key=True)
    rseq: Mapped[int] = mapped_column(BigInteger, unique=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    record_id: Mapped[str] = mapped_column(String(64), unique=True)
    record: Mapped[dict[str, Any]]
    created_at: Mapped[int]


class ReputationAssertionRow(Base):
    """The newest reputation assertion (kind 30382) published for a subject pubkey."""

    __tablename__ = "reputation_assertions"

    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(16))
    score: Mapped[int] = mapped_column(Integer)
    gseq_to: Mapped[int]
    rseq_to: Mapped[int]
    created_at: Mapped[int]


class NoticeRow(Base):
    """One NIP-17 notification sent (queued in the outbox as a gift wrap), once per wait:
    ``notice_id`` is the sha256 of the wait's key (``taskhold.tasks.next_actions.Due.key``)."""

    __tablename__ = "notices"

    notice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    recipient: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32))
    deadline_at: Mapped[int | None]
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    """The gift wrap's id (its outbox row)."""
    created_at: Mapped[int]


class WebhookRow(Base):
    """A URL the operator registered; it gets every log entry after ``delivered_gseq``, in
    order, one signed POST each (``taskhold.notify.webhooks``)."""

    __tablename__ = "webhooks"

    webhook_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    delivered_gseq: Mapped[int]
    """The last log entry the receiver acknowledged (2xx); -1 before the first."""
    attempts: Mapped[int] = mapped_column(Integer)
    """Failed attempts at the next entry, in a row; 0 after a success."""
    next_attempt_at: Mapped[int]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int]
    delivered_at: Mapped[int | None]


class PlacementRow(Base):
    """Which escrow node of a pool holds a hold invoice or made a payment, by payment hash
    (``taskhold.lightning.pool``). Written before the node call, so a retry after a crash, or
    another replica, goes to the same node and never issues the same hash on a second one."""

    __tablename__ = "placements"

    payment_hash_hex: Mapped[str] = mapped_column(String(64), primary_key=True)
    node: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[int]


class EngineLeaseRow(Base):
    """Who works on one task's money right now, across replicas (``taskhold.escrow.leases``):
    a payment job, or a guard or refund step that could cancel the hold under it. ``owner``
    holds the key until ``expires_at`` (epoch milliseconds) and renews it while it works; a
    replica that dies leaves it to expire, and another takes the key over then."""

    __tablename__ = "engine_leases"

    lease_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[int]


class OperatorControlRow(Base):
    """One switch of the operator's console (``taskhold.store.controls``): intake paused, an
    engine pass asked for. In the database, so it survives a restart and every replica reads
    the same value."""

    __tablename__ = "operator_controls"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int]
    changed_by: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[int]


class BlockedKeyRow(Base):
    """A participant key the operator blocked (``taskhold moderate block``): its signed writes
    are refused, except those that only pay out what its tasks owe it (``taskhold.moderation``)."""

    __tablename__ = "blocked_keys"

    pubkey: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    blocked_at: Mapped[int]


class DelistedTaskRow(Base):
    """A task the operator took off the public board; its escrow runs on as before."""

    __tablename__ = "delisted_tasks"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    delisted_at: Mapped[int]


class ModerationHeadRow(Base):
    """The newest signed moderation list (kind 30078, ``d`` = ``taskhold-moderation``): one
    row, locked while a change is made, so ``created_at`` strictly grows."""

    __tablename__ = "moderation_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int]
