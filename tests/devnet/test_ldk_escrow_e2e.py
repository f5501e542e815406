"""The escrow engine, unchanged, on the devnet's embedded LDK escrow node: happy, refund,
guardian and crash paths, the employer paying from its lnd node and the worker's invoice made
by its lnd node, the operator's node an LDK Node in taskhold's own process. Then a hostile
employer (an HTLC after the refund, one of the wrong amount) and a hostile worker (holding the
payout): every balance exact, no channel closed, the operator never out of pocket."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import bolt11
import httpx
import pytest
from support.audit_logs import audit_stored_log
from support.devnet_network import (
    DevnetHandle,
    cancel_held_invoices,
    get_ldk_devnet,
    local_balance_reaches,
    open_devnet_ldk_escrow,
)
from support.hand_driven import drive_by_hand

from taskhold.api.application import create_api
from taskhold.client import TaskholdClient
from taskhold.devnet.ldk_escrow import wait_ldk_synced
from taskhold.lightning.base import (
    InvoiceState,
    PaymentResult,
    PaymentStatus,
)
from taskhold.lightning.ldk import HTLC_FAIL_BACK_BUFFER, LdkBackend
from taskhold.lightning.lnd import LndBackend
from taskhold.lightning.lnd_rest import b64
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.nostr import NostrKeys
from taskhold.server import free_port
from taskhold.services import build_services
from taskhold.settings import Settings

from .live_stack import one_database_url, sqlite_url
from .test_escrow_e2e import (
    ACCEPTANCE,
    AMOUNT_MSAT,
    EscrowStack,
    _wait_up,
    funded_task,
    invoice_state,
    lnd_settings,
    settled_balance,
    submitted_task,
)
from .test_hostile_worker import PROOF, hash_of, held_invoice

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.ldk]

__all__ = ["one_database_url", "sqlite_url"]  # the fixtures

PAYMENT_GRACE_S = 2.0


@pytest.fixture(scope="session")
def ldk_devnet() -> DevnetHandle:
    return get_ldk_devnet()


def ldk_settings(devnet: DevnetHandle, data_dir: Path, database_url: str, **extra: Any) -> Settings:
    """:func:`lnd_settings` on the LDK escrow (its hold expiry delta is raised to LDK's own)."""
    return lnd_settings(devnet, data_dir, database_url, lightning="ldk", **extra)


@dataclass
class LdkStack(EscrowStack):
    @property
    def backend(self) -> LdkBackend:
        return cast(LdkBackend, self.services.lightning)


@asynccontextmanager
async def open_ldk_stack(
    devnet: DevnetHandle, settings: Settings, *, payment_grace_seconds: float = PAYMENT_GRACE_S
) -> AsyncIterator[LdkStack]:
    """taskhold on the devnet's LDK escrow, opened in this process, its engine driven by hand."""
    backend = await open_devnet_ldk_escrow(devnet, payment_grace_seconds=payment_grace_seconds)
    try:
        await fail_back_stale_holds(backend, devnet)
        services = await build_services(settings, lightning=backend)
    except BaseException:
        await backend.close()
        raise
    drive_by_hand(services)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(services, run_engine=False)),
        base_url="http://taskhold.test",
        timeout=60,
    )
    stack = LdkStack(services, http, devnet.wallet("employer"), devnet.wallet("worker"))
    try:
        yield stack
    finally:
        await http.aclose()
        await services.close()  # stops the LDK node too
        for wallet in (stack.employer_wallet, stack.worker_wallet):
            await wallet.close()


@pytest.fixture
async def ldk_stack(
    ldk_devnet: DevnetHandle, tmp_path: Path, one_database_url: str
) -> AsyncIterator[LdkStack]:
    settings = ldk_settings(ldk_devnet, tmp_path / "data", one_database_url)
    async with open_ldk_stack(ldk_devnet, settings) as stack:
        assert stack.services.settings.hold_expiry_delta == HTLC_FAIL_BACK_BUFFER == 39
        yield stack


