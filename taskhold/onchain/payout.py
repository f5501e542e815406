"""A worker takes a task's reward on chain: a reverse swap whose invoice is the payout invoice.

The worker's client makes the preimage and the claim key and keeps both; Boltz's hold invoice
for that preimage's hash becomes the task's payout invoice. taskhold pays it under its usual
pay-then-settle rule; Boltz locks the amount on chain to the swap's address; the client claims
it (revealing the preimage, cooperatively or by the claim leaf), Boltz settles, taskhold's
payment succeeds and the task is PAID. The preimage is revealed only for a lockup of at least
the agreed amount.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey

from taskhold.boltz import statuses
from taskhold.boltz.api import BoltzApi
from taskhold.boltz.errors import BoltzRefused
from taskhold.boltz.models import ReverseRequest
from taskhold.boltz.records import SwapRecords, reverse_record
from taskhold.boltz.verify import decode_invoice, verify_reverse
from taskhold.boltz.ws import wait_for_status
from taskhold.client import TaskholdClient
from taskhold.swaps.errors import SwapError, SwapMismatch
from taskhold.swaps.fees import FeeQuote, check_stated_amount, reverse_quote
from taskhold.swaps.timing import check_reverse_fits
from taskhold.swaps.tree import Network

from .funding import PAIR, FeesRefused
from .spending import SPEND_FEE_SAT, Spend, claim_reverse_lockup, destination_script, lockup_utxo

__all__ = ["CLAIM_BLOCKS", "PayoutSwap", "claim_payout", "start_payout_swap"]

CLAIM_BLOCKS = 12
"""Blocks the worker wants between now and Boltz's refund path to get a claim confirmed."""
HOLD_MARGIN_BLOCKS = 18
"""What taskhold keeps between a payout's time lock and the hold's end (lnd's holdexpirydelta
and the payout margin): the client's estimate; taskhold checks the exact bound itself."""


@dataclass(frozen=True, slots=True)
class PayoutSwap:
    """A reverse swap whose invoice is ready to be the task's payout invoice."""

    swap_id: str
    invoice: str
    quote: FeeQuote
    timeout_block_height: int


def _payout_cltv_limit(task: dict[str, Any], height: int) -> int:
    """The longest payout time lock the task's hold leaves room for, as the client sees it."""
    funding = task.get("funding") or {}
    accepted = funding.get("accepted_htlc_expiry_height")
    if accepted:
        return int(accepted) - height - HOLD_MARGIN_BLOCKS
    return int(funding.get("cltv_expiry_delta") or 0) - HOLD_MARGIN_BLOCKS


async def start_payout_swap(
    client: TaskholdClient,
    api: BoltzApi,
    records: SwapRecords,
    task_id: str,
    *,
    network: Network,
    max_fee_sat: int,
    accept: Callable[[FeeQuote], bool] | None = None,
) -> PayoutSwap:
    """Create and check the reverse swap for ``task_id``'s payout, and store it; the caller
    hands ``invoice`` to taskhold (with the proof, or as a new payout invoice)."""
    task = await client.get_task(task_id)
    payout_msat = int(task["payout_msat"])
    if payout_msat % 1000:
        raise SwapError("a payout taken by swap must be a whole number of sats")
    invoice_sat = payout_msat // 1000
    pair = (await api.reverse_pairs()).get(PAIR)
    if pair is None:
        raise SwapError("Boltz offers no BTC/BTC reverse swap")
    if not pair.minimal <= invoice_sat <= pair.maximal:
        raise SwapError(
            f"{invoice_sat} sat is outside Boltz's reverse limits ({pair.minimal}..{pair.maximal})"
        )
    quote = reverse_quote(invoice_sat, pair.percentage, pair.lockup_fee, pair.claim_fee)
    if quote.swap_fee + quote.miner_fees > max_fee_sat:
        raise FeesRefused(
            f"the swap costs {quote.swap_fee} sat in swap fees and {quote.miner_fees} sat in"
            f" miner fees, above the {max_fee_sat} sat accepted"
        )
    if accept is not None and not accept(quote):
        raise FeesRefused("the fees were not accepted")
    preimage = secrets.token_bytes(32)
    preimage_hash = hashlib.sha256(preimage).digest()
    key = PrivateKey()
    response = await api.create_reverse(
        ReverseRequest(
            preimage_hash=preimage_hash,
            claim_public_key=key.public_key.format(),
            invoice_amount=invoice_sat,
            pair_hash=pair.hash,
        )
    )
    tree = verify_reverse(
        response,
        claim_pubkey=key.public_key.format(),
        preimage_hash=preimage_hash,
        network=network,
        invoice_amount_sat=invoice_sat,
    )
    check_stated_amount(quote, response.onchain_amount, "onchainAmount")
    invoice = decode_invoice(response.invoice)
    height = await api.chain_height()
    check_reverse_fits(
        invoice_min_final_cltv=invoice.min_final_cltv,
        route_cltv=0,
        payout_cltv_limit=_payout_cltv_limit(task, height),
        timeout_block_height=response.timeout_block_height,
        height=height,
        claim_blocks=CLAIM_BLOCKS,
        invoice_expiry_s=invoice.expires_at - int(time.time()),
    )
    records.create(
        reverse_record(
            response,
            tree,
            secret_key=key.secret,
            preimage=preimage,
            invoice_amount_sat=invoice_sat,
            task_id=task_id,
            network=network,
        )
    )
    records.move(response.id, "invoice_handed")
    return PayoutSwap(response.id, response.invoice, quote, response.timeout_block_height)


