"""Pay-then-settle and cancel, written once for every kind of money taskhold holds.

taskhold holds money in hold invoices: a task's reward, a worker's deposit, a split's two
shares, and later milestones and swap payouts. Whatever the kind, paying it out is one sequence
(DESIGN.md section 4): pay the payee (or each payee, in order) from the escrow node's own
liquidity, bounded by the hold, and only then settle the hold; giving it back is one cancel.
:class:`HeldFunds` says what is held and who is owed; a :class:`PayoutBook` is where its kind
records each step (its payout table, its task's log, its crash points). A new kind of payout
writes a book and a ``HeldFunds``, not a sequence.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from taskhold.errors import Fault
from taskhold.lightning.base import (
    InvoiceNotFound,
    InvoiceState,
    InvoiceStatus,
    PaymentResult,
    PaymentStatus,
    WrongInvoiceState,
)
from taskhold.store import Tx
from taskhold.tasks import SYSTEM_ACTOR, Task

from .context import PaymentContext, log
from .invoices import decode_invoice
from .paying import PaymentRecord, may_land, pay_once, record_result, record_sent, stands
from .sealed import is_sealed, payment_hash_of

__all__ = [
    "HeldFunds",
    "PayoutBook",
    "PayoutKind",
    "PayoutStep",
    "ShareBook",
    "cancel_hold",
    "must_settle",
    "pay_then_settle",
    "payout_hash_of",
    "payout_preimage",
    "settle_under_live_payout",
    "still_held",
]


class PayoutKind(enum.Enum):
    """What the held money is; it names the kind's entries in the operator's journal."""

    TASK_REWARD = "task_reward"
    DEPOSIT = "deposit"

    def journal_action(self, step: str) -> str:
        """``escrow.settle`` for a task's reward, ``escrow.deposit_settle`` for a deposit."""
        return f"escrow.{step}" if self is PayoutKind.TASK_REWARD else f"escrow.{self.value}_{step}"


class PayoutStep(enum.Enum):
    """A step done, at which the book crosses its crash point (``escrow/crashpoints.py``)."""

    ROW_WRITTEN = "the payout row is written; the payee is not paid yet"
    FAILURE_RECORDED = "a failed attempt is recorded; the next is not made yet"
    PAID = "the payee's payment succeeded; the hold is not settled yet"
    SETTLED = "the hold is settled; the payout is not recorded yet"
    CANCELLED = "the hold is cancelled; the return is not recorded yet"


@dataclass(frozen=True, slots=True)
class HeldFunds:
    """Money one hold invoice of taskhold holds, and the payout it owes (if any).

    The hold's expiry is not here on purpose: it is read from the node right before each
    payment, and bounds the payment's CLTV limit then (:mod:`.rules`)."""

    kind: PayoutKind
    task_id: str
    hold_hash_hex: str
    preimage_key: tuple[str, int]
    """The key store's label and round for the hold's preimage."""
    payout_invoice: str | None
    """The payee's BOLT11 invoice, as given (``payout_invoice`` on the wire), or its sealed
    form (:mod:`.sealed`), opened only to pay it."""
    amount_msat: int
    """What the payout pays."""
    max_fee_msat: int
    """Its routing fee cap (:func:`~taskhold.payments.rules.payout_fee_cap_msat`)."""
    failures: int
    """Failed payout attempts recorded so far."""
    owner: str
    """The payout's name in the rules (``task/<id>``, ``deposit/<hash>``): its own row is never
    held against it."""
    journal: Mapping[str, Any]
    """What names the payout in the journal's payout entries (a round, a deposit's hash)."""
    settle_journal: Mapping[str, Any]
    """The details of the journal's entry for the settle."""