async def fail_back_stale_holds(backend: LdkBackend, devnet: DevnetHandle) -> None:
    """Cancel the holds earlier tests left on the shared node (the contract suite leaves HTLCs
    held), and wait until no HTLC is pending on its channels: one failing back mid-test (LDK
    fails them near their expiry, and these tests mine) would move the employer's balance."""
    await cancel_held_invoices(backend)
    pubkey = ldk_pubkey(devnet)
    for node in ("employer", "worker"):
        wallet = devnet.wallet(node)
        try:
            await lnd_channel_quiet(wallet, pubkey)
        finally:
            await wallet.close()


async def lnd_channel_quiet(wallet: LndWallet, pubkey: str, within_s: float = 60.0) -> None:
    """Wait until ``wallet``'s lnd has its channel with ``pubkey`` active and no HTLC pending on
    it (a freshly started LDK node re-establishes its channels first)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        answer = await wallet._rest.call("GET", "/v1/channels")
        if any(
            channel.get("remote_pubkey") == pubkey
            and channel.get("active")
            and not channel.get("pending_htlcs")
            for channel in answer.get("channels") or ()
        ):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"no quiet active channel with {pubkey} within {within_s} s")


async def payment_outcome(
    devnet: DevnetHandle, node: str, payment_hash: str, within_s: float = 60.0
) -> PaymentResult:
    """``node``'s payment of ``payment_hash`` once it is no longer in flight."""
    payer = devnet.backend(node)
    try:
        deadline = time.monotonic() + within_s
        while True:
            result = await payer.lookup_payment(bytes.fromhex(payment_hash))
            if result.status is not PaymentStatus.IN_FLIGHT or time.monotonic() > deadline:
                return result
            await asyncio.sleep(0.3)
    finally:
        await payer.close()


async def worker_invoice_state(devnet: DevnetHandle, payment_hash: bytes) -> InvoiceState:
    worker = devnet.backend("worker")
    try:
        return (await worker.lookup_invoice(payment_hash)).state
    finally:
        await worker.close()


def ldk_pubkey(devnet: DevnetHandle) -> str:
    return str(json.loads(devnet.connection_file.read_text())["ldk_escrow"]["pubkey"])


async def lightning_balance_sat(backend: LdkBackend) -> int:
    """The LDK node's channel balance once two reads 0.2 s apart agree (a claim moves it when
    the commitment update is signed, a moment after the call returns)."""
    previous = -1
    for _ in range(50):
        balances = await asyncio.to_thread(backend.node.list_balances)
        if int(balances.total_lightning_balance_sats) == previous:
            return previous
        previous = int(balances.total_lightning_balance_sats)
        await asyncio.sleep(0.2)
    return previous


async def ldk_channels_whole(backend: LdkBackend, devnet: DevnetHandle) -> bool:
    """Both of the LDK escrow's channels still open and usable, nothing being swept on chain."""
    channels = await asyncio.to_thread(backend.node.list_channels)
    usable = {str(channel.counterparty_node_id) for channel in channels if channel.is_usable}
    balances = await asyncio.to_thread(backend.node.list_balances)
    return usable >= {devnet.pubkey("employer"), devnet.pubkey("worker")} and not list(
        balances.pending_balances_from_channel_closures
    )


async def lnd_never_closed_with(wallet: LndWallet, pubkey: str) -> bool:
    """The lnd node has no closing, force-closing or closed channel with ``pubkey``."""
    rest = wallet._rest
    pending = await rest.call("GET", "/v1/channels/pending")
    closed = await rest.call("GET", "/v1/channels/closed")
    closing = [
        entry.get("channel", {}).get("remote_node_pub")
        for key in ("waiting_close_channels", "pending_force_closing_channels")
        for entry in pending.get(key) or ()
    ]
    gone = [channel.get("remote_pubkey") for channel in closed.get("channels") or ()]
    return pubkey not in closing and pubkey not in gone


