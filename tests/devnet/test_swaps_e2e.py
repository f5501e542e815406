"""The on-chain rails end to end (issue #14): real taproot swap outputs on btcd, the devnet swap
server playing Boltz on its own lnd node, taskhold on the escrow node, and the participants'
own clients (``taskhold.onchain``) holding their swap keys.

Each test checks exact balances: what the employer's wallet sent on chain (lockup and its miner
fee), what the worker received (in its channel or at its address), and that the task's public
log records the swap and audits clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.audit_logs import audit_stored_log
from support.devnet_network import DevnetHandle

from taskhold.boltz import statuses
from taskhold.boltz.api import BoltzApi
from taskhold.boltz.records import SwapRecords
from taskhold.boltz.ws import wait_for_status
from taskhold.client import TaskholdClient
from taskhold.devnet import control
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.nostr import NostrKeys
from taskhold.onchain.fallback import OnChainFallback, await_payout
from taskhold.onchain.funding import fund_by_swap, refund_funding
from taskhold.onchain.payout import claim_payout, start_payout_swap
from taskhold.onchain.spending import SPEND_FEE_SAT, RefundNotYet
from taskhold.server import free_port, running_server
from taskhold.services import build_services
from taskhold.swaps.tree import Network

from .live_stack import live_stack, one_database_url, settled_balance  # noqa: F401
from .test_escrow_e2e import ACCEPTANCE, AMOUNT_MSAT, LndStack, _unroutable_invoice, lnd_settings

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

MAX_FEE_SAT = 5_000
PROOF = {"url": "https://example.org/review"}


def swap_api_url(devnet: DevnetHandle) -> str:
    connection = json.loads(devnet.connection_file.read_text())
    return str(connection["swap_server"]["url"])


@contextlib.asynccontextmanager
async def swap_stack(
    devnet: DevnetHandle, tmp_path: Path, database_url: str, **settings: Any
) -> AsyncIterator[tuple[LndStack, BoltzApi]]:
    url = swap_api_url(devnet)
    # room for the swap server's reverse invoice CLTV (108) in the payout bound
    settings = {"payout_cltv_reserve_blocks": 150, **settings}
    async with (
        live_stack(devnet, tmp_path / "data", database_url, swap_api_url=url, **settings) as stack,
        BoltzApi(url) as api,
    ):
        await set_cooperative(url, True)
        yield stack, api
        await set_cooperative(url, True)


async def set_cooperative(url: str, enabled: bool) -> None:
    root = url.removesuffix("/v2")
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{root}/devnet/cooperative", json={"enabled": enabled})
        answer.raise_for_status()


async def new_task(employer: TaskholdClient) -> str:
    task = await employer.create_task(
        "Review a pull request", "", AMOUNT_MSAT, int(time.time()) + 1800, acceptance=ACCEPTANCE
    )
    return str(task["task_id"])


async def confirmed(wallet: LndWallet, devnet: DevnetHandle, *, settle_s: float = 1.0) -> int:
    """The wallet's confirmed on-chain balance once a block holds everything it sent."""
    await devnet.mine(1)
    await asyncio.sleep(settle_s)
    return await wallet.confirmed_balance_sat()


def mining(devnet: DevnetHandle) -> contextlib.AbstractAsyncContextManager[None]:
    """A block every 1.5 s while the body waits for confirmations."""
    return control.mining(devnet.data_dir, every_s=1.5)


async def funded_on_chain(
    stack: LndStack, api: BoltzApi, devnet: DevnetHandle, records: SwapRecords
) -> tuple[TaskholdClient, str, Any]:
    employer = stack.client()
    task_id = await new_task(employer)
    swap = await fund_by_swap(
        employer,
        api,
        stack.employer_wallet,
        records,
        task_id,
        network=Network.REGTEST,
        max_fee_sat=MAX_FEE_SAT,
    )
    # the employer's wallet is the devnet's mining address: count the lockup, not the balance
    sent, lockup_fee = await stack.employer_wallet.transaction_amounts(swap.lockup_txid)
    assert -sent == swap.quote.payer_sends + lockup_fee
    async with mining(devnet):
        await employer.wait_for_state(task_id, {"FUNDED"}, timeout_s=120)
    return employer, task_id, swap