class PayoutBook(Protocol):
    """Where one kind of held funds records what the sequence did. A new kind of payout (split
    shares, milestones, swap payouts) implements one and builds its :class:`HeldFunds`."""

    async def find_row(self, tx: Tx) -> PaymentRecord | None:
        """The payout's row, if written."""

    async def add_row(self, tx: Tx, columns: dict[str, Any]) -> PaymentRecord:
        """Write a new payout row with the shared ``columns`` (replacing an earlier one)."""

    async def crossed(self, step: PayoutStep) -> None:
        """Call the fault hook with this kind's crash point for ``step``, by its literal name
        (the crash-point catalogue test finds every call site that way)."""

    async def failed(self, reason: str) -> None:
        """Record a failed payout attempt in the task's log."""

    async def hold_cancelled(self, hold: InvoiceStatus) -> Task | None:
        """The node gave the held money back on its own: record it (once) in the task's log."""

    async def completed(self, preimage: bytes, payout: PaymentResult) -> Task | None:
        """Record the payout paid and the hold settled in the task's log."""

    async def settled_early(self, preimage: bytes, payout_hash_hex: str, blocks_left: int) -> None:
        """Record the declared fallback (the hold settled under a live payout) in the log."""


class ShareBook(PayoutBook, Protocol):
    """The book of a payout the hold owes before its last one (a split's worker share)."""

    async def share_paid(self, payout: PaymentResult) -> None:
        """Record in the log that this share landed, before the next one is paid."""


async def pay_then_settle(
    ctx: PaymentContext,
    held: HeldFunds,
    book: PayoutBook,
    earlier: Sequence[tuple[HeldFunds, ShareBook]] = (),
) -> Task | None:
    """Pay the payee, then settle the hold; the task once recorded, None while not done.

    Safe to call repeatedly and after a crash anywhere: the payout row is written before the
    payment is sent, so the node is asked what became of that exact payment instead of paying
    again, and the hold is settled only once the payment succeeded.

    ``earlier``: payouts the same hold owes before ``held``'s (a split's worker share before the
    employer's), paid in order, each at most once (its own row) and recorded paid before the
    next starts; a share whose payee has sent no invoice yet waits, and so does every later
    one. Their routing fees together stay within the first's cap: each share may spend only
    what the shares before it left of it.
    """
    hold = await ctx.lightning.lookup_invoice(bytes.fromhex(held.hold_hash_hex))
    if hold.state is InvoiceState.CANCELED:
        return await book.hold_cancelled(hold)
    if hold.state is InvoiceState.OPEN:
        raise Fault(f"task {held.task_id}: a payout is owed but its hold invoice is not held")
    fee_left = earlier[0][0].max_fee_msat if earlier else held.max_fee_msat
    read_now: InvoiceStatus | None = hold  # for the first payment only: nothing paid since
    for share, share_book in earlier:
        paid = await _pay_share(ctx, share, share_book, fee_left, read_now)
        read_now = None
        if paid is None:
            return None
        fee_left -= paid.fee_msat
        await share_book.crossed(PayoutStep.PAID)
        await share_book.share_paid(paid)
    payout = await _pay_share(ctx, held, book, fee_left, read_now)
    if payout is None:
        return None
    await book.crossed(PayoutStep.PAID)
    preimage = ctx.keys.derive_preimage(*held.preimage_key)
    if hold.state is not InvoiceState.SETTLED:
        await ctx.lightning.settle_invoice(preimage)
        await ctx.audit.record(
            SYSTEM_ACTOR,
            held.kind.journal_action("settle"),
            held.task_id,
            dict(held.settle_journal),
            store=ctx.store,
        )
    await book.crossed(PayoutStep.SETTLED)
    return await book.completed(preimage, payout)


async def must_settle(
    ctx: PaymentContext,
    held: HeldFunds,
    book: PayoutBook,
    earlier: Sequence[tuple[HeldFunds, ShareBook]] = (),
) -> bool:
    """The payout (or one of the ``earlier`` shares, as for :func:`pay_then_settle`) succeeded
    or may still land, or the hold is already settled (a crash came between the settle and its
    log entry): the hold must be settled, never given back, or the operator could pay the money
    out twice."""
    async with ctx.store.transaction() as tx:
        rows = [await each.find_row(tx) for each in (*(b for _, b in earlier), book)]
    for row in rows:
        if row is not None and await may_land(ctx, row):
            return True
    hold = await ctx.lightning.lookup_invoice(bytes.fromhex(held.hold_hash_hex))
    return hold.state is InvoiceState.SETTLED