async def no_force_closes(stack: LdkStack, devnet: DevnetHandle) -> bool:
    pubkey = ldk_pubkey(devnet)
    return (
        await ldk_channels_whole(stack.backend, devnet)
        and await lnd_never_closed_with(stack.employer_wallet, pubkey)
        and await lnd_never_closed_with(stack.worker_wallet, pubkey)
    )


async def test_happy_path_moves_real_money(ldk_stack: LdkStack, ldk_devnet: DevnetHandle) -> None:
    employer, worker = ldk_stack.client(), ldk_stack.client()
    employer_before = await settled_balance(ldk_stack.employer_wallet)
    worker_before = await settled_balance(ldk_stack.worker_wallet)
    escrow_before = await lightning_balance_sat(ldk_stack.backend)
    started = time.monotonic()

    task = await submitted_task(ldk_stack, employer, worker)
    await employer.approve(task["task_id"])

    async def is_paid() -> bool:
        return (await employer.get_task(task["task_id"]))["state"] == "PAID"

    await ldk_stack.drive(is_paid)
    elapsed = time.monotonic() - started
    final = await employer.get_task(task["task_id"])
    payment_hash = final["funding"]["payment_hash"]
    assert hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest() == payment_hash
    assert await invoice_state(ldk_stack, payment_hash) is InvoiceState.SETTLED
    worker_gain = await settled_balance(ldk_stack.worker_wallet) - worker_before
    employer_loss = employer_before - await settled_balance(ldk_stack.employer_wallet)
    assert worker_gain == final["payout_msat"]
    assert employer_loss == final["amount_msat"]  # a direct channel: no routing fee
    escrow_gain = await lightning_balance_sat(ldk_stack.backend) - escrow_before
    assert escrow_gain * 1000 == final["fee_msat"] - final["payout_fee_msat"]
    audited = await audit_stored_log(ldk_stack.services)
    assert audited.clean, [finding.to_json() for finding in audited.findings]
    assert audited.summary.payouts >= 1 and audited.summary.payout_proven
    assert await no_force_closes(ldk_stack, ldk_devnet)
    print(f"\nfull task lifecycle on the LDK escrow: {elapsed:.2f} s")


async def test_refund_returns_the_employers_htlc(
    ldk_stack: LdkStack, ldk_devnet: DevnetHandle
) -> None:
    employer = ldk_stack.client()
    before = await settled_balance(ldk_stack.employer_wallet)
    task = await funded_task(ldk_stack, employer)
    assert await settled_balance(ldk_stack.employer_wallet) < before  # the HTLC is held
    await employer.cancel(task["task_id"], reason="plans changed")

    async def is_refunded() -> bool:
        return (await employer.get_task(task["task_id"]))["state"] == "REFUNDED"

    await ldk_stack.drive(is_refunded)
    assert await invoice_state(ldk_stack, task["funding"]["payment_hash"]) is InvoiceState.CANCELED
    # the HTLC's failure reaches the employer's lnd a moment after LDK cancels it
    assert await local_balance_reaches(ldk_stack.employer_wallet, before) == before
    assert await no_force_closes(ldk_stack, ldk_devnet)


