"""An employer funds a task from on-chain coins: a submarine swap into the task's hold invoice.

taskhold issues the hold invoice as for any task. The employer's client creates the swap with a
refund key it keeps, checks Boltz's answer against its own facts (tree, amount, clocks), stores
the swap before the lockup, pays the lockup from its own wallet and reports the lockup txid to
the task's public log. Boltz pays the hold invoice once the lockup confirms, and the task is
FUNDED. If the hold is cancelled, Boltz's payment fails and :func:`refund_funding` takes the
coins back: cooperatively at once, or by the refund leaf after the timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey

from taskhold.boltz.api import BoltzApi
from taskhold.boltz.errors import BoltzRefused
from taskhold.boltz.models import SubmarineRequest
from taskhold.boltz.records import SwapRecord, SwapRecords, submarine_record
from taskhold.boltz.verify import decode_invoice, verify_submarine
from taskhold.client import TaskholdClient
from taskhold.swaps.cooperative import answer_submarine_claim
from taskhold.swaps.errors import SwapError, SwapMismatch
from taskhold.swaps.fees import FeeQuote, check_stated_amount, submarine_quote
from taskhold.swaps.timing import check_submarine_fits
from taskhold.swaps.tree import Network

from .spending import SPEND_FEE_SAT, Spend, destination_script, lockup_utxo, refund_submarine_lockup
from .wallet import OnChainWallet

__all__ = ["FeesRefused", "FundingSwap", "cosign_boltz_claim", "fund_by_swap", "refund_funding"]

PAIR = ("BTC", "BTC")


class FeesRefused(SwapError):
    """The swap's fees are above what the payer accepts; nothing was created or paid."""


@dataclass(frozen=True, slots=True)
class FundingSwap:
    """A submarine swap whose lockup was sent: the task is funded once Boltz pays."""

    swap_id: str
    address: str
    lockup_txid: str
    quote: FeeQuote
    timeout_block_height: int


def _hold_seconds(task: dict[str, Any], now: int) -> int:
    """How long taskhold may need to hold the employer's payment: to the deadline and through
    the review and dispute windows."""
    deadline = int(task["deadline_at"])
    return max(0, deadline - now) + int(task["review_window_s"]) + int(task["dispute_window_s"])


async def fund_by_swap(
    client: TaskholdClient,
    api: BoltzApi,
    wallet: OnChainWallet,
    records: SwapRecords,
    task_id: str,
    *,
    network: Network,
    max_fee_sat: int,
    accept: Callable[[FeeQuote], bool] | None = None,
) -> FundingSwap:
    """Fund ``task_id``'s hold invoice on chain. ``max_fee_sat`` caps swap plus miner fees;
    ``accept`` sees the quote before anything is created (return False to stop)."""
    await client.request_funding(task_id)
    task = await client.get_task(task_id)
    funding = task.get("funding") or {}
    invoice_text = funding.get("payment_request")
    if not invoice_text:
        raise SwapError(f"task {task_id} has no hold invoice to pay")
    invoice = decode_invoice(invoice_text)
    if invoice.network != network.value:
        raise SwapMismatch(f"the hold invoice is for {invoice.network!r}, not {network.value!r}")
    if invoice.amount_msat is None or invoice.amount_msat % 1000:
        raise SwapMismatch("a hold invoice paid by swap must ask a whole number of sats")
    invoice_sat = invoice.amount_msat // 1000
    pair = (await api.submarine_pairs()).get(PAIR)
    if pair is None:
        raise SwapError("Boltz offers no BTC/BTC submarine swap")
    if not pair.minimal <= invoice_sat <= pair.maximal:
        raise SwapError(
            f"{invoice_sat} sat is outside Boltz's submarine limits"
            f" ({pair.minimal}..{pair.maximal} sat)"
        )
    quote = submarine_quote(invoice_sat, pair.percentage, pair.miner_fees)
    if quote.swap_fee + quote.miner_fees > max_fee_sat:
        raise FeesRefused(
            f"the swap costs {quote.swap_fee} sat in swap fees and {quote.miner_fees} sat in"
            f" miner fees, above the {max_fee_sat} sat accepted"
        )
    if accept is not None and not accept(quote):
        raise FeesRefused("the fees were not accepted")
    key = PrivateKey()
    response = await api.create_submarine(
        SubmarineRequest(
            invoice=invoice_text, refund_public_key=key.public_key.format(), pair_hash=pair.hash
        )
    )
    tree = verify_submarine(
        response,
        refund_pubkey=key.public_key.format(),
        payment_hash=invoice.payment_hash,
        network=network,
    )
    check_stated_amount(quote, response.expected_amount, "expectedAmount")
    now = int(time.time())
    check_submarine_fits(
        timeout_block_height=response.timeout_block_height,
        height=await api.chain_height(),
        invoice_cltv_expiry_delta=invoice.min_final_cltv,
        invoice_expiry_s=invoice.expires_at - now,
        hold_seconds=_hold_seconds(task, now),
    )
    record = records.create(
        submarine_record(
            response,
            tree,
            secret_key=key.secret,
            invoice=invoice_text,
            invoice_amount_sat=invoice_sat,
            payment_hash=invoice.payment_hash,
            task_id=task_id,
            network=network,
        )
    )
    txid = await wallet.send_to_address(record.address, response.expected_amount)
    records.move(record.swap_id, "lockup_sent", txid=txid)
    await client.report_swap(
        task_id, role="funding", swap_id=record.swap_id, swap_api=api.base_url, lockup_txid=txid
    )
    return FundingSwap(record.swap_id, record.address, txid, quote, response.timeout_block_height)