async def still_held(ctx: PaymentContext, held: HeldFunds) -> bool:
    """The node has not cancelled the hold (a cancelled one has nothing left to settle).

    An ordered cancel (a refund, a deposit's return) asks this, and whether the payout may
    land, right before cancelling: it was ordered on the node's word that the payout failed,
    and asked again the node may say otherwise (it misread, or the payee took an HTLC it held).
    Then the hold is settled instead, or the operator would pay the money out twice."""
    hold = await ctx.lightning.lookup_invoice(bytes.fromhex(held.hold_hash_hex))
    return hold.state is not InvoiceState.CANCELED


async def settle_under_live_payout(
    ctx: PaymentContext, held: HeldFunds, book: PayoutBook, blocks_left: int
) -> Task | None:
    """The declared fallback: settle the hold while its payout is still in flight, because the
    guardian's deadline came first.

    Cancelling instead could give the money back while the payout still lands (paid twice);
    waiting would let the node cancel it by itself. So taskhold takes the money, says so in the
    public log, and keeps following the payout: the payee stays owed until it lands, or is paid
    again on a new invoice. A hold the node already cancelled has nothing left to settle: that
    outcome is recorded once, like any hold the node gave back.
    """
    hold = await ctx.lightning.lookup_invoice(bytes.fromhex(held.hold_hash_hex))
    if hold.state is InvoiceState.CANCELED:
        return await book.hold_cancelled(hold)
    async with ctx.store.transaction() as tx:
        row = await book.find_row(tx)
    preimage = ctx.keys.derive_preimage(*held.preimage_key)
    await ctx.lightning.settle_invoice(preimage)
    payout_hash = payout_hash_of(row, held.payout_invoice)
    event = "hold" if held.kind is PayoutKind.TASK_REWARD else "deposit"
    log.warning(
        f"{event}_settled_under_live_payout",
        task_id=held.task_id,
        blocks_left=blocks_left,
        payout_payment_hash=payout_hash,
    )
    await ctx.audit.record(
        SYSTEM_ACTOR,
        held.kind.journal_action("settle_under_live_payout"),
        held.task_id,
        {"payment_hash": held.hold_hash_hex, "payout_hash": payout_hash},
        store=ctx.store,
    )
    await book.settled_early(preimage, payout_hash, blocks_left)
    return None


async def cancel_hold(ctx: PaymentContext, held: HeldFunds, book: PayoutBook) -> str:
    """Cancel the hold so its payer's HTLC goes back; the invoice state to record.

    Cancel is idempotent at the node, so a retry after a crash simply cancels again. The state
    is ``CANCELED``, or ``NOT_FOUND`` when the node no longer knows the invoice (it holds
    nothing to give back); any other state is a fault.
    """
    payment_hash = bytes.fromhex(held.hold_hash_hex)
    try:
        await ctx.lightning.cancel_invoice(payment_hash)
        invoice_state = InvoiceState.CANCELED.value
    except InvoiceNotFound:
        invoice_state = "NOT_FOUND"
    except WrongInvoiceState as exc:
        status = await ctx.lightning.lookup_invoice(payment_hash)
        raise Fault(
            f"task {held.task_id}: cannot cancel a hold invoice in state {status.state}"
        ) from exc
    await ctx.audit.record(
        SYSTEM_ACTOR,
        held.kind.journal_action("cancel"),
        held.task_id,
        {"payment_hash": held.hold_hash_hex, "invoice_state": invoice_state},
        store=ctx.store,
    )
    await book.crossed(PayoutStep.CANCELLED)
    return invoice_state


def payout_hash_of(row: PaymentRecord | None, payout_invoice: str | None) -> str:
    """The hash of the payout a fallback settle stands behind (its row is gone after a
    rebuild: the invoice it was made for tells the same hash)."""
    if row is not None:
        return row.payment_hash_hex
    if payout_invoice is not None:
        return payment_hash_of(payout_invoice)
    return "00" * 32