async def test_an_htlc_paid_again_after_the_refund_goes_back(
    ldk_stack: LdkStack, ldk_devnet: DevnetHandle
) -> None:
    """A hostile employer pays the funding invoice a second time after its refund: the LDK
    node must fail the HTLC back, never hold it for a task that is over (held, a later
    settle or force-close would make it the operator's to return)."""
    employer = ldk_stack.client()
    before = await settled_balance(ldk_stack.employer_wallet)
    task = await funded_task(ldk_stack, employer)
    await employer.cancel(task["task_id"], reason="plans changed")

    async def is_refunded() -> bool:
        return (await employer.get_task(task["task_id"]))["state"] == "REFUNDED"

    await ldk_stack.drive(is_refunded)
    await lnd_channel_quiet(ldk_stack.employer_wallet, ldk_pubkey(ldk_devnet))
    assert await settled_balance(ldk_stack.employer_wallet) == before

    again = await ldk_stack.employer_wallet.send_payment(task["funding"]["payment_request"])
    assert again.status.value in ("IN_FLIGHT", "FAILED"), again
    second = await payment_outcome(ldk_devnet, "employer", task["funding"]["payment_hash"])
    await lnd_channel_quiet(ldk_stack.employer_wallet, ldk_pubkey(ldk_devnet))
    # It reached the LDK node, which failed it back as for an unknown invoice.
    assert second.status is PaymentStatus.FAILED
    assert second.failure_reason == "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS"
    for _ in range(3):
        await ldk_stack.services.engine.reconcile()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    assert await invoice_state(ldk_stack, task["funding"]["payment_hash"]) is InvoiceState.CANCELED
    # the HTLC's failure reaches the employer's lnd a moment after LDK cancels it
    assert await local_balance_reaches(ldk_stack.employer_wallet, before) == before
    assert await no_force_closes(ldk_stack, ldk_devnet)


async def pay_by_hand(
    wallet: LndWallet, payment_request: str, amount_msat: int, pubkey: str
) -> dict[str, Any]:
    """Pay ``amount_msat`` (not the invoice's amount) for ``payment_request`` straight to
    ``pubkey`` over a route built by hand, as a hostile payer can; the HTLC attempt's end."""
    invoice = bolt11.decode(payment_request)
    rest = wallet._rest
    routes = await rest.call(
        "GET",
        f"/v1/graph/routes/{pubkey}/{amount_msat // 1000}",
        params={"final_cltv_delta": str(invoice.min_final_cltv_expiry + 3)},
    )
    route = routes["routes"][0]
    route["hops"][-1]["mpp_record"] = {
        "payment_addr": b64(bytes.fromhex(invoice.payment_secret)),
        "total_amt_msat": str(amount_msat),
    }
    body = {"payment_hash": b64(bytes.fromhex(invoice.payment_hash)), "route": route}
    attempt: dict[str, Any] = await rest.call("POST", "/v2/router/route/send", body=body)
    return attempt


@pytest.mark.parametrize("off_by_msat", [-1000, 1000], ids=["underpaid", "overpaid"])
async def test_an_htlc_of_the_wrong_amount_never_funds_the_task(
    ldk_stack: LdkStack, ldk_devnet: DevnetHandle, off_by_msat: int
) -> None:
    """A hostile employer pays its funding invoice 1 sat short, or 1 sat over, on a route of
    its own: the task is never FUNDED, the HTLC goes back and nobody's balance moves."""
    employer = ldk_stack.client()
    before = await settled_balance(ldk_stack.employer_wallet)
    task = await employer.create_task(
        "Review a pull request",
        "Leave a review",
        AMOUNT_MSAT,
        int(time.time()) + 1800,
        acceptance=ACCEPTANCE,
    )
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    sending = asyncio.create_task(
        pay_by_hand(
            ldk_stack.employer_wallet,
            funding["payment_request"],
            AMOUNT_MSAT + off_by_msat,
            ldk_pubkey(ldk_devnet),
        )
    )

    async def htlc_gone() -> bool:
        return sending.done()

    await ldk_stack.drive(htlc_gone)  # an overpayment waits for the engine to cancel it
    attempt = sending.result()
    assert attempt["status"] == "FAILED", attempt
    assert attempt["failure"]["code"] == "INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS", attempt
    await ldk_stack.services.engine.reconcile()
    state = (await employer.get_task(task["task_id"]))["state"]
    assert state == ("PENDING_FUNDING" if off_by_msat < 0 else "EXPIRED")
    if off_by_msat < 0:  # refused at the door: the invoice still takes the right amount
        paid = await ldk_stack.employer_wallet.send_payment(funding["payment_request"])
        assert paid.status.value == "IN_FLIGHT", paid

        async def in_state(wanted: str) -> bool:
            return (await employer.get_task(task["task_id"]))["state"] == wanted

        await ldk_stack.drive(lambda: in_state("FUNDED"))
        await employer.cancel(task["task_id"], reason="changed my mind")
        await ldk_stack.drive(lambda: in_state("REFUNDED"))
    await lnd_channel_quiet(ldk_stack.employer_wallet, ldk_pubkey(ldk_devnet))
    assert await settled_balance(ldk_stack.employer_wallet) == before
    assert await no_force_closes(ldk_stack, ldk_devnet)


