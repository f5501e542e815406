"""The escrow engine, unchanged, on the real regtest network: happy, refund, guardian, crash and
payout-failure paths with real lnd nodes (employer pays from its node, the worker's invoice is
made by the worker's node)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bolt11
import httpx
import pytest
from support.audit_logs import audit_stored_log
from support.devnet_network import DevnetHandle, settled_balance
from support.hand_driven import drive_by_hand

from taskhold.api.application import create_api
from taskhold.client import TaskholdClient
from taskhold.lightning.base import InvoiceState
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.nostr import NostrKeys
from taskhold.server import free_port
from taskhold.services import Services, build_services
from taskhold.settings import Settings

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

AMOUNT_MSAT = 40_000_000
ACCEPTANCE = {"required_fields": ["url"], "url_fields": ["url"]}


def lnd_settings(devnet: DevnetHandle, data_dir: Path, database_url: str, **extra: Any) -> Settings:
    connection = json.loads(devnet.connection_file.read_text())
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "lightning": "lnd",
        "lnd_connection_file": devnet.connection_file,
        "hold_expiry_delta": int(connection.get("hold_expiry_delta", 18)),
        "default_review_window_s": 600,
        "default_dispute_window_s": 600,
        "payout_timeout_s": 20,
        # Room for an lnd invoice's final CLTV (80) plus padding (3); fewer blocks to mine.
        "payout_cltv_reserve_blocks": 90,
        "engine_tick_s": 0.2,
        "reconcile_interval_s": 2.0,
    }
    values.update(extra)
    return Settings(**values)


@dataclass
class EscrowStack:
    """taskhold on some escrow node, with the employer's and the worker's lnd as wallets."""

    services: Services
    http: httpx.AsyncClient
    employer_wallet: LndWallet
    worker_wallet: LndWallet

    def client(self) -> TaskholdClient:
        return TaskholdClient("http://taskhold.test", NostrKeys.generate(), http=self.http)

    async def drive(self, until: Callable[[], Awaitable[bool]], timeout_s: float = 60) -> None:
        """Run engine passes until ``until()`` holds (real nodes answer asynchronously)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.services.engine.reconcile()
            if await until():
                return
            await asyncio.sleep(0.3)
        raise AssertionError("the engine did not get there in time")


@dataclass
class LndStack(EscrowStack):
    escrow_wallet: LndWallet


@asynccontextmanager
async def open_escrow_stack(devnet: DevnetHandle, settings: Settings) -> AsyncIterator[EscrowStack]:
    """taskhold on the escrow node(s) ``settings`` name (``lnd_node``, ``lnd_pool``), with the
    devnet's employer and worker as wallets, its engine driven by hand."""
    services = await build_services(settings)
    drive_by_hand(services)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(services, run_engine=False)),
        base_url="http://taskhold.test",
        timeout=60,
    )
    stack = EscrowStack(services, http, devnet.wallet("employer"), devnet.wallet("worker"))
    try:
        yield stack
    finally:
        await http.aclose()
        await services.close()
        await stack.employer_wallet.close()
        await stack.worker_wallet.close()


@asynccontextmanager
async def open_lnd_stack(devnet: DevnetHandle, settings: Settings) -> AsyncIterator[LndStack]:
    """taskhold on the devnet's escrow node with ``settings``, its engine driven by hand."""
    services = await build_services(settings, lightning=devnet.backend("escrow"))
    drive_by_hand(services)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(services, run_engine=False)),
        base_url="http://taskhold.test",
        timeout=60,
    )
    stack = LndStack(
        services, http, devnet.wallet("employer"), devnet.wallet("worker"), devnet.wallet("escrow")
    )
    try:
        yield stack
    finally:
        await http.aclose()
        await services.close()
        for wallet in (stack.employer_wallet, stack.worker_wallet, stack.escrow_wallet):
            await wallet.close()


@pytest.fixture
async def lnd_stack(
    devnet: DevnetHandle, tmp_path: Path, database_url: str
) -> AsyncIterator[LndStack]:
    settings = lnd_settings(devnet, tmp_path / "data", database_url)
    async with open_lnd_stack(devnet, settings) as stack:
        yield stack


async def funded_task(stack: EscrowStack, employer: TaskholdClient, **terms: Any) -> dict[str, Any]:
    task = await employer.create_task(
        "Review a pull request",
        "Leave a review",
        AMOUNT_MSAT,
        int(time.time()) + 1800,
        acceptance=ACCEPTANCE,
        **terms,
    )
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    paid = await stack.employer_wallet.send_payment(funding["payment_request"])
    assert paid.status.value in ("IN_FLIGHT", "SUCCEEDED"), paid

    async def is_funded() -> bool:
        return (await employer.get_task(task["task_id"]))["state"] == "FUNDED"

    await stack.drive(is_funded)
    return await employer.get_task(task["task_id"])


