"""The in-memory Lightning network the simulator nodes of :mod:`taskhold.lightning.sim` share.

One :class:`SimNetwork` holds a block clock, a wall clock, balances, the invoices each node issued
and the payments each node sent. Money moves only here, so a test checks "paid exactly once" in
one place. Where taskhold depends on it, the rules are lnd's:

- A held HTLC expires at ``accept height + cltv_expiry_delta``; lnd cancels the hold invoice once
  ``height + holdexpirydelta >= expiry height``, checked after every block.
- The payer is debited (amount + fee) when its HTLC goes out and refunded on cancel; the receiver
  is credited only on settle.
- A cancelled, expired or unknown invoice fails the payment with
  ``FAILURE_REASON_INCORRECT_PAYMENT_DETAILS``, as lnd's exit hop answers for all three.
- A node never sends a second HTLC for a hash it paid or is paying ("never pay twice").
- A node's channels are one pool: it receives while it has inbound room and a free HTLC slot
  (else the payer sees ``FAILURE_REASON_NO_ROUTE``, as a full channel answers). A held HTLC
  takes a slot and its amount of room until it is settled (the room is used) or cancelled (it
  comes back); a settled outgoing payment gives its payer that much room back. Outbound
  liquidity is the balance. ``set_channels`` makes both small for capacity tests.

Nothing runs in the background: wall-clock expiry is applied whenever an invoice is touched and
after every block, so tests are deterministic.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Concatenate, ParamSpec, TypeVar

from taskhold.lightning.base import (
    AcceptedHtlc,
    AlreadyExists,
    InvoiceNotFound,
    InvoiceState,
    InvoiceStatus,
    LightningError,
    NodeCapacity,
    NodeUnreachable,
    PaymentResult,
    PaymentStatus,
    WrongInvoiceState,
)
from taskhold.lightning.sim_records import (
    FAILURE_REASONS,
    FINAL_INVOICE_STATES,
    INCORRECT_PAYMENT_DETAILS,
    INSUFFICIENT_BALANCE,
    NO_ROUTE,
    AutoCancel,
    HasPubkey,
    InvoiceRecord,
    PaymentRecord,
    SettledPayment,
)

__all__ = ["DEFAULT_HTLC_SLOTS", "DEFAULT_INBOUND_MSAT", "SimNetwork"]

DEFAULT_INBOUND_MSAT = 10**15
"""A node's inbound room unless a test sets it: ten thousand bitcoin, never the limit."""
DEFAULT_HTLC_SLOTS = 10 * 483
"""A node's incoming HTLC slots unless a test sets them: ten channels' worth."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _changes(
    method: Callable[Concatenate[SimNetwork, _P], _R],
) -> Callable[Concatenate[SimNetwork, _P], _R]:
    """The method may change the network: tell ``on_change`` before returning (or raising)."""

    def changed(self: SimNetwork, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        finally:
            if self.on_change is not None:
                self.on_change()

    functools.update_wrapper(changed, method)
    return changed


class SimNetwork:
    """A deterministic Lightning network in memory: blocks, balances, invoices and payments.

    ``clock`` is the wall clock used for invoice timestamps and expiry; inject one in tests.
    ``hold_expiry_delta`` is lnd's ``holdexpirydelta``. Fees are charged to the payer whenever
    the payee is another node: ``fee_base_msat + amount_msat * fee_ppm // 1_000_000``.
    """

    def __init__(
        self,
        *,
        start_height: int = 100,
        hold_expiry_delta: int = 12,
        fee_base_msat: int = 0,
        fee_ppm: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.hold_expiry_delta = hold_expiry_delta
        self.fee_base_msat = fee_base_msat
        self.fee_ppm = fee_ppm
        self.auto_cancelled: list[AutoCancel] = []
        self.settled_payments: list[SettledPayment] = []
        self._height = start_height
        self._balances: dict[str, int] = {}
        self._inbound: dict[str, int] = {}
        self._htlc_slots: dict[str, int] = {}
        self._invoices: dict[tuple[str, bytes], InvoiceRecord] = {}
        self._payments: dict[tuple[str, bytes], PaymentRecord] = {}
        self._failures_queued: list[str] = []
        self._unroutable: set[str] = set()
        self._keeps_holds: set[str] = set()
        self._node_subscribers: dict[str, list[asyncio.Queue[InvoiceStatus | None]]] = {}
        self.on_change: Callable[[], None] | None = None
        """Called after every change, before the changing call returns (persistence)."""
        self.payment_latency_s = 0.0
        """Benches only: how long a node's ``pay_invoice`` waits before its HTLC goes out (a
        route's round trip), so that concurrent payouts overlap as they do on a real network.
        Zero (the default) keeps every test instant and deterministic."""

    # -- chain ------------------------------------------------------------------------------

    @property
    def height(self) -> int:
        """The current best block height."""
        return self._height

    async def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` blocks one at a time, running lnd's hold-expiry check after each.

        One block at a time, like lnd's expiry watcher, so a cancel always happens at the first
        height that triggers it, however many blocks are mined in one call.
        """
        if blocks < 0:
            raise ValueError("blocks must not be negative")
        for _ in range(blocks):
            self._height += 1
            for invoice in list(self._invoices.values()):
                self._expire_if_due(invoice)
                held = invoice.hold and invoice.state is InvoiceState.ACCEPTED
                held = held and invoice.issuer not in self._keeps_holds
                if held and self._height + self.hold_expiry_delta >= min(
                    h.expiry_height for h in invoice.htlcs
                ):
                    self._cancel(invoice)
                    self.auto_cancelled.append(
                        AutoCancel(invoice.issuer, invoice.payment_hash, self._height)
                    )
            if self.on_change is not None:
                self.on_change()
            await asyncio.sleep(0)  # let subscribers see each block's changes

    # -- money and fault injection ------------------------------------------------------------

    @_changes
    def join(self, pubkey_hex: str, balance_msat: int) -> None:
        """Add a node with its spendable balance; a pubkey can join only once."""
        if pubkey_hex in self._balances:
            raise ValueError(f"node {pubkey_hex} already joined this network")
        if balance_msat < 0:
            raise ValueError("balance_msat must not be negative")
        self._balances[pubkey_hex] = balance_msat
        self._inbound[pubkey_hex] = DEFAULT_INBOUND_MSAT
        self._htlc_slots[pubkey_hex] = DEFAULT_HTLC_SLOTS

    @_changes
    def set_channels(
        self,
        node: HasPubkey | str,
        *,
        inbound_msat: int | None = None,
        htlc_slots: int | None = None,
    ) -> None:
        """Give a node this much inbound room and this many incoming HTLC slots (held included)."""
        pubkey = node if isinstance(node, str) else node.pubkey_hex
        if inbound_msat is not None:
            if inbound_msat < 0:
                raise ValueError("inbound_msat must not be negative")
            self._inbound[pubkey] = inbound_msat
        if htlc_slots is not None:
            if htlc_slots < 0:
                raise ValueError("htlc_slots must not be negative")
            self._htlc_slots[pubkey] = htlc_slots

    def capacity(self, pubkey_hex: str) -> NodeCapacity:
        """The node's channels as :meth:`~taskhold.lightning.base.LightningBackend.capacity`."""
        inbound = self._inbound[pubkey_hex]
        slots = self._htlc_slots[pubkey_hex]
        return NodeCapacity(
            inbound_msat=inbound,
            outbound_msat=self._balances[pubkey_hex],
            htlc_slots_free=max(0, slots - self._held_htlcs(pubkey_hex)),
            htlc_slots_max=slots,
            largest_inbound_msat=inbound,
        )

    def _held_htlcs(self, issuer: str) -> int:
        return sum(
            1
            for invoice in self._invoices.values()
            if invoice.issuer == issuer and invoice.state is InvoiceState.ACCEPTED
        )

    def balance_msat(self, pubkey_hex: str) -> int:
        """Spendable money of a node: settled receipts in, HTLCs out already deducted."""
        return self._balances[pubkey_hex]

    def locked_msat(self, pubkey_hex: str) -> int:
        """Money a node has in flight (amount + fee of its IN_FLIGHT payments)."""
        return sum(
            p.amount_msat + p.fee_msat
            for (payer, _), p in self._payments.items()
            if payer == pubkey_hex and p.status is PaymentStatus.IN_FLIGHT
        )

    def routing_fee_msat(self, amount_msat: int) -> int:
        """The fee a payment of ``amount_msat`` to another node costs its payer."""
        return self.fee_base_msat + amount_msat * self.fee_ppm // 1_000_000

    def payments_to(self, payment_hash: bytes) -> list[SettledPayment]:
        """Every settled payment of ``payment_hash``; more than one means someone paid twice."""
        return [p for p in self.settled_payments if p.payment_hash == payment_hash]

    @_changes
    def fail_next_payments(self, n: int, reason: str = NO_ROUTE) -> None:
        """Make the next ``n`` payment attempts (from any node) fail with ``reason``."""
        if reason not in FAILURE_REASONS:
            raise ValueError(f"unknown failure reason {reason!r}")
        self._failures_queued.extend([reason] * n)

    @_changes
    def fail_payments_to(self, node: HasPubkey | str) -> None:
        """Make ``node`` unroutable (``FAILURE_REASON_NO_ROUTE``) until :meth:`clear_failures`."""
        self._unroutable.add(node if isinstance(node, str) else node.pubkey_hex)

    @_changes
    def keep_holds_past_expiry(self, node: HasPubkey | str) -> None:
        """Make ``node`` a hostile payee: it never cancels its hold invoices near expiry (lnd
        would), so an HTLC it holds stays in flight for its payer until the node settles it."""
        self._keeps_holds.add(node if isinstance(node, str) else node.pubkey_hex)

    @_changes
    def clear_failures(self) -> None:
        """Forget injected failures: queued ones and unroutable destinations."""
        self._failures_queued.clear()
        self._unroutable.clear()

    # -- invoices (called by SimNode) -----------------------------------------------------------

    @_changes
    def add_invoice(
        self,
        issuer: str,
        payment_hash: bytes,
        amount_msat: int,
        *,
        cltv_expiry_delta: int,
        expires_at: float,
        preimage: bytes | None,
        payment_request: str,
    ) -> None:
        """Record an invoice; a hold invoice is one whose preimage the issuer does not know."""
        key = (issuer, payment_hash)
        if key in self._invoices:
            raise AlreadyExists(f"invoice with payment hash {payment_hash.hex()} already exists")
        if preimage is not None and hashlib.sha256(preimage).digest() != payment_hash:
            raise LightningError("preimage does not match payment hash")
        self._invoices[key] = InvoiceRecord(
            issuer=issuer,
            payment_hash=payment_hash,
            amount_msat=amount_msat,
            cltv_expiry_delta=cltv_expiry_delta,
            expires_at=expires_at,
            hold=preimage is None,
            preimage=preimage,
            payment_request=payment_request,
        )

    def invoice_status(self, issuer: str, payment_hash: bytes) -> InvoiceStatus:
        return self._invoice(issuer, payment_hash).status()

    @_changes
    def settle(self, issuer: str, preimage: bytes) -> None:
        """Settle the ACCEPTED invoice for ``sha256(preimage)``; a SETTLED one is left alone."""
        invoice = self._invoice(issuer, hashlib.sha256(preimage).digest())
        if invoice.state is InvoiceState.SETTLED:
            return
        if invoice.state is not InvoiceState.ACCEPTED:
            raise WrongInvoiceState(f"cannot settle a {invoice.state} invoice")
        self._settle(invoice, preimage)

    @_changes
    def cancel(self, issuer: str, payment_hash: bytes) -> None:
        """Cancel an OPEN or ACCEPTED invoice; a CANCELED one is left alone."""
        invoice = self._invoice(issuer, payment_hash)
        if invoice.state is InvoiceState.SETTLED:
            raise WrongInvoiceState("cannot cancel a SETTLED invoice")
        if invoice.state is not InvoiceState.CANCELED:
            self._cancel(invoice)

    def invoice_updates(self, issuer: str, payment_hash: bytes) -> AsyncIterator[InvoiceStatus]:
        """The invoice's status now and after every change; ends once it is final."""
        return self._updates(self._invoice(issuer, payment_hash))

    def all_invoice_updates(self, issuer: str) -> AsyncGenerator[InvoiceStatus, None]:
        """Every pending invoice of ``issuer`` now, then any of its invoices after a change."""
        return self._node_updates(issuer)

    def invoice_count(self, issuer: str) -> int:
        """Invoices ``issuer`` ever issued, whatever became of them."""
        return sum(1 for (node, _) in self._invoices if node == issuer)

    def open_subscriptions(self, issuer: str) -> int:
        """Subscriptions open to ``issuer``'s invoices: on lnd, one connection each."""
        single = sum(len(i.subscribers) for i in self._invoices.values() if i.issuer == issuer)
        return single + len(self._node_subscribers.get(issuer, ()))

    def interrupt_subscriptions(self, issuer: str) -> None:
        """End every subscription to ``issuer``'s invoices with :class:`NodeUnreachable`."""
        for invoice in self._invoices.values():
            if invoice.issuer == issuer:
                for queue in invoice.subscribers:
                    queue.put_nowait(None)
        for queue in self._node_subscribers.get(issuer, ()):
            queue.put_nowait(None)

    # -- payments (called by SimNode) -----------------------------------------------------------

    @_changes
    def send(
        self,
        payer: str,
        payee: str,
        payment_hash: bytes,
        amount_msat: int,
        *,
        max_fee_msat: int | None,
        time_lock: int = 18,
        cltv_limit: int | None = None,
    ) -> PaymentResult:
        """Send one HTLC unless this payer already paid or is paying this hash.

        ``time_lock`` is the payment's total time lock in blocks (the payee's final CLTV: the
        simulator has no hops); over ``cltv_limit`` no route fits. Returns the payment as it
        stands: IN_FLIGHT while a hold invoice holds it, else final.
        """
        key = (payer, payment_hash)
        earlier = self._payments.get(key)
        if earlier is not None and earlier.status is not PaymentStatus.FAILED:
            return earlier.result()
        payment = PaymentRecord(payment_hash, amount_msat)
        self._payments[key] = payment
        fee_msat = 0 if payee == payer else self.routing_fee_msat(amount_msat)
        invoice = self._invoices.get((payee, payment_hash))
        if invoice is not None:
            self._expire_if_due(invoice)
        if self._failures_queued:
            return self._fail(payment, self._failures_queued.pop(0))
        if payee in self._unroutable or payee not in self._balances:
            return self._fail(payment, NO_ROUTE)
        if max_fee_msat is not None and fee_msat > max_fee_msat:
            return self._fail(payment, NO_ROUTE)
        if cltv_limit is not None and time_lock > cltv_limit:
            return self._fail(payment, NO_ROUTE)
        if self._balances[payer] < amount_msat + fee_msat:
            return self._fail(payment, INSUFFICIENT_BALANCE)
        if payee != payer and (
            self._inbound[payee] < amount_msat or self._held_htlcs(payee) >= self._htlc_slots[payee]
        ):
            return self._fail(payment, NO_ROUTE)  # the payee's channels cannot take the HTLC
        if (
            invoice is None
            or invoice.state is not InvoiceState.OPEN
            or amount_msat < invoice.amount_msat
        ):
            return self._fail(payment, INCORRECT_PAYMENT_DETAILS)
        self._balances[payer] -= amount_msat + fee_msat
        if payee != payer:
            self._inbound[payee] -= amount_msat
        payment.fee_msat = fee_msat
        invoice.state = InvoiceState.ACCEPTED
        invoice.payer = payer
        invoice.payment = payment
        invoice.htlcs = (
            AcceptedHtlc(
                amount_msat=amount_msat,
                accept_height=self._height,
                expiry_height=self._height + invoice.cltv_expiry_delta,
            ),
        )
        if invoice.preimage is None:
            self._notify(invoice)
        else:
            self._settle(invoice, invoice.preimage)
        return payment.result()

    def payment_result(self, payer: str, payment_hash: bytes) -> PaymentResult:
        payment = self._payments.get((payer, payment_hash))
        if payment is None:
            return PaymentResult(payment_hash=payment_hash, status=PaymentStatus.UNKNOWN)
        return payment.result()

    async def wait_payment(
        self, payer: str, payment_hash: bytes, timeout_seconds: float
    ) -> PaymentResult:
        """Wait up to ``timeout_seconds`` for the payment to be final; return it as it stands."""
        payment = self._payments[(payer, payment_hash)]
        try:
            async with asyncio.timeout(timeout_seconds):
                await payment.done.wait()
        except TimeoutError:
            pass
        return payment.result()

    # -- internals --------------------------------------------------------------------------------

    def _invoice(self, issuer: str, payment_hash: bytes) -> InvoiceRecord:
        invoice = self._invoices.get((issuer, payment_hash))
        if invoice is None:
            raise InvoiceNotFound(f"no invoice with payment hash {payment_hash.hex()}")
        self._expire_if_due(invoice)
        return invoice

    def _expire_if_due(self, invoice: InvoiceRecord) -> None:
        if invoice.state is InvoiceState.OPEN and self.clock() >= invoice.expires_at:
            self._cancel(invoice)

    def _settle(self, invoice: InvoiceRecord, preimage: bytes) -> None:
        payment, payer = invoice.payment, invoice.payer
        assert payment is not None and payer is not None, "only an ACCEPTED invoice settles"
        invoice.state = InvoiceState.SETTLED
        invoice.preimage = preimage
        self._balances[invoice.issuer] += payment.amount_msat
        if payer != invoice.issuer:
            self._inbound[payer] += payment.amount_msat
        payment.status = PaymentStatus.SUCCEEDED
        payment.preimage = preimage
        payment.done.set()
        self.settled_payments.append(
            SettledPayment(
                payment_hash=invoice.payment_hash,
                payer_pubkey_hex=payer,
                payee_pubkey_hex=invoice.issuer,
                amount_msat=payment.amount_msat,
                fee_msat=payment.fee_msat,
                height=self._height,
            )
        )
        self._notify(invoice)

    def _cancel(self, invoice: InvoiceRecord) -> None:
        """Cancel the invoice; a held HTLC goes back to its payer, fee included."""
        if invoice.state is InvoiceState.ACCEPTED:
            payment, payer = invoice.payment, invoice.payer
            assert payment is not None and payer is not None, "an ACCEPTED invoice has a payer"
            self._balances[payer] += payment.amount_msat + payment.fee_msat
            if payer != invoice.issuer:
                self._inbound[invoice.issuer] += payment.amount_msat
            self._fail(payment, INCORRECT_PAYMENT_DETAILS)
        invoice.state = InvoiceState.CANCELED
        invoice.htlcs = ()
        self._notify(invoice)

    @staticmethod
    def _fail(payment: PaymentRecord, reason: str) -> PaymentResult:
        payment.status = PaymentStatus.FAILED
        payment.failure_reason = reason
        payment.fee_msat = 0
        payment.done.set()
        return payment.result()

    def _notify(self, invoice: InvoiceRecord) -> None:
        status = invoice.status()
        for queue in (*invoice.subscribers, *self._node_subscribers.get(invoice.issuer, ())):
            queue.put_nowait(status)

    async def _node_updates(self, issuer: str) -> AsyncGenerator[InvoiceStatus, None]:
        queue: asyncio.Queue[InvoiceStatus | None] = asyncio.Queue()
        subscribers = self._node_subscribers.setdefault(issuer, [])
        subscribers.append(queue)
        try:
            for invoice in list(self._invoices.values()):
                if invoice.issuer == issuer:
                    self._expire_if_due(invoice)
                    if invoice.state not in FINAL_INVOICE_STATES:
                        yield invoice.status()
            while True:
                update = await queue.get()
                if update is None:
                    raise NodeUnreachable("subscription dropped: node unreachable")
                yield update
        finally:
            subscribers.remove(queue)

    @staticmethod
    async def _updates(invoice: InvoiceRecord) -> AsyncIterator[InvoiceStatus]:
        queue: asyncio.Queue[InvoiceStatus | None] = asyncio.Queue()
        invoice.subscribers.append(queue)
        try:
            status = invoice.status()
            while True:
                yield status
                if status.state in FINAL_INVOICE_STATES:
                    return
                update = await queue.get()
                if update is None:
                    raise NodeUnreachable("subscription dropped: node unreachable")
                status = update
        finally:
            invoice.subscribers.remove(queue)
