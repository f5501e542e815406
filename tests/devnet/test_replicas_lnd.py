"""Three ``taskhold serve`` replicas on one PostgreSQL database and the devnet's lnd escrow; one
is killed (SIGKILL) between paying a worker and settling the hold. The two others finish its
work: every task ends PAID or REFUNDED, each worker is paid once, and the log on the relay is
gap-free and passes the auditor (no equivocation)."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.crash_harness import ACCEPTANCE, ExecLauncher, Parties, Serve, log_gaps
from support.devnet_network import DevnetHandle, settled_balance

from taskhold.client import TaskholdClient
from taskhold.lightning.base import InvoiceState
from taskhold.nostr import NostrKeys

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

AMOUNT_MSAT = 30_000_000
RELEASED, REFUNDED = 3, 1
POSTGRESQL = [pytest.param("postgresql", id="postgresql")]


@pytest.fixture(scope="module")
def launcher() -> Iterator[ExecLauncher]:
    yield ExecLauncher()


async def _wait_state(
    client: TaskholdClient, task_id: str, states: set[str], timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        state = str((await client.get_task(task_id))["state"])
        if state in states or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("database_kind", POSTGRESQL, indirect=True)
async def test_three_replicas_on_lnd_one_killed_mid_release(
    devnet: DevnetHandle, launcher: ExecLauncher, tmp_path: Path, database_url: str
) -> None:
    connection = json.loads(devnet.connection_file.read_text())
    shared = {
        "TASKHOLD_DATABASE_URL": database_url,
        "TASKHOLD_LND_CONNECTION_FILE": str(devnet.connection_file),
        "TASKHOLD_HOLD_EXPIRY_DELTA": str(connection.get("hold_expiry_delta", 18)),
        "TASKHOLD_PAYOUT_TIMEOUT_S": "20",
        "TASKHOLD_ENGINE_LEASE_S": "5",
    }
    # Only the replica to be killed works when the releases come due: the host's engine wakes
    # for its own requests only (and at a 30 s tick), the third starts once the first is dead.
    passive = {"TASKHOLD_ENGINE_TICK_S": "30", "TASKHOLD_RECONCILE_INTERVAL_S": "60"}
    host = Serve(launcher, tmp_path / "r2", {**shared, **passive}, lightning="lnd")
    relay = f"ws://127.0.0.1:{host.env['TASKHOLD_EMBEDDED_RELAY_PORT']}"
    doomed = Serve(launcher, tmp_path / "r1", {**shared, "TASKHOLD_RELAYS": relay}, "lnd")
    third = Serve(launcher, tmp_path / "r3", {**shared, "TASKHOLD_RELAYS": relay}, "lnd")
    employer_wallet, worker_wallet = devnet.wallet("employer"), devnet.wallet("worker")
    escrow = devnet.backend("escrow")
    employer_keys = NostrKeys.generate()
    employer = TaskholdClient(host.url, employer_keys, retries=0)
    # Approvals go to the replica to be killed: a request wakes the engine of its own process.
    approver = TaskholdClient(doomed.url, employer_keys, retries=0)
    worker = TaskholdClient(host.url, NostrKeys.generate(), retries=0)
    try:
        host.start(crash_at=None)
        await host.wait_up()
        for replica in (doomed, third):  # one configuration: the same keys everywhere
            shutil.copytree(host.data_dir / "keys", replica.data_dir / "keys")
        doomed.start(crash_at="after_payout")
        await doomed.wait_up()
        worker_before = await settled_balance(worker_wallet)
        employer_before = await settled_balance(employer_wallet)

        tasks = []
        for _ in range(RELEASED + REFUNDED):
            task = await employer.create_task(
                "Replica test", "", AMOUNT_MSAT, int(time.time()) + 1800, acceptance=ACCEPTANCE
            )
            funding = (await employer.request_funding(task["task_id"]))["funding"]
            await employer_wallet.send_payment(funding["payment_request"])
            tasks.append((task, bytes.fromhex(funding["payment_hash"])))
        for task, _ in tasks:
            state = await _wait_state(employer, task["task_id"], {"FUNDED"}, 60)
            assert state == "FUNDED"
        for task, _ in tasks[:RELEASED]:
            await worker.claim(task["task_id"])
            invoice = await worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
            await worker.submit_proof(
                task["task_id"], {"url": "https://example.org/r"}, invoice.payment_request
            )
        for task, _ in tasks[RELEASED:]:
            await employer.cancel(task["task_id"], "no longer needed")
        for task, _ in tasks[:RELEASED]:
            try:
                await approver.approve(task["task_id"], idempotency_key=task["task_id"])
            except httpx.TransportError:
                # Killed meanwhile, maybe after this approval committed (a release's job starts
                # right after the approval's commit, so the kill can come while a later approval
                # is in flight). A replica that is gone commits nothing more, so its state says
                # whether it landed; only one that did not land goes to another replica (signed
                # anew, so under the same key it would be refused as another request).
                state = (await employer.get_task(task["task_id"]))["state"]
                if state == "SUBMITTED":
                    await employer.approve(task["task_id"], idempotency_key=task["task_id"])

        for _ in range(600):  # killed at its first payout, within a minute
            if doomed.returncode() is not None:
                break
            await asyncio.sleep(0.1)
        assert doomed.returncode() == -signal.SIGKILL, doomed.log_tail()
        third.start(crash_at=None)
        await third.wait_up()
        finals = [
            await _wait_state(employer, task["task_id"], {"PAID", "REFUNDED"}, 120)
            for task, _ in tasks
        ]
        assert finals == ["PAID"] * RELEASED + ["REFUNDED"] * REFUNDED
        for index, (_, payment_hash) in enumerate(tasks):
            held = (await escrow.lookup_invoice(payment_hash)).state
            assert held is (InvoiceState.SETTLED if index < RELEASED else InvoiceState.CANCELED)
        worker_got = await settled_balance(worker_wallet) - worker_before
        assert worker_got == sum(task["payout_msat"] for task, _ in tasks[:RELEASED])  # once
        employer_paid = employer_before - await settled_balance(employer_wallet)
        assert AMOUNT_MSAT * RELEASED <= employer_paid < AMOUNT_MSAT * (RELEASED + REFUNDED)
        assert await log_gaps(Parties(host, employer, worker)) == []
    finally:
        for replica in (doomed, third, host):
            await replica.stop()
        await employer.aclose()
        await approver.aclose()
        await worker.aclose()
        await employer_wallet.close()
        await worker_wallet.close()
        await escrow.close()
