"""The background loop that moves swaps along, one :meth:`Watcher.tick` every ``poll_seconds``.

Submarine: lockup seen (amount checked) -> confirmed -> pay the invoice within a CLTV limit that
ends 20 blocks before the client's refund path opens -> paid -> wait briefly for the client's
cooperative claim signature, else claim by the script path. Reverse: hold invoice accepted ->
lock up -> settle with the preimage the client reveals (over the API, or in its script-path
claim on chain) -> or refund by the script path at the timeout and cancel the hold invoice.

Every step re-reads the chain and the node, and writes the record before it moves funds, so a
restarted server picks up where it stopped. Each swap is stepped under its own lock, shared with
the API handlers that change it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import traceback
from collections import defaultdict
from collections.abc import Callable

import structlog
from embit.transaction import Transaction

from taskhold.lightning.base import (
    InvoiceNotFound,
    InvoiceState,
    LightningBackend,
    LightningError,
    NodeUnreachable,
    PaymentFailed,
    PaymentStatus,
    WrongInvoiceState,
)
from taskhold.swaps.tree import SwapType

from .chain import ChainRefused, SwapChain
from .config import SwapServerConfig
from .lifecycle import Status
from .records import RecordStore, SwapRecord
from .signing import (
    ClaimOffer,
    SigningRefused,
    reverse_script_path_refund,
    submarine_claim_tx,
    submarine_script_path_claim,
)

__all__ = ["CLTV_DELTA_BLOCKS", "COOPERATIVE_CLAIM_WAIT_SECONDS", "Watcher"]

log = structlog.get_logger("taskhold.devnet.swap_server")

CLTV_DELTA_BLOCKS = 20
"""Boltz's ``cltvDelta``: its LN payment must expire this many blocks before the refund opens."""
COOPERATIVE_CLAIM_WAIT_SECONDS = 10.0
"""How long the server waits for the client's cooperative claim signature before it claims by
the script path (the client may be offline; the script path needs nobody)."""
PAYMENT_TIMEOUT_SECONDS = 60


