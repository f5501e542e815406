"""The public log's relay (PyPI ``nostr-relay``, its own process) down for minutes while tasks run
on the devnet, fund to PAID and to REFUNDED: the outbox keeps every entry, and once the relay is
back (same port, same SQLite) every ``gseq`` the database holds reaches it and the independent
auditor (``taskhold audit``) passes on what it serves. The downtime is filled with real tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.devnet_network import DevnetHandle
from support.relays import NostrRelayProcess, wait_connected, wait_disconnected

from taskhold.lightning.base import InvoiceState

from .live_stack import (
    balances,
    funded,
    hold_state,
    live_stack,
    log_in_db,
    one_database_url,
    public_log_problems,
)
from .test_escrow_e2e import LndStack, _no_force_closes
from .test_hostile_worker import PROOF

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

__all__ = ["one_database_url"]  # the fixture

RELAY_DOWN_S = float(os.environ.get("TASKHOLD_TEST_RELAY_DOWN_S", "120"))
"""How long the relay stays down at least; tasks keep running the whole time."""


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[NostrRelayProcess]:
    process = NostrRelayProcess(tmp_path / "nostr-relay")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def stack(
    devnet: DevnetHandle, tmp_path: Path, one_database_url: str, relay: NostrRelayProcess
) -> AsyncIterator[LndStack]:
    async with live_stack(
        devnet, tmp_path / "data", one_database_url, relays=[relay.url]
    ) as opened:
        yield opened


async def _run_task(stack: LndStack, *, paid: bool) -> dict[str, object]:
    """One task from funding to PAID (claimed, proved, approved) or to REFUNDED (cancelled)."""
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    task_id = task["task_id"]
    if paid:
        await worker.claim(task_id)
        invoice = await stack.worker_wallet.create_invoice(
            task["payout_msat"], expiry_seconds=86_400
        )
        await worker.submit_proof(task_id, PROOF, invoice.payment_request)
        await employer.approve(task_id)
    else:
        await employer.cancel(task_id, reason="not needed any more")
    final = await employer.wait_for_state(task_id, {"PAID", "REFUNDED"}, timeout_s=90)
    assert final["state"] == ("PAID" if paid else "REFUNDED"), final
    expected = InvoiceState.SETTLED if paid else InvoiceState.CANCELED
    assert await hold_state(stack, task["funding"]["payment_hash"]) is expected
    return final


async def test_relay_down_for_minutes_mid_run_gets_every_entry(
    stack: LndStack, relay: NostrRelayProcess
) -> None:
    pool, publisher = stack.services.relay_pool, stack.services.publisher
    assert pool is not None and publisher is not None
    before = await balances(stack)
    first = await _run_task(stack, paid=True)  # published while the relay is up

    relay.stop()
    await wait_disconnected(pool, relay.url)
    down_at = time.monotonic()
    finals = [first]
    while time.monotonic() - down_at < RELAY_DOWN_S:
        finals.append(await _run_task(stack, paid=len(finals) % 3 != 2))
    assert await publisher.pending() > 0  # the outbox holds what the relay missed

    relay.start()  # same port, same SQLite file
    back_at = time.monotonic()
    down_s = back_at - down_at
    await wait_connected(pool, relay.url)
    assert await public_log_problems(stack, timeout_s=120) == []
    caught_up_s = time.monotonic() - back_at

    paid = [final for final in finals if final["state"] == "PAID"]
    escrow, employer, worker = await balances(stack)
    assert worker - before[2] == sum(int(final["payout_msat"]) for final in paid)
    assert before[1] - employer == sum(int(final["amount_msat"]) for final in paid)
    earned = sum(int(final["fee_msat"]) - int(final["payout_fee_msat"]) for final in paid)
    assert escrow - before[0] == earned
    assert await _no_force_closes(stack)

    operator = stack.services.signer.get_public_key()
    audited = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskhold.cli",
            "audit",
            "--relay",
            relay.url,
            "--operator",
            operator,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert audited.returncode == 0, audited.stdout[-2000:] + audited.stderr[-2000:]
    report = json.loads(audited.stdout)
    print(
        f"\nrelay down {down_s:.0f} s over {len(finals) - 1} tasks,"
        f" {len(await log_in_db(stack))} entries; caught up in {caught_up_s:.1f} s;"
        f" audit: {report['summary']}"
    )