async def test_guardian_cancels_before_ldk_would(
    ldk_devnet: DevnetHandle, tmp_path: Path, one_database_url: str
) -> None:
    # No payout reserve: nothing is paid out here, and the hold (so the blocks to mine) shrinks
    # to the windows plus LDK's fail-back buffer and the guardian's margins.
    settings = ldk_settings(
        ldk_devnet, tmp_path / "data", one_database_url, payout_cltv_reserve_blocks=0
    )
    async with open_ldk_stack(ldk_devnet, settings) as stack:
        employer, worker = stack.client(), stack.client()
        before = await settled_balance(stack.employer_wallet)
        task = await funded_task(stack, employer)
        await worker.claim(task["task_id"])
        expiry = task["funding"]["accepted_htlc_expiry_height"]
        final, mined = await mine_until(stack, ldk_devnet, task["task_id"], {"REFUNDED"})
        height = await stack.backend.block_height()
        assert height < expiry - HTLC_FAIL_BACK_BUFFER  # taskhold acted before LDK's own fail
        assert "expiry" in final["refund_reason"]
        # the HTLC's failure reaches the employer's lnd a moment after LDK cancels it
        assert await local_balance_reaches(stack.employer_wallet, before) == before
        assert await no_force_closes(stack, ldk_devnet)
        print(
            f"\nguardian refunded after {mined} blocks, at {height},"
            f" {expiry - height} before the HTLC's expiry ({expiry})"
        )


async def mine_until(
    stack: LdkStack, devnet: DevnetHandle, task_id: str, states: set[str], *, blocks: int = 300
) -> tuple[dict[str, Any], int]:
    """Mine one block at a time, with an engine pass once the LDK node has it, until the task
    is in one of ``states``; the task and the blocks mined."""
    btcd = devnet.btcd()
    client = stack.client()
    for mined in range(blocks):
        task = await client.get_task(task_id)
        if task["state"] in states:
            return task, mined
        await devnet.mine(1)
        await wait_ldk_synced(stack.backend, btcd)
        stack.services.engine._retry_at.clear()
        await stack.services.engine.reconcile()
    raise AssertionError(f"the task never reached {states} in {blocks} blocks")


@pytest.fixture
async def hostile(
    ldk_devnet: DevnetHandle, tmp_path: Path, one_database_url: str
) -> AsyncIterator[tuple[LdkStack, LndBackend]]:
    """The LDK stack plus the worker's node as a backend (for hold invoices); payouts wait
    only a moment for a held HTLC, so an engine pass is not blocked by it."""
    # A payout reserve just above the worker's hold invoice (40 blocks): LDK's router pads a
    # payout's time lock toward the whole budget, so a held payout lasts about that long.
    settings = ldk_settings(
        ldk_devnet,
        tmp_path / "data",
        one_database_url,
        payout_timeout_s=1,
        payout_cltv_reserve_blocks=50,
    )
    worker_node = ldk_devnet.backend("worker")
    try:
        async with open_ldk_stack(ldk_devnet, settings, payment_grace_seconds=1.0) as stack:
            yield stack, worker_node
    finally:
        await worker_node.close()


async def all_balances(stack: LdkStack) -> tuple[int, int, int]:
    """The escrow's (msat), the employer's and the worker's channel balances."""
    return (
        await lightning_balance_sat(stack.backend) * 1000,
        await settled_balance(stack.employer_wallet),
        await settled_balance(stack.worker_wallet),
    )