class Watcher:
    """Steps every unfinished swap; ``claim_offers`` holds the open cooperative-claim sessions."""

    def __init__(
        self,
        *,
        lightning: LightningBackend,
        chain: SwapChain,
        records: RecordStore,
        config: SwapServerConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lightning = lightning
        self.chain = chain
        self.records = records
        self.config = config
        self.clock = clock
        self.claim_offers: dict[str, ClaimOffer] = {}
        self.cooperative = config.cooperative
        """Whether the server gives (and asks for) cooperative signatures; the devnet admin
        endpoint switches it at run time."""
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._payments: dict[str, asyncio.Task[None]] = {}
        self._payment_errors: dict[str, str] = {}
        self.errors: list[tuple[str, Exception]] = []
        """Unexpected failures of a swap's step (bugs), kept for tests to look at."""

    def lock(self, swap_id: str) -> asyncio.Lock:
        return self._locks[swap_id]

    async def run(self) -> None:
        """Tick forever; a failing tick is logged and retried, never fatal."""
        while True:
            try:
                await self.tick()
            except Exception as exc:  # the loop must outlive a flaky node or chain
                log.warning("swap_server.tick_failed", error=repr(exc))
            await asyncio.sleep(self.config.poll_seconds)

    async def close(self) -> None:
        for task in self._payments.values():
            task.cancel()
        for task in self._payments.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._payments.clear()

    async def tick(self) -> None:
        height = await self.chain.height()
        for record in self.records:
            if record.final:
                continue
            async with self.lock(record.id):
                if self.records.get(record.id) is not record:
                    continue  # removed while we waited (its creation failed)
                try:
                    if record.kind is SwapType.SUBMARINE:
                        await self._submarine(record, height)
                    else:
                        await self._reverse(record, height)
                except (LightningError, ChainRefused, SigningRefused) as exc:
                    log.warning("swap_server.step_failed", swap=record.id, error=repr(exc))
                except Exception as exc:  # a bug: one swap must not stop the others
                    # no traceback with locals: a record in scope holds the swap's secret key
                    where = traceback.extract_tb(exc.__traceback__)[-1]
                    log.error(
                        "swap_server.step_crashed",
                        swap=record.id,
                        error=repr(exc),
                        at=f"{where.filename}:{where.lineno}",
                    )
                    self.errors.append((record.id, exc))

    # -- submarine ----------------------------------------------------------------------------

    async def _submarine(self, record: SwapRecord, height: int) -> None:
        S = Status
        unpaid = (S.INVOICE_SET, S.TX_MEMPOOL, S.TX_CONFIRMED, S.TX_LOCKUP_FAILED)
        if record.status in unpaid and height >= record.timeout_block_height:
            self.records.move(record, S.SWAP_EXPIRED, failure_reason="swap expired")
            return
        if record.status in (S.INVOICE_SET, S.TX_MEMPOOL):
            await self._look_for_lockup(record)
        if record.status is S.TX_CONFIRMED:
            await self._start_payment(record, height)
        elif record.status is S.INVOICE_PENDING:
            await self._follow_payment(record)
        if record.status is S.INVOICE_PAID:
            destination = await self.chain.new_address()
            claim = submarine_claim_tx(record, destination, self.config.submarine_miner_fee_sat)
            self.records.move(
                record, S.TX_CLAIM_PENDING, claim_tx_hex=claim, claim_pending_since=self.clock()
            )
        elif record.status is S.TX_CLAIM_PENDING:
            await self._claim(record)

    async def _look_for_lockup(self, record: SwapRecord) -> None:
        tree = record.tree()
        found = await self.chain.find_output(tree.script_pubkey, since_height=record.created_height)
        if found is None:
            return
        lockup = {
            "lockup_txid": found.txid,
            "lockup_vout": found.vout,
            "lockup_tx_hex": found.tx_hex,
            "lockup_amount_sat": found.amount_sat,
            "lockup_confirmed": found.confirmations > 0,
        }
        if found.amount_sat != record.onchain_amount_sat:
            reason = (
                "locked up amount is less than expected"
                if found.amount_sat < record.onchain_amount_sat
                else "locked up amount is more than expected"
            )
            details = {"expected": record.onchain_amount_sat, "actual": found.amount_sat}
            self.records.move(
                record,
                Status.TX_LOCKUP_FAILED,
                failure_reason=reason,
                failure_details=details,
                **lockup,
            )
            return
        if found.confirmations > 0:
            self.records.move(record, Status.TX_CONFIRMED, **lockup)
        elif record.status is Status.INVOICE_SET:
            self.records.move(record, Status.TX_MEMPOOL, **lockup)

    async def _start_payment(self, record: SwapRecord, height: int) -> None:
        cltv_limit = (record.timeout_block_height - height) - CLTV_DELTA_BLOCKS
        if cltv_limit <= 0:
            return  # too late to pay safely; the swap expires at its timeout
        self.records.move(record, Status.INVOICE_PENDING)  # written before the payment goes out
        self._spawn_payment(record)

    def _spawn_payment(self, record: SwapRecord) -> None:
        running = self._payments.get(record.id)
        if running is not None and not running.done():
            return
        self._payments[record.id] = asyncio.create_task(self._pay(record))

    async def _pay(self, record: SwapRecord) -> None:
        """Pay the invoice; the outcome is read back with ``lookup_payment`` by the next ticks."""
        try:
            height = await self.chain.height()
            cltv_limit = (record.timeout_block_height - height) - CLTV_DELTA_BLOCKS
            if cltv_limit <= 0:
                self._payment_errors[record.id] = "too close to the swap timeout to pay"
                return
            await self.lightning.pay_invoice(
                record.invoice,
                max_fee_msat=max(1000, record.invoice_amount_sat * 10),  # 1% in msat
                timeout_seconds=PAYMENT_TIMEOUT_SECONDS,
                cltv_limit=cltv_limit,
            )
        except (PaymentFailed, NodeUnreachable):
            pass  # recorded by the node (FAILED) or retried
        except LightningError as exc:  # nothing was attempted: the invoice cannot be paid
            self._payment_errors[record.id] = str(exc)

    async def _follow_payment(self, record: SwapRecord) -> None:
        result = await self.lightning.lookup_payment(record.preimage_hash)
        if result.status is PaymentStatus.SUCCEEDED and result.preimage is not None:
            if hashlib.sha256(result.preimage).digest() != record.preimage_hash:
                log.error("swap_server.bad_preimage_from_node", swap=record.id)
                return
            self.records.move(record, Status.INVOICE_PAID, preimage_hex=result.preimage.hex())
        elif result.status is PaymentStatus.FAILED:
            reason = result.failure_reason or "payment failed"
            self.records.move(record, Status.INVOICE_FAILED_TO_PAY, failure_reason=reason)
        elif result.status is PaymentStatus.UNKNOWN:
            error = self._payment_errors.pop(record.id, None)
            if error is not None:
                self.records.move(record, Status.INVOICE_FAILED_TO_PAY, failure_reason=error)
            else:
                self._spawn_payment(record)  # e.g. after a restart before the payment went out

    async def _claim(self, record: SwapRecord) -> None:
        assert record.lockup_txid is not None and record.lockup_vout is not None
        if record.failure_reason is not None:
            return  # the lockup is gone to the client's refund: nothing left to claim
        spend = await self.chain.find_spend(
            record.lockup_txid, record.lockup_vout, since_height=record.created_height
        )
        if spend is not None:
            tx = Transaction.parse(bytes.fromhex(spend))
            if record.tree().refund_leaf in tx.vin[0].witness.items:
                # the server stayed down past the timeout and the client took its refund
                log.error("swap_server.lockup_refunded_before_claim", swap=record.id)
                self.records.update(
                    record, failure_reason="the client refunded before the server claimed"
                )
                return
            # our claim is out (broadcast before a crash, or the cooperative one)
            self.records.move(record, Status.TX_CLAIMED, claim_txid=tx.txid().hex())
            self.claim_offers.pop(record.id, None)
            return
        since = record.claim_pending_since or 0.0
        if self.cooperative and self.clock() - since < COOPERATIVE_CLAIM_WAIT_SECONDS:
            return
        self.claim_offers.pop(record.id, None)
        txid = await self.chain.broadcast(submarine_script_path_claim(record))
        self.records.move(record, Status.TX_CLAIMED, claim_txid=txid)

    # -- reverse ------------------------------------------------------------------------------

    async def _reverse(self, record: SwapRecord, height: int) -> None:
        if record.status is Status.SWAP_CREATED:
            await self._reverse_waiting(record, height)
        elif record.status in (Status.TX_MEMPOOL, Status.TX_CONFIRMED):
            await self._reverse_locked(record, height)

    async def _reverse_waiting(self, record: SwapRecord, height: int) -> None:
        try:
            invoice = await self.lightning.lookup_invoice(record.preimage_hash)
        except InvoiceNotFound:
            if record.invoice:
                raise
            # the server stopped between writing the record and creating the invoice
            self.records.move(record, Status.SWAP_EXPIRED, failure_reason="no invoice")
            return
        if invoice.state is InvoiceState.CANCELED:
            self.records.move(record, Status.INVOICE_EXPIRED, failure_reason="invoice expired")
            return
        if height >= record.timeout_block_height:
            await self._cancel_quietly(record)
            self.records.move(record, Status.SWAP_EXPIRED, failure_reason="swap expired")
            return
        if invoice.state is not InvoiceState.ACCEPTED:
            return
        tree = record.tree()
        if record.lockup_txid is None:
            found = await self.chain.find_output(
                tree.script_pubkey, since_height=record.created_height
            )
            if found is None:
                try:
                    txid = await self.chain.send_to_address(
                        record.address, record.onchain_amount_sat
                    )
                except Exception as exc:  # the wallet could not pay: bounce the HTLC
                    await self._cancel_quietly(record)
                    self.records.move(record, Status.TX_FAILED, failure_reason=str(exc))
                    return
                self.records.update(record, lockup_txid=txid)
        found = await self.chain.find_output(tree.script_pubkey, since_height=record.created_height)
        if found is None:
            return  # sent, not visible yet: the next tick finds it
        self.records.move(
            record,
            Status.TX_MEMPOOL,
            lockup_txid=found.txid,
            lockup_vout=found.vout,
            lockup_tx_hex=found.tx_hex,
            lockup_amount_sat=found.amount_sat,
            lockup_confirmed=found.confirmations > 0,
        )

    async def _reverse_locked(self, record: SwapRecord, height: int) -> None:
        assert record.lockup_txid is not None and record.lockup_vout is not None
        if record.claim_txid is not None and record.failure_reason is not None:
            return  # claimed, but the invoice could no longer be settled: nothing left to do
        tree = record.tree()
        spend = await self.chain.find_spend(
            record.lockup_txid, record.lockup_vout, since_height=record.created_height
        )
        if spend is not None:
            tx = Transaction.parse(bytes.fromhex(spend))
            txid = tx.txid().hex()
            items = [item for vin in tx.vin for item in vin.witness.items]
            if tree.refund_leaf in items:  # our own refund (broadcast before a crash)
                await self._cancel_quietly(record)
                self.records.move(record, Status.TX_REFUNDED, refund_txid=txid)
                return
            preimage = next(
                (
                    i
                    for i in items
                    if len(i) == 32 and hashlib.sha256(i).digest() == record.preimage_hash
                ),
                None,
            )
            if preimage is None:
                # a key-path claim: the client had our partial, so it showed us the preimage
                self.records.update(record, claim_txid=txid)
                return
            try:
                await self.lightning.settle_invoice(preimage)
            except (WrongInvoiceState, InvoiceNotFound):
                # the hold was cancelled first (the HTLC neared its expiry): the server lost this
                # one; keep the facts and stop retrying
                log.error("swap_server.claimed_after_cancel", swap=record.id)
                self.records.update(
                    record,
                    preimage_hex=preimage.hex(),
                    claim_txid=txid,
                    failure_reason="claimed on chain after the hold invoice was cancelled",
                )
                return
            self.records.move(
                record, Status.INVOICE_SETTLED, preimage_hex=preimage.hex(), claim_txid=txid
            )
            return
        if height >= record.timeout_block_height:
            destination = await self.chain.new_address()
            refund = reverse_script_path_refund(
                record, destination, self.config.reverse_claim_fee_sat, locktime=height
            )
            txid = await self.chain.broadcast(refund)
            await self._cancel_quietly(record)
            self.records.move(record, Status.TX_REFUNDED, refund_txid=txid)
            return
        if record.status is Status.TX_MEMPOOL:
            found = await self.chain.find_output(
                tree.script_pubkey, since_height=record.created_height
            )
            if found is not None and found.confirmations > 0:
                self.records.move(record, Status.TX_CONFIRMED, lockup_confirmed=True)

    async def _cancel_quietly(self, record: SwapRecord) -> None:
        try:
            await self.lightning.cancel_invoice(record.preimage_hash)
        except LightningError as exc:
            log.warning("swap_server.cancel_failed", swap=record.id, error=repr(exc))