async def submitted_task(
    stack: EscrowStack, employer: TaskholdClient, worker: TaskholdClient
) -> dict[str, Any]:
    task = await funded_task(stack, employer)
    await worker.claim(task["task_id"])
    invoice = await stack.worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    return await worker.submit_proof(
        task["task_id"], {"url": "https://example.org/review"}, invoice.payment_request
    )


async def invoice_state(stack: EscrowStack, payment_hash: str) -> InvoiceState:
    status = await stack.services.lightning.lookup_invoice(bytes.fromhex(payment_hash))
    return status.state


async def test_happy_path_moves_real_money(lnd_stack: LndStack) -> None:
    employer, worker = lnd_stack.client(), lnd_stack.client()
    employer_before = await settled_balance(lnd_stack.employer_wallet)
    worker_before = await settled_balance(lnd_stack.worker_wallet)
    escrow_before = await settled_balance(lnd_stack.escrow_wallet)
    started = time.monotonic()

    task = await submitted_task(lnd_stack, employer, worker)
    await employer.approve(task["task_id"])

    async def is_paid() -> bool:
        return (await employer.get_task(task["task_id"]))["state"] == "PAID"

    await lnd_stack.drive(is_paid)
    elapsed = time.monotonic() - started
    final = await employer.get_task(task["task_id"])
    payment_hash = final["funding"]["payment_hash"]
    assert hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest() == payment_hash
    assert await invoice_state(lnd_stack, payment_hash) is InvoiceState.SETTLED
    worker_gain = await settled_balance(lnd_stack.worker_wallet) - worker_before
    employer_loss = employer_before - await settled_balance(lnd_stack.employer_wallet)
    escrow_gain = await settled_balance(lnd_stack.escrow_wallet) - escrow_before
    assert worker_gain == final["payout_msat"]
    assert employer_loss == final["amount_msat"]  # a direct channel: no routing fee
    assert escrow_gain == final["fee_msat"] - final["payout_fee_msat"]
    # The log proves the worker was paid: the release reveals lnd's payout preimage, which
    # hashes to the invoice hash the worker signed, for the payout amount.
    audited = await audit_stored_log(lnd_stack.services)
    assert audited.clean, [finding.to_json() for finding in audited.findings]
    assert audited.summary.payouts >= 1 and audited.summary.payout_proven
    print(f"\nfull task lifecycle on regtest lnd: {elapsed:.2f} s")


async def test_refund_returns_the_employers_htlc(lnd_stack: LndStack) -> None:
    employer = lnd_stack.client()
    before = await settled_balance(lnd_stack.employer_wallet)
    task = await funded_task(lnd_stack, employer)
    assert await settled_balance(lnd_stack.employer_wallet) < before  # the HTLC is held
    await employer.cancel(task["task_id"], reason="plans changed")

    async def is_refunded() -> bool:
        return (await employer.get_task(task["task_id"]))["state"] == "REFUNDED"

    await lnd_stack.drive(is_refunded)
    assert await invoice_state(lnd_stack, task["funding"]["payment_hash"]) is InvoiceState.CANCELED
    assert await settled_balance(lnd_stack.employer_wallet) == before


async def _mine_toward(
    stack: LndStack, devnet: DevnetHandle, task_id: str, stop_states: set[str]
) -> dict[str, Any]:
    client = stack.client()
    for _ in range(200):
        task = await client.get_task(task_id)
        if task["state"] in stop_states:
            return task
        await devnet.mine(1)
        await stack.services.engine.reconcile()
    raise AssertionError("the guardian never acted")


async def test_guardian_cancels_before_lnd_would(lnd_stack: LndStack, devnet: DevnetHandle) -> None:
    employer, worker = lnd_stack.client(), lnd_stack.client()
    before = await settled_balance(lnd_stack.employer_wallet)
    task = await funded_task(lnd_stack, employer)
    await worker.claim(task["task_id"])
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    hold_expiry_delta = lnd_stack.services.settings.hold_expiry_delta

    final = await _mine_toward(lnd_stack, devnet, task["task_id"], {"REFUNDED"})
    height = await lnd_stack.services.lightning.block_height()
    assert height < expiry - hold_expiry_delta  # taskhold acted before lnd's own cancel
    assert "expiry" in final["refund_reason"]
    assert await settled_balance(lnd_stack.employer_wallet) == before
    assert await _no_force_closes(lnd_stack)


async def test_guardian_releases_a_verified_task_near_expiry(
    lnd_stack: LndStack, devnet: DevnetHandle
) -> None:
    employer, worker = lnd_stack.client(), lnd_stack.client()
    task = await submitted_task(lnd_stack, employer, worker)  # employer stays silent
    final = await _mine_toward(lnd_stack, devnet, task["task_id"], {"PAID", "REFUNDED"})
    assert final["state"] == "PAID"
    assert await _no_force_closes(lnd_stack)


async def _no_force_closes(stack: LndStack) -> bool:
    rest = stack.escrow_wallet._rest  # admin: taskhold's own macaroon cannot read closed channels
    pending = await rest.call("GET", "/v1/channels/pending")
    closed = await rest.call("GET", "/v1/channels/closed")
    return (
        not pending.get("waiting_close_channels")
        and not pending.get("pending_force_closing_channels")
        and not closed.get("channels")
    )


