"""``taskhold task`` on the regtest devnet: the employer funds the task from its own lnd node
(``fund --wallet lnd:devnet.json#employer``), the worker is paid to an invoice of its own node,
and the task goes from ``create`` to PAID through the command line against a real
``taskhold serve --lightning lnd``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support.devnet_network import DevnetHandle, settled_balance
from support.task_cli import key_file, serve_on_lnd, task_cli

pytestmark = [pytest.mark.devnet]

AMOUNT_SAT = 30_000


def balance_msat(devnet: DevnetHandle, node: str) -> int:
    async def read() -> int:
        wallet = devnet.wallet(node)
        try:
            return await settled_balance(wallet)
        finally:
            await wallet.close()

    return asyncio.run(read())


def test_a_task_goes_to_paid_with_fund_paying_from_the_employers_lnd_node(
    devnet: DevnetHandle, tmp_path: Path
) -> None:
    serve = serve_on_lnd(devnet.connection_file, tmp_path / "data")
    employer, worker = key_file(tmp_path / "employer.key"), key_file(tmp_path / "worker.key")

    def as_party(key: Path, *args: str) -> dict[str, Any]:
        ran = task_cli(*args, "--server", serve.url, "--key-file", str(key), "--json")
        assert ran.code == 0, ran.stderr
        return ran.json()

    serve.start(crash_at=None)
    try:
        asyncio.run(serve.wait_up())
        employer_before = balance_msat(devnet, "employer")
        worker_before = balance_msat(devnet, "worker")

        task = as_party(
            employer, "create", "Fix the typo", "--amount-sat", str(AMOUNT_SAT),
            "--url-field", "url", "--field", "url",
        )  # fmt: skip
        task_id = str(task["task_id"])
        funded = as_party(
            employer, "fund", task_id, "--wallet", f"lnd:{devnet.connection_file}#employer"
        )
        assert funded["state"] == "FUNDED"
        assert funded["paid_with"] == f"lnd:{devnet.connection_file}#employer"
        assert as_party(worker, "claim", task_id)["state"] == "CLAIMED"
        proved = as_party(
            worker, "proof", task_id, "--field", "url=https://example.org/pr/1",
            "--wallet", f"lnd:{devnet.connection_file}#worker",
        )  # fmt: skip
        assert proved["state"] == "SUBMITTED"
        paid = as_party(employer, "approve", task_id, "--timeout", "120")

        assert paid["state"] == "PAID"
        assert balance_msat(devnet, "worker") - worker_before == paid["payout_msat"]
        assert employer_before - balance_msat(devnet, "employer") >= AMOUNT_SAT * 1000
    finally:
        asyncio.run(serve.stop())