async def payout_preimage(ctx: PaymentContext, payout: PaymentResult) -> bytes:
    """A succeeded payout's preimage, the payee's proof of payment: the log publishes it. A
    payment found succeeded after a crash may come without it; the node is asked then."""
    if payout.preimage is not None:
        return payout.preimage
    known = await ctx.lightning.lookup_payment(payout.payment_hash)
    if known.preimage is None:
        raise Fault("a succeeded payment without its preimage")
    return known.preimage


async def _pay_share(
    ctx: PaymentContext,
    held: HeldFunds,
    book: PayoutBook,
    fee_left_msat: int,
    hold: InvoiceStatus | None,
) -> PaymentResult | None:
    """One payee's payment within what is left of the fee cap; None while its payee has sent
    no invoice. ``hold``: as for :func:`~.paying.pay_once`."""
    if held.payout_invoice is None:
        return None
    capped = min(held.max_fee_msat, max(fee_left_msat, 0))
    return await _pay(ctx, dataclasses.replace(held, max_fee_msat=capped), book, hold)


async def _pay(
    ctx: PaymentContext, held: HeldFunds, book: PayoutBook, hold: InvoiceStatus | None
) -> PaymentResult | None:
    """The payee's payment, succeeded; None if it failed (recorded in the book)."""
    row = await _payout_row(ctx, held, book)
    await book.crossed(PayoutStep.ROW_WRITTEN)

    async def mark_sent(tx: Tx) -> None:
        current = await book.find_row(tx)
        if current is not None:
            record_sent(current, ctx.now())
            row.attempts = current.attempts

    async def mark(result: PaymentResult | None, error: str | None) -> None:
        async with ctx.store.transaction() as tx:
            current = await book.find_row(tx)
            if current is None:
                return
            record_result(current, result, error, ctx.now())
            await ctx.audit.append(
                tx,
                SYSTEM_ACTOR,
                held.kind.journal_action("payout"),
                held.task_id,
                {
                    **held.journal,
                    "payment_hash": row.payment_hash_hex,
                    "amount_msat": row.amount_msat,
                    "status": current.status,
                    "fee_msat": current.fee_msat,
                    "error": error,
                },
            )

    async def record_failure(reason: str) -> None:
        ctx.payout_failures[held.kind.value] += 1
        await book.failed(reason)
        await book.crossed(PayoutStep.FAILURE_RECORDED)

    return await pay_once(
        ctx,
        row,
        task_id=held.task_id,
        owner=held.owner,
        hold_hash=bytes.fromhex(held.hold_hash_hex),
        hold=hold,
        max_fee_msat=held.max_fee_msat,
        failures=held.failures,
        mark_sent=mark_sent,
        mark=mark,
        record_failure=record_failure,
    )


async def _payout_row(ctx: PaymentContext, held: HeldFunds, book: PayoutBook) -> PaymentRecord:
    """The payout's row, written before the first attempt. A new invoice from the payee
    replaces it only once the old one's payment is known to have failed."""
    assert held.payout_invoice is not None
    async with ctx.store.transaction() as tx:
        row = await book.find_row(tx)
        if row is not None and await stands(ctx, row, held.payout_invoice):
            return row
        return await book.add_row(
            tx,
            {
                "payment_request": _stored(held.payout_invoice),
                "payment_hash_hex": payment_hash_of(held.payout_invoice),
                "amount_msat": held.amount_msat,
                "status": PaymentStatus.UNKNOWN.value,
                "attempts": 0,
                "fee_msat": None,
                "last_error": None,
                "updated_at": ctx.now(),
            },
        )


def _stored(payout_invoice: str) -> str:
    """What the payout row keeps of the invoice: a sealed form as it is (the row never holds
    the plaintext), a clear invoice as decoded."""
    if is_sealed(payout_invoice):
        return payout_invoice
    return decode_invoice(payout_invoice).payment_request