async def audited_clean(stack: LndStack) -> Any:
    """The independent auditor over the stored log; it must find nothing."""
    audited = await audit_stored_log(stack.services)
    assert audited.clean, [finding.to_json() for finding in audited.findings]
    return audited


async def claimed_over_lightning(
    stack: LndStack, employer: TaskholdClient, worker: TaskholdClient
) -> str:
    """A task the employer's node funded over Lightning, claimed by ``worker``."""
    task_id = await new_task(employer)
    funding = (await employer.request_funding(task_id))["funding"]
    await stack.employer_wallet.send_payment(funding["payment_request"])
    await employer.wait_for_state(task_id, {"FUNDED"}, timeout_s=60)
    await worker.claim(task_id)
    return task_id


def swap_facts(task: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [swap for swap in task.get("swaps") or () if swap["role"] == role]


async def test_on_chain_funded_task_is_paid_over_lightning(
    devnet: DevnetHandle,
    tmp_path: Path,
    one_database_url: str,  # noqa: F811
) -> None:
    async with swap_stack(devnet, tmp_path, one_database_url) as (stack, api):
        records = SwapRecords(tmp_path / "employer-swaps")
        worker_before = await settled_balance(stack.worker_wallet)
        employer, task_id, swap = await funded_on_chain(stack, api, devnet, records)

        worker = stack.client()
        await worker.claim(task_id)
        task = await worker.get_task(task_id)
        invoice = await stack.worker_wallet.create_invoice(task["payout_msat"])
        await worker.submit_proof(task_id, PROOF, invoice.payment_request)
        await employer.approve(task_id)
        final = await employer.wait_for_state(task_id, {"PAID"}, timeout_s=120)
        async with mining(devnet):
            claimed = await wait_for_status(
                api, swap.swap_id, {statuses.TRANSACTION_CLAIMED}, timeout_s=120, interval=0.5
            )
        assert claimed.status == statuses.TRANSACTION_CLAIMED

        assert await settled_balance(stack.worker_wallet) - worker_before == final["payout_msat"]
        facts = swap_facts(final, "funding")
        assert [(f["swap_id"], f["lockup_txid"]) for f in facts] == [
            (swap.swap_id, swap.lockup_txid)
        ]
        await audited_clean(stack)


async def test_lightning_funded_task_is_paid_on_chain(
    devnet: DevnetHandle,
    tmp_path: Path,
    one_database_url: str,  # noqa: F811
) -> None:
    async with swap_stack(devnet, tmp_path, one_database_url) as (stack, api):
        employer, worker = stack.client(), stack.client()
        task_id = await claimed_over_lightning(stack, employer, worker)

        records = SwapRecords(tmp_path / "worker-swaps")
        payout = await start_payout_swap(
            worker, api, records, task_id, network=Network.REGTEST, max_fee_sat=MAX_FEE_SAT
        )
        await worker.submit_proof(task_id, PROOF, payout.invoice)
        address = await stack.worker_wallet.new_address()
        chain_before = await confirmed(stack.worker_wallet, devnet)
        await employer.approve(task_id)
        async with mining(devnet):
            spend = await claim_payout(
                worker, api, records, payout.swap_id, address, timeout_s=120, poll_s=0.5
            )
            final = await employer.wait_for_state(task_id, {"PAID"}, timeout_s=120)

        got = await confirmed(stack.worker_wallet, devnet) - chain_before
        assert got == records.get(payout.swap_id).expected_amount_sat - SPEND_FEE_SAT
        facts = swap_facts(final, "payout")
        assert [(f["swap_id"], f["claim_txid"]) for f in facts] == [(payout.swap_id, spend.txid)]
        audited = await audited_clean(stack)
        assert audited.summary.payout_proven


async def test_on_chain_funded_task_is_refunded_cooperatively(
    devnet: DevnetHandle,
    tmp_path: Path,
    one_database_url: str,  # noqa: F811
) -> None:
    async with swap_stack(devnet, tmp_path, one_database_url) as (stack, api):
        records = SwapRecords(tmp_path / "employer-swaps")
        employer, task_id, swap = await funded_on_chain(stack, api, devnet, records)
        await employer.cancel(task_id, reason="plans changed")
        await employer.wait_for_state(task_id, {"REFUNDED"}, timeout_s=60)
        await wait_for_status(
            api, swap.swap_id, {statuses.INVOICE_FAILED_TO_PAY}, timeout_s=60, interval=0.5
        )
        address = await stack.employer_wallet.new_address()
        spend = await refund_funding(employer, api, records, swap.swap_id, address)
        assert spend.cooperative

        await confirmed(stack.employer_wallet, devnet)
        back, _ = await stack.employer_wallet.transaction_amounts(spend.txid)
        assert back == swap.quote.payer_sends - SPEND_FEE_SAT  # the lockup, less the refund fee
        final = await employer.get_task(task_id)
        facts = swap_facts(final, "funding")
        assert [(f["lockup_txid"], f["refund_txid"]) for f in facts] == [
            (swap.lockup_txid, spend.txid)
        ]
        await audited_clean(stack)


async def test_refund_takes_the_script_path_after_the_timeout(
    devnet: DevnetHandle,
    tmp_path: Path,
    one_database_url: str,  # noqa: F811
) -> None:
    async with swap_stack(devnet, tmp_path, one_database_url) as (stack, api):
        records = SwapRecords(tmp_path / "employer-swaps")
        employer, task_id, swap = await funded_on_chain(stack, api, devnet, records)
        await set_cooperative(api.base_url, False)
        await employer.cancel(task_id, reason="plans changed")
        await employer.wait_for_state(task_id, {"REFUNDED"}, timeout_s=60)
        address = await stack.employer_wallet.new_address()
        with pytest.raises(RefundNotYet, match=str(swap.timeout_block_height)):
            await refund_funding(employer, api, records, swap.swap_id, address)
        height = await api.chain_height()
        await devnet.mine(swap.timeout_block_height - height)
        spend = await refund_funding(employer, api, records, swap.swap_id, address)
        assert not spend.cooperative

        await confirmed(stack.employer_wallet, devnet)
        back, _ = await stack.employer_wallet.transaction_amounts(spend.txid)
        assert back == swap.quote.payer_sends - SPEND_FEE_SAT


async def test_worker_who_never_claims_loses_nobody_anything(
    devnet: DevnetHandle,
    tmp_path: Path,
    one_database_url: str,  # noqa: F811
) -> None:
    async with swap_stack(devnet, tmp_path, one_database_url) as (stack, api):
        employer, worker = stack.client(), stack.client()
        employer_before = await settled_balance(stack.employer_wallet)
        task_id = await claimed_over_lightning(stack, employer, worker)
        records = SwapRecords(tmp_path / "worker-swaps")
        payout = await start_payout_swap(
            worker, api, records, task_id, network=Network.REGTEST, max_fee_sat=MAX_FEE_SAT
        )
        await worker.submit_proof(task_id, PROOF, payout.invoice)
        await employer.approve(task_id)
        await wait_for_status(
            api, payout.swap_id, {statuses.TRANSACTION_MEMPOOL}, timeout_s=60, interval=0.5
        )
        # The worker walks away: Boltz's lockup times out, Boltz takes it back and cancels
        # its hold invoice, so taskhold's payout fails instead of hanging.
        height = await api.chain_height()
        await devnet.mine(payout.timeout_block_height - height + 1)
        await wait_for_status(
            api, payout.swap_id, {statuses.TRANSACTION_REFUNDED}, timeout_s=120, interval=0.5
        )
        for _ in range(300):
            task = await employer.get_task(task_id)
            if task["state"] in ("REFUNDED", "PAID"):
                break
            await devnet.mine(1)
            await asyncio.sleep(0.2)
        assert task["state"] == "REFUNDED", task
        assert task["payout_failures"] >= 1
        assert await settled_balance(stack.employer_wallet) == employer_before
        await audited_clean(stack)


async def test_unroutable_payout_is_completed_by_the_on_chain_fallback(
    devnet: DevnetHandle,
    tmp_path: Path,
    one_database_url: str,  # noqa: F811
) -> None:
    async with swap_stack(devnet, tmp_path, one_database_url) as (stack, _api):
        employer, worker = stack.client(), stack.client()
        task_id = await claimed_over_lightning(stack, employer, worker)
        task = await worker.get_task(task_id)
        await worker.submit_proof(task_id, PROOF, _unroutable_invoice(task["payout_msat"]))
        records = SwapRecords(tmp_path / "worker-swaps")
        fallback = OnChainFallback(
            address=await stack.worker_wallet.new_address(),
            records=records,
            network=Network.REGTEST,
            max_fee_sat=MAX_FEE_SAT,
            claim_timeout_s=120,
        )
        chain_before = await confirmed(stack.worker_wallet, devnet)
        await employer.approve(task_id)
        async with mining(devnet):
            spend = await await_payout(
                worker, task_id, on_chain_fallback=fallback, timeout_s=240, poll_s=0.5
            )
        assert spend is not None
        final = await employer.get_task(task_id)
        assert final["state"] == "PAID"
        (swap,) = records.all()
        got = await confirmed(stack.worker_wallet, devnet) - chain_before
        assert got == swap.expected_amount_sat - SPEND_FEE_SAT
        await audited_clean(stack)


async def _taskhold(*args: str) -> dict[str, Any]:
    """``taskhold ARGS --json`` in a subprocess; its JSON answer."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskhold.cli",
        *args,
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-3000:]
    answer: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return answer


async def test_the_participant_cli_funds_on_chain_and_takes_the_payout_on_chain(
    devnet: DevnetHandle,
    tmp_path: Path,
    one_database_url: str,  # noqa: F811
) -> None:
    url = swap_api_url(devnet)
    settings = lnd_settings(
        devnet, tmp_path / "data", one_database_url, payout_cltv_reserve_blocks=150
    )
    services = await build_services(
        settings, lightning=devnet.backend("escrow"), embedded_relay=True
    )
    employer_keys, worker_keys = NostrKeys.generate(), NostrKeys.generate()
    (tmp_path / "employer.key").write_text(employer_keys.secret_hex_unsafe())
    (tmp_path / "worker.key").write_text(worker_keys.secret_hex_unsafe())
    worker_wallet = devnet.wallet("worker")
    try:
        async with running_server(services, "127.0.0.1", free_port()) as server:
            employer = TaskholdClient(server, employer_keys)
            worker = TaskholdClient(server, worker_keys)
            task_id = await new_task(employer)
            common = ["--server", server, "--boltz", url, "--max-fee-sat", str(MAX_FEE_SAT)]
            async with mining(devnet):
                funded = await _taskhold(
                    "swaps", "fund", task_id, *common,
                    "--keys", str(tmp_path / "employer.key"),
                    "--records", str(tmp_path / "employer-swaps"),
                    "--lnd-connection-file", str(devnet.connection_file), "--yes",
                )  # fmt: skip
                await employer.wait_for_state(task_id, {"FUNDED"}, timeout_s=120)
            await worker.claim(task_id)
            task = await worker.get_task(task_id)
            invoice = await worker_wallet.create_invoice(task["payout_msat"])
            await worker.submit_proof(task_id, PROOF, invoice.payment_request)
            address = await worker_wallet.new_address()
            worker_args = [
                "--keys", str(tmp_path / "worker.key"),
                "--records", str(tmp_path / "worker-swaps"),
                "--address", address, "--yes", "--timeout-s", "180",
            ]  # fmt: skip
            paying = asyncio.create_task(
                _taskhold("swaps", "payout", task_id, *common, *worker_args)
            )

            async def invoice_replaced() -> bool:
                shown = (await worker.get_task(task_id))["payout_invoice"]
                return bool(shown) and shown != invoice.payment_request

            for _ in range(300):
                if await invoice_replaced() or paying.done():
                    break
                await asyncio.sleep(0.2)
            await employer.approve(task_id)
            async with mining(devnet):
                paid_out = await paying
                final = await employer.wait_for_state(task_id, {"PAID"}, timeout_s=120)
            await employer.aclose()
            await worker.aclose()
    finally:
        await services.close()
        await worker_wallet.close()
    roles = {(s["role"], s["swap_id"]) for s in final["swaps"]}
    assert roles == {("funding", funded["swap_id"]), ("payout", paid_out["swap_id"])}
    assert [s["lockup_txid"] for s in final["swaps"] if s["role"] == "funding"] == [
        funded["lockup_txid"]
    ]
    assert [s["claim_txid"] for s in final["swaps"] if s["role"] == "payout"] == [
        paid_out["claim_txid"]
    ]