def _unroutable_invoice(amount_msat: int) -> str:
    """A valid regtest invoice from a node nobody has a channel to."""
    tags = bolt11.Tags(
        [
            bolt11.Tag(bolt11.TagChar.payment_hash, secrets.token_hex(32)),
            bolt11.Tag(bolt11.TagChar.description, "nowhere"),
            bolt11.Tag(bolt11.TagChar.payment_secret, secrets.token_hex(32)),
            bolt11.Tag(bolt11.TagChar.expire_time, 86_400),
            bolt11.Tag(bolt11.TagChar.min_final_cltv_expiry, 40),
        ]
    )
    invoice = bolt11.Bolt11(
        currency="bcrt",
        amount_msat=bolt11.MilliSatoshi(amount_msat),
        date=int(time.time()),
        tags=tags,
    )
    return str(bolt11.encode(invoice, secrets.token_hex(32)))


async def test_unroutable_payout_retries_then_refunds(
    lnd_stack: LndStack, devnet: DevnetHandle
) -> None:
    employer, worker = lnd_stack.client(), lnd_stack.client()
    employer_before = await settled_balance(lnd_stack.employer_wallet)
    worker_before = await settled_balance(lnd_stack.worker_wallet)
    task = await funded_task(lnd_stack, employer)
    await worker.claim(task["task_id"])
    await worker.submit_proof(
        task["task_id"], {"url": "https://example.org/x"}, _unroutable_invoice(task["payout_msat"])
    )
    await employer.approve(task["task_id"])
    attempts = lnd_stack.services.settings.payout_max_attempts

    async def gave_up() -> bool:
        lnd_stack.services.engine._retry_at.clear()
        return (await employer.get_task(task["task_id"]))["payout_failures"] >= attempts

    await lnd_stack.drive(gave_up, timeout_s=120)
    mid = await employer.get_task(task["task_id"])
    assert mid["state"] == "VERIFIED"  # says what happened: verified, payout failing
    assert mid["last_payout_failure"]
    assert await invoice_state(lnd_stack, task["funding"]["payment_hash"]) is InvoiceState.ACCEPTED

    final = await _mine_toward(lnd_stack, devnet, task["task_id"], {"REFUNDED"})
    assert "payout failed" in final["refund_reason"]
    assert await settled_balance(lnd_stack.employer_wallet) == employer_before
    assert await settled_balance(lnd_stack.worker_wallet) == worker_before


async def test_crash_between_payout_and_settle_recovers(
    devnet: DevnetHandle, tmp_path: Path, database_url: str
) -> None:
    """A real ``taskhold serve`` process dies right after paying the worker; a new one finishes."""
    data_dir = tmp_path / "data"
    port = free_port()
    env = dict(
        os.environ,
        TASKHOLD_DATABASE_URL=database_url,
        TASKHOLD_LND_CONNECTION_FILE=str(devnet.connection_file),
        TASKHOLD_HOLD_EXPIRY_DELTA="18",
        TASKHOLD_DEFAULT_REVIEW_WINDOW_S="600",
        TASKHOLD_ENGINE_TICK_S="0.2",
        TASKHOLD_CRASH_AT="after_payout",
    )
    command = [
        sys.executable,
        "-m",
        "taskhold.cli",
        "serve",
        "--lightning",
        "lnd",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    employer_wallet, worker_wallet = devnet.wallet("employer"), devnet.wallet("worker")
    url = f"http://127.0.0.1:{port}"
    employer = TaskholdClient(url, NostrKeys.generate())
    worker = TaskholdClient(url, NostrKeys.generate())
    try:
        await _wait_up(url)
        worker_before = await settled_balance(worker_wallet)
        task = await employer.create_task(
            "Crash test", "", AMOUNT_MSAT, int(time.time()) + 1800, acceptance=ACCEPTANCE
        )
        funding = (await employer.request_funding(task["task_id"]))["funding"]
        await employer_wallet.send_payment(funding["payment_request"])
        await employer.wait_for_state(task["task_id"], {"FUNDED"}, timeout_s=60)
        await worker.claim(task["task_id"])
        invoice = await worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
        await worker.submit_proof(
            task["task_id"], {"url": "https://example.org/c"}, invoice.payment_request
        )
        await employer.approve(task["task_id"])
        assert server.wait(timeout=60) == -signal.SIGKILL  # killed after paying the worker
        assert await settled_balance(worker_wallet) - worker_before == task["payout_msat"]

        env.pop("TASKHOLD_CRASH_AT")
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        await _wait_up(url)
        final = await employer.wait_for_state(task["task_id"], {"PAID"}, timeout_s=60)
        assert (
            hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest() == funding["payment_hash"]
        )
        assert await settled_balance(worker_wallet) - worker_before == task["payout_msat"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        await employer.aclose()
        await worker.aclose()
        await employer_wallet.close()
        await worker_wallet.close()


async def _wait_up(url: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(150):
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("taskhold serve did not come up")
