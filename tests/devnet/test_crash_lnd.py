"""Crash points on real lnd: ``taskhold serve --lightning lnd`` killed (SIGKILL) at a crash point
on the regtest devnet, restarted, converges: the worker paid exactly once, the hold invoice
settled or cancelled, the public log gap-free and clean for the independent auditor."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.crash_harness import (
    ACCEPTANCE,
    SETTLE_TIMEOUT_S,
    ExecLauncher,
    Parties,
    Serve,
    log_gaps,
)
from support.devnet_network import DevnetHandle, settled_balance

from taskhold.client import TaskholdClient
from taskhold.lightning.base import InvoiceState
from taskhold.nostr import NostrKeys

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

AMOUNT_MSAT = 40_000_000


@pytest.fixture(scope="module")
def launcher() -> Iterator[ExecLauncher]:
    yield ExecLauncher()


@pytest.mark.parametrize(
    ("point", "final"),
    [("after_payout", "PAID"), ("after_settle", "PAID"), ("after_cancel", "REFUNDED")],
)
async def test_serve_on_lnd_killed_at_a_crash_point_converges(
    devnet: DevnetHandle,
    launcher: ExecLauncher,
    tmp_path: Path,
    database_url: str,
    point: str,
    final: str,
) -> None:
    connection = json.loads(devnet.connection_file.read_text())
    serve = Serve(
        launcher,
        tmp_path / "data",
        {
            "TASKHOLD_DATABASE_URL": database_url,
            "TASKHOLD_LND_CONNECTION_FILE": str(devnet.connection_file),
            "TASKHOLD_HOLD_EXPIRY_DELTA": str(connection.get("hold_expiry_delta", 18)),
            "TASKHOLD_PAYOUT_TIMEOUT_S": "20",
        },
        lightning="lnd",
    )
    employer_wallet, worker_wallet = devnet.wallet("employer"), devnet.wallet("worker")
    escrow = devnet.backend("escrow")
    employer = TaskholdClient(serve.url, NostrKeys.generate(), retries=0)
    worker = TaskholdClient(serve.url, NostrKeys.generate(), retries=0)
    parties = Parties(serve, employer, worker)
    serve.start(crash_at=point)
    try:
        await serve.wait_up()
        worker_before = await settled_balance(worker_wallet)
        employer_before = await settled_balance(employer_wallet)
        keys = [uuid.uuid4().hex for _ in range(5)]
        task = await parties.call(
            lambda: employer.create_task(
                "Crash test",
                "",
                AMOUNT_MSAT,
                int(time.time()) + 1800,
                acceptance=ACCEPTANCE,
                idempotency_key=keys[0],
            )
        )
        task_id = task["task_id"]
        funding = await parties.call(
            lambda: employer.request_funding(task_id, idempotency_key=keys[1])
        )
        payment_hash = bytes.fromhex(funding["funding"]["payment_hash"])
        await employer_wallet.send_payment(funding["funding"]["payment_request"])
        await parties.wait_state(employer, task_id, {"FUNDED"}, SETTLE_TIMEOUT_S)
        if final == "REFUNDED":
            await parties.call(lambda: employer.cancel(task_id, "no", idempotency_key=keys[2]))
        else:
            await parties.call(lambda: worker.claim(task_id, idempotency_key=keys[2]))
            invoice = await worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
            await parties.call(
                lambda: worker.submit_proof(
                    task_id,
                    {"url": "https://example.org/c"},
                    invoice.payment_request,
                    idempotency_key=keys[3],
                )
            )
            await parties.call(lambda: employer.approve(task_id, idempotency_key=keys[4]))
        await parties.wait_state(employer, task_id, {final}, 120)

        assert serve.kills == 1, f"serve was not killed at {point}"
        status = await escrow.lookup_invoice(payment_hash)
        assert status.state is (InvoiceState.SETTLED if final == "PAID" else InvoiceState.CANCELED)
        worker_got = await settled_balance(worker_wallet) - worker_before
        assert worker_got == (task["payout_msat"] if final == "PAID" else 0)
        employer_paid = employer_before - await settled_balance(employer_wallet)
        assert employer_paid >= (AMOUNT_MSAT if final == "PAID" else 0)
        if final == "REFUNDED":
            assert employer_paid == 0
        assert await log_gaps(parties) == []
    finally:
        await serve.stop()
        await employer.aclose()
        await worker.aclose()
        await employer_wallet.close()
        await worker_wallet.close()
        await escrow.close()
