"""``taskhold swaps fund|payout|list|refund|claim``: a participant's own Boltz swaps.

``fund`` and ``payout`` run the employer's and the worker's flows over taskhold with the
participant's own Nostr key (a file) and on-chain wallet (an lnd node), showing the fees before
anything is created. ``list``, ``refund`` and ``claim`` need no taskhold at all: an employer
whose funding swap failed takes its lockup back, and a worker claims a reverse swap's lockup,
with nothing but the records directory its client wrote and a Boltz API URL. Nothing secret is
printed: the records hold the keys and preimages, the output names only swap ids, states,
amounts and txids.
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
from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.lightning.base import LightningError
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.nostr import NostrKeys
from taskhold.swaps.errors import SwapError
from taskhold.swaps.fees import FeeQuote
from taskhold.swaps.tree import Network, SwapType

from .funding import fund_by_swap, refund_funding
from .payout import claim_payout, start_payout_swap
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
Server = Annotated[str, typer.Option("--server", help="taskhold's URL")]
KeysFile = Annotated[
    Path, typer.Option("--keys", help="a file holding your Nostr secret key (nsec or hex)")
]
Wallet = Annotated[
    Path,
    typer.Option(
        "--lnd-connection-file", help="your lnd node's connection file (devnet.json form)"
    ),
]
WalletNode = Annotated[str, typer.Option("--lnd-node", help="the node's name in that file")]
MaxFee = Annotated[
    int, typer.Option("--max-fee-sat", help="the most you pay in swap and miner fees (sat)")
]
NetworkName = Annotated[
    str, typer.Option("--network", help="mainnet, testnet or regtest (the devnet)")
]
Yes = Annotated[bool, typer.Option("--yes", help="accept the fees without asking")]
NETWORKS = {"mainnet": Network.MAINNET, "testnet": Network.TESTNET, "regtest": Network.REGTEST}


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


def _network(name: str) -> Network:
    try:
        return NETWORKS[name]
    except KeyError:
        raise typer.BadParameter(f"one of {', '.join(NETWORKS)}", param_hint="--network") from None


def _keys(path: Path) -> NostrKeys:
    try:
        return NostrKeys.parse(path.read_text().strip())
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {path}: {exc.strerror}", param_hint="--keys"
        ) from None
    except ValueError:
        raise typer.BadParameter(f"{path} holds no Nostr secret key", param_hint="--keys") from None


def _accept(yes: bool, as_json: bool) -> Any:
    """Show the quote to the party who pays before anything is created."""

    def accept(quote: FeeQuote) -> bool:
        text = (
            f"you send {quote.payer_sends} sat, {quote.recipient_gets} sat arrive;"
            f" swap fee {quote.swap_fee} sat, miner fees {quote.miner_fees} sat"
        )
        _console.print(text)
        return yes or (not as_json and typer.confirm("go ahead?", err=True))

    return accept


@swaps_app.command()
def fund(
    task_id: str,
    server: Server,
    keys: KeysFile,
    boltz: Boltz,
    records: Records,
    wallet: Wallet,
    max_fee_sat: MaxFee,
    network: NetworkName = "regtest",
    wallet_node: WalletNode = "employer",
    yes: Yes = False,
    as_json: Json = False,
) -> None:
    """As the employer: pay the task's hold invoice from your on-chain wallet by a submarine
    swap; your refund key stays in --records."""
    net, secret = _network(network), _keys(keys)

    async def run() -> dict[str, Any]:
        chain = LndWallet.from_connection_file(wallet, wallet_node)
        try:
            async with TaskholdClient(server, secret) as client, BoltzApi(boltz) as api:
                swap = await fund_by_swap(
                    client,
                    api,
                    chain,
                    SwapRecords(records),
                    task_id,
                    network=net,
                    max_fee_sat=max_fee_sat,
                    accept=_accept(yes, as_json),
                )
        finally:
            await chain.close()
        return {
            "task_id": task_id,
            "swap_id": swap.swap_id,
            "lockup_txid": swap.lockup_txid,
            "lockup_sat": swap.quote.payer_sends,
            "swap_fee_sat": swap.quote.swap_fee,
            "miner_fees_sat": swap.quote.miner_fees,
            "timeout_block_height": swap.timeout_block_height,
        }

    result = _run(run)
    if as_json:
        print(json.dumps(result))
        return
    print(
        f"swap {result['swap_id']} locked {result['lockup_sat']} sat in {result['lockup_txid']};"
        " the task is funded once Boltz pays the hold invoice"
    )


@swaps_app.command()
def payout(
    task_id: str,
    server: Server,
    keys: KeysFile,
    boltz: Boltz,
    records: Records,
    address: Address,
    max_fee_sat: MaxFee,
    network: NetworkName = "regtest",
    timeout_s: Annotated[float, typer.Option(help="how long to wait for the lockup")] = 3600.0,
    yes: Yes = False,
    as_json: Json = False,
) -> None:
    """As the worker: take the reward on chain. Creates a reverse swap, hands its invoice to
    taskhold as your payout invoice, and claims the lockup to --address when Boltz locks it."""
    net, secret = _network(network), _keys(keys)
    store = SwapRecords(records)

    async def run() -> dict[str, Any]:
        async with TaskholdClient(server, secret) as client, BoltzApi(boltz) as api:
            swap = await start_payout_swap(
                client,
                api,
                store,
                task_id,
                network=net,
                max_fee_sat=max_fee_sat,
                accept=_accept(yes, as_json),
            )
            await client.update_payout_invoice(task_id, swap.invoice)
            _console.print(f"swap {swap.swap_id}: its invoice is now your payout invoice")
            spend = await claim_payout(
                client, api, store, swap.swap_id, address, timeout_s=timeout_s
            )
        return {
            "task_id": task_id,
            "swap_id": swap.swap_id,
            "claim_txid": spend.txid,
            "cooperative": spend.cooperative,
            "onchain_sat": store.get(swap.swap_id).expected_amount_sat,
        }

    _print(_run(run), as_json, "claimed")


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
    except (BoltzError, SwapError, RecordError, TaskholdAPIError, LightningError) as exc:
        raise _fail(str(exc)) from None
    return result


def _print(result: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps(result))
        return
    txid = result.get("refund_txid") or result.get("claim_txid")
    path = "cooperatively" if result["cooperative"] else "by the script path"
    print(f"swap {result['swap_id']} {what} {path} in {txid}")
