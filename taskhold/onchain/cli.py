"""``taskhold swaps list|refund|claim``: a participant's own swaps, from its swap records.

Recovery without taskhold: an employer whose funding swap failed takes its lockup back, and a
worker claims a reverse swap's lockup, with nothing but the records directory its client wrote
and a Boltz API URL. Nothing secret is printed: the records hold the keys and preimages, the
output names only swap ids, states, amounts and txids.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from taskhold.boltz.api import BoltzApi
from taskhold.boltz.errors import BoltzError, RecordError
from taskhold.boltz.records import SwapRecord, SwapRecords
from taskhold.swaps.errors import SwapError
from taskhold.swaps.tree import SwapType

from .funding import refund_funding
from .payout import claim_payout
from .spending import SPEND_FEE_SAT

__all__ = ["swaps_app"]

swaps_app = typer.Typer(
    help="Your Boltz swaps, from the records your client keeps: list, refund, claim.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
_console = Console(stderr=True, soft_wrap=True)

Records = Annotated[
    Path, typer.Option("--records", help="the swap records directory your client writes")
]
Boltz = Annotated[str, typer.Option("--boltz", help="the Boltz API URL, ending in /v2")]
Address = Annotated[str, typer.Option("--address", help="your bitcoin address to pay to")]
Json = Annotated[bool, typer.Option("--json", help="one JSON object on stdout")]
FeeSat = Annotated[int, typer.Option("--fee-sat", help="the spend's miner fee (sat)")]


def _public(record: SwapRecord) -> dict[str, Any]:
    """A record without its secret key and preimage."""
    return {
        "swap_id": record.swap_id,
        "kind": record.kind.value,
        "task_id": record.task_id,
        "state": record.state,
        "address": record.address,
        "amount_sat": record.expected_amount_sat,
        "timeout_block_height": record.timeout_block_height,
        "lockup_txid": record.lockup_txid,
        "claim_txid": record.claim_txid,
        "refund_txid": record.refund_txid,
    }


def _fail(message: str) -> typer.Exit:
    _console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


def _record(records: SwapRecords, swap_id: str, kind: SwapType) -> SwapRecord:
    try:
        record = records.get(swap_id)
    except RecordError as exc:
        raise _fail(str(exc)) from None
    if record.kind is not kind:
        raise _fail(f"swap {swap_id} is a {record.kind.value} swap, not a {kind.value} one")
    return record


@swaps_app.command("list")
def list_swaps(records: Records, as_json: Json = False) -> None:
    """Every swap in the records, the unfinished ones first."""
    try:
        found = SwapRecords(records).all()
    except RecordError as exc:
        raise _fail(str(exc)) from None
    found.sort(key=lambda record: record.finished)
    if as_json:
        print(json.dumps({"swaps": [_public(record) for record in found]}))
        return
    for record in found:
        line = _public(record)
        print(
            f"{line['swap_id']}  {line['kind']:9}  {line['state']:14}  {line['amount_sat']} sat"
            f"  timeout {line['timeout_block_height']}  task {line['task_id'][:16]}"
        )


@swaps_app.command()
def refund(
    swap_id: str,
    records: Records,
    boltz: Boltz,
    address: Address,
    fee_sat: FeeSat = SPEND_FEE_SAT,
    as_json: Json = False,
) -> None:
    """Take a failed funding swap's lockup back: cooperatively if Boltz co-signs, else by the
    refund path once the timeout has passed."""
    store = SwapRecords(records)
    _record(store, swap_id, SwapType.SUBMARINE)

    async def run() -> dict[str, Any]:
        async with BoltzApi(boltz) as api:
            spend = await refund_funding(None, api, store, swap_id, address, fee_sat=fee_sat)
        return {"swap_id": swap_id, "refund_txid": spend.txid, "cooperative": spend.cooperative}

    _print(_run(run), as_json, "refunded")


@swaps_app.command()
def claim(
    swap_id: str,
    records: Records,
    boltz: Boltz,
    address: Address,
    fee_sat: FeeSat = SPEND_FEE_SAT,
    timeout_s: Annotated[float, typer.Option(help="how long to wait for the lockup")] = 600.0,
    zero_conf: Annotated[bool, typer.Option(help="claim a lockup still in the mempool")] = False,
    as_json: Json = False,
) -> None:
    """Claim a reverse swap's lockup to your address once Boltz has locked it up."""
    store = SwapRecords(records)
    _record(store, swap_id, SwapType.REVERSE)

    async def run() -> dict[str, Any]:
        async with BoltzApi(boltz) as api:
            spend = await claim_payout(
                None,
                api,
                store,
                swap_id,
                address,
                timeout_s=timeout_s,
                zero_conf=zero_conf,
                fee_sat=fee_sat,
            )
        return {"swap_id": swap_id, "claim_txid": spend.txid, "cooperative": spend.cooperative}

    _print(_run(run), as_json, "claimed")


def _run(run: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = asyncio.run(run())
    except (BoltzError, SwapError, RecordError) as exc:
        raise _fail(str(exc)) from None
    return result


def _print(result: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps(result))
        return
    txid = result.get("refund_txid") or result.get("claim_txid")
    path = "cooperatively" if result["cooperative"] else "by the script path"
    print(f"swap {result['swap_id']} {what} {path} in {txid}")