async def refund_funding(
    client: TaskholdClient | None,
    api: BoltzApi,
    records: SwapRecords,
    swap_id: str,
    address: str,
    *,
    fee_sat: int = SPEND_FEE_SAT,
) -> Spend:
    """Take back a funding swap's lockup to ``address``, broadcast it and record it; reported
    to the task's log when ``client`` is given. Raises ``RefundNotYet`` before the timeout
    while Boltz will not co-sign."""
    record = records.get(swap_id)
    lockup = await api.submarine_lockup_transaction(swap_id)
    if record.state == "created":  # the lockup went out, and the client stopped before noting it
        record = records.move(swap_id, "lockup_sent", txid=lockup.id)
    _refundable(record)
    if lockup.hex is None or lockup.id != record.lockup_txid:
        raise SwapMismatch(f"Boltz shows lockup {lockup.id}, not ours ({record.lockup_txid})")
    utxo = lockup_utxo(lockup.hex, record.tree())
    spend = await refund_submarine_lockup(
        api,
        swap_id,
        utxo,
        bytes.fromhex(record.secret_key_hex),
        destination_script(address),
        fee_sat=fee_sat,
    )
    try:
        await api.broadcast(spend.hex)
    except BoltzRefused as refused:
        raise SwapError(f"the refund {spend.txid} was not accepted: {refused.message}") from None
    if record.state == "lockup_sent":
        records.move(swap_id, "failed")
    records.move(swap_id, "refunded", txid=spend.txid)
    if client is not None:
        await client.report_swap(
            record.task_id,
            role="funding",
            swap_id=swap_id,
            swap_api=api.base_url,
            refund_txid=spend.txid,
        )
    return spend


def _refundable(record: SwapRecord) -> None:
    if record.state not in ("lockup_sent", "failed") or record.lockup_txid is None:
        raise SwapError(f"swap {record.swap_id} has no lockup to refund (it is {record.state})")


async def cosign_boltz_claim(api: BoltzApi, records: SwapRecords, swap_id: str) -> None:
    """Co-sign Boltz's claim of the lockup once it shows the hold invoice's preimage: the
    proof it paid the task's hold invoice. Optional (Boltz claims by its leaf otherwise), but
    cheaper for both; the swap is then over for the employer."""
    record = records.get(swap_id)
    if record.state != "lockup_sent":
        raise SwapError(f"swap {swap_id} has no lockup awaiting Boltz's claim ({record.state})")
    details = await api.submarine_claim_details(swap_id)
    pub_nonce, partial = answer_submarine_claim(
        record.tree(),
        bytes.fromhex(record.secret_key_hex),
        boltz_pubnonce=details.pub_nonce,
        sighash=details.transaction_hash,
        preimage=details.preimage,
        invoice_payment_hash=bytes.fromhex(record.payment_hash_hex),
    )
    await api.post_submarine_claim_signature(swap_id, pub_nonce, partial)
    records.move(swap_id, "claimed")