async def approved_with_held_payout(
    stack: LdkStack, worker_node: LndBackend
) -> tuple[TaskholdClient, dict[str, Any], bytes, str]:
    """A task approved with a payout invoice the worker's node holds when paid."""
    employer, worker = stack.client(), stack.client()
    task = await funded_task(stack, employer)
    await worker.claim(task["task_id"])
    preimage, payout_request = await held_invoice(worker_node, task["payout_msat"])
    await worker.submit_proof(task["task_id"], PROOF, payout_request)
    await employer.approve(task["task_id"])
    await stack.services.engine.reconcile()  # starts the payout in the background
    async with asyncio.timeout(60):
        while True:
            status = await stack.services.lightning.lookup_payment(hash_of(payout_request))
            if status.status is not PaymentStatus.UNKNOWN:
                break
            await asyncio.sleep(0.2)
    assert status.status is PaymentStatus.IN_FLIGHT  # held by the worker's node, not paid
    # The held payout must expire before the guardian has to decide the employer's HTLC.
    settings = stack.services.settings
    latest = (
        task["funding"]["accepted_htlc_expiry_height"]
        - settings.guard_blocks
        - settings.payout_cltv_margin_blocks
    )
    assert await held_payout_expiry(stack.worker_wallet, task["payout_msat"]) <= latest
    return employer, task, preimage, payout_request


async def held_payout_expiry(wallet: LndWallet, amount_msat: int) -> int:
    """The expiry height of the HTLC of ``amount_msat`` the worker's node holds."""
    async with asyncio.timeout(30):
        while True:
            answer = await wallet._rest.call("GET", "/v1/channels")
            for channel in answer.get("channels") or ():
                for htlc in channel.get("pending_htlcs") or ():
                    if htlc.get("incoming") and int(htlc["amount"]) * 1000 == amount_msat:
                        return int(htlc["expiration_height"])
            await asyncio.sleep(0.2)


async def test_a_held_payout_that_is_never_settled_ends_in_a_refund(
    hostile: tuple[LdkStack, LndBackend], ldk_devnet: DevnetHandle
) -> None:
    """A hostile worker holds the LDK escrow's payout HTLC and never settles it: the employer
    is refunded only once the worker's node gave the payout back, so nobody is paid twice."""
    stack, worker_node = hostile
    before = await all_balances(stack)
    _, task, _, payout_request = await approved_with_held_payout(stack, worker_node)

    final, mined = await mine_until(stack, ldk_devnet, task["task_id"], {"REFUNDED", "PAID"})

    assert final["state"] == "REFUNDED"
    status = await stack.services.lightning.lookup_payment(hash_of(payout_request))
    assert status.status is PaymentStatus.FAILED  # the worker's node gave it back in time
    assert await all_balances(stack) == before
    assert await no_force_closes(stack, ldk_devnet)
    print(f"\nheld payout refunded after {mined} blocks")


async def test_a_held_payout_settled_late_pays_once(
    hostile: tuple[LdkStack, LndBackend], ldk_devnet: DevnetHandle
) -> None:
    """The worker sits on the payout HTLC for ten blocks, then settles it: the release
    completes with the employer's HTLC claimed, each party moved exactly once."""
    stack, worker_node = hostile
    escrow_before, employer_before, worker_before = await all_balances(stack)
    employer, task, preimage, payout_request = await approved_with_held_payout(stack, worker_node)
    for _ in range(10):
        await ldk_devnet.mine(1)
    await wait_ldk_synced(stack.backend, ldk_devnet.btcd())
    await stack.services.engine.reconcile()
    assert (await employer.get_task(task["task_id"]))["state"] == "VERIFIED"

    await worker_node.settle_invoice(preimage)
    final, _ = await mine_until(stack, ldk_devnet, task["task_id"], {"PAID", "REFUNDED"}, blocks=20)

    assert final["state"] == "PAID"
    assert final["payout_payment_hash"] == hash_of(payout_request).hex()
    escrow_after, employer_after, worker_after = await all_balances(stack)
    assert worker_after - worker_before == task["payout_msat"]
    assert employer_before - employer_after == task["amount_msat"]
    assert escrow_after - escrow_before == task["fee_msat"] - final["payout_fee_msat"]
    assert await no_force_closes(stack, ldk_devnet)