async def claim_payout(
    client: TaskholdClient | None,
    api: BoltzApi,
    records: SwapRecords,
    swap_id: str,
    address: str,
    *,
    timeout_s: float,
    zero_conf: bool = False,
    poll_s: float = 2.0,
    fee_sat: int = SPEND_FEE_SAT,
) -> Spend:
    """Wait for Boltz's lockup (confirmed, or in the mempool with ``zero_conf``), claim it to
    ``address``, broadcast and record the claim; reported to the task's log with ``client``."""
    record = records.get(swap_id)
    if record.preimage_hex is None or record.state not in (
        "created",
        "invoice_handed",
        "lockup_seen",
    ):
        raise SwapError(f"swap {swap_id} is not a reverse swap awaiting its claim ({record.state})")
    wanted = {statuses.TRANSACTION_CONFIRMED, statuses.INVOICE_SETTLED}
    if zero_conf:
        wanted.add(statuses.TRANSACTION_MEMPOOL)
    status = await wait_for_status(api, swap_id, wanted, timeout_s=timeout_s, interval=poll_s)
    lockup_hex = status.transaction.hex if status.transaction else None
    if lockup_hex is None:
        lockup_hex = (await api.reverse_lockup_transaction(swap_id)).hex
    if lockup_hex is None:
        raise SwapMismatch(f"Boltz shows no lockup transaction for swap {swap_id}")
    utxo = lockup_utxo(lockup_hex, record.tree())
    if utxo.amount_sat < record.expected_amount_sat:
        raise SwapMismatch(
            f"Boltz locked {utxo.amount_sat} sat, not the agreed {record.expected_amount_sat}:"
            " the preimage stays secret"
        )
    if record.state == "created":
        record = records.move(swap_id, "invoice_handed")
    if record.state == "invoice_handed":
        record = records.move(swap_id, "lockup_seen", txid=utxo.txid)
    spend = await claim_reverse_lockup(
        api,
        swap_id,
        utxo,
        bytes.fromhex(record.secret_key_hex),
        bytes.fromhex(record.preimage_hex or ""),
        destination_script(address),
        fee_sat=fee_sat,
    )
    try:
        await api.broadcast(spend.hex)
    except BoltzRefused as refused:
        raise SwapError(f"the claim {spend.txid} was not accepted: {refused.message}") from None
    records.move(swap_id, "claimed", txid=spend.txid)
    if client is not None:
        await client.report_swap(
            record.task_id,
            role="payout",
            swap_id=swap_id,
            swap_api=api.base_url,
            lockup_txid=utxo.txid,
            claim_txid=spend.txid,
        )
    return spend