async def test_crash_between_payout_and_settle_recovers(
    ldk_devnet: DevnetHandle, tmp_path: Path, sqlite_url: str
) -> None:
    """A real ``taskhold serve --lightning ldk`` dies, its LDK node with it, right after paying
    the worker and before claiming the employer's HTLC; a new one finishes the release."""
    backend = await open_devnet_ldk_escrow(ldk_devnet)
    try:
        await fail_back_stale_holds(backend, ldk_devnet)
    finally:
        await backend.close()  # the server runs the node from here on
    data_dir = tmp_path / "data"
    port = free_port()
    env = dict(
        os.environ,
        TASKHOLD_DATABASE_URL=sqlite_url,
        TASKHOLD_LND_CONNECTION_FILE=str(ldk_devnet.connection_file),
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
        "ldk",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    employer_wallet, worker_wallet = ldk_devnet.wallet("employer"), ldk_devnet.wallet("worker")
    pubkey = ldk_pubkey(ldk_devnet)
    url = f"http://127.0.0.1:{port}"
    employer = TaskholdClient(url, NostrKeys.generate())
    worker = TaskholdClient(url, NostrKeys.generate())
    try:
        try:
            await _wait_up(url)
            await lnd_channel_quiet(employer_wallet, pubkey)
            await lnd_channel_quiet(worker_wallet, pubkey)
            employer_before = await settled_balance(employer_wallet)
            worker_before = await settled_balance(worker_wallet)
            task = await employer.create_task(
                "Crash test", "", AMOUNT_MSAT, int(time.time()) + 1800, acceptance=ACCEPTANCE
            )
            funding = (await employer.request_funding(task["task_id"]))["funding"]
            paid = await employer_wallet.send_payment(funding["payment_request"])
            assert paid.status.value in ("IN_FLIGHT", "SUCCEEDED"), paid
            await employer.wait_for_state(task["task_id"], {"FUNDED"}, timeout_s=60)
            await worker.claim(task["task_id"])
            invoice = await worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
            await worker.submit_proof(
                task["task_id"], {"url": "https://example.org/c"}, invoice.payment_request
            )
            await employer.approve(task["task_id"])
            assert server.wait(timeout=60) == -signal.SIGKILL  # killed after paying the worker
            # The worker's node settled its invoice (it gave up the preimage); the commitment
            # update that moves its balance may have died with the LDK node, to be completed
            # once the node runs again.
            assert await worker_invoice_state(ldk_devnet, invoice.payment_hash) is (
                InvoiceState.SETTLED
            )

            env.pop("TASKHOLD_CRASH_AT")
            server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            await _wait_up(url)
            final = await employer.wait_for_state(task["task_id"], {"PAID"}, timeout_s=90)
            assert (
                hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest()
                == funding["payment_hash"]
            )
            assert await settled_balance(worker_wallet) - worker_before == task["payout_msat"]
            assert employer_before - await settled_balance(employer_wallet) == task["amount_msat"]
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
            await employer.aclose()
            await worker.aclose()
        # Only now, with the server gone, may this process open the LDK node to look at it.
        backend = await open_devnet_ldk_escrow(ldk_devnet)
        try:
            status = await backend.lookup_invoice(bytes.fromhex(funding["payment_hash"]))
            assert status.state is InvoiceState.SETTLED
            assert await ldk_channels_whole(backend, ldk_devnet)
        finally:
            await backend.close()
        assert await lnd_never_closed_with(employer_wallet, pubkey)
        assert await lnd_never_closed_with(worker_wallet, pubkey)
    finally:
        await employer_wallet.close()
        await worker_wallet.close()
