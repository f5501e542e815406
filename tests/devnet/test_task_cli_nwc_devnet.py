"""``taskhold task`` on the regtest devnet with both parties' wallets behind Nostr Wallet
Connect: an NWC wallet service (``support.nwc_wallet``) on the embedded relay in front of the
employer's lnd node pays the hold invoice (``fund --wallet nostr+walletconnect://…``), one in
front of the worker's node makes the payout invoice, against a real ``taskhold serve
--lightning lnd``. The lnd bridge does not tell its balance (``get_balance`` answered
NOT_IMPLEMENTED), so the payment goes ahead without the balance check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.devnet_network import DevnetHandle, settled_balance
from support.nwc_wallet import LndBackend, NwcWalletService
from support.task_cli import key_file, serve_on_lnd, task_cli_process

from taskhold.nostr.embedded import EmbeddedRelay

pytestmark = [pytest.mark.devnet]

AMOUNT_SAT = 25_000


async def balance_msat(devnet: DevnetHandle, node: str) -> int:
    wallet = devnet.wallet(node)
    try:
        return await settled_balance(wallet)
    finally:
        await wallet.close()


async def test_a_task_goes_to_paid_with_both_wallets_behind_nwc_on_lnd(
    devnet: DevnetHandle, relay: EmbeddedRelay, tmp_path: Path
) -> None:
    serve = serve_on_lnd(devnet.connection_file, tmp_path / "data")
    employer_wallet = NwcWalletService(relay.url, LndBackend(devnet.wallet("employer")))
    worker_wallet = NwcWalletService(relay.url, LndBackend(devnet.wallet("worker")))
    employer, worker = key_file(tmp_path / "employer.key"), key_file(tmp_path / "worker.key")

    async def as_party(key: Path, *args: str) -> dict[str, Any]:
        ran = await task_cli_process(*args, "--server", serve.url, "--key-file", str(key), "--json")
        assert ran.code == 0, ran.stderr
        for service in (employer_wallet, worker_wallet):
            assert service.client_secret not in ran.stdout + ran.stderr
        return ran.json()

    serve.start(crash_at=None)
    await employer_wallet.start()
    await worker_wallet.start()
    try:
        await serve.wait_up()
        employer_before = await balance_msat(devnet, "employer")
        worker_before = await balance_msat(devnet, "worker")

        task = await as_party(
            employer, "create", "Fix the typo", "--amount-sat", str(AMOUNT_SAT),
            "--url-field", "url", "--field", "url",
        )  # fmt: skip
        task_id = str(task["task_id"])
        funded = await as_party(employer, "fund", task_id, "--wallet", employer_wallet.uri)
        assert funded["state"] == "FUNDED"
        assert employer_wallet.methods == ["get_balance", "pay_invoice"]
        assert (await as_party(worker, "claim", task_id))["state"] == "CLAIMED"
        proved = await as_party(
            worker, "proof", task_id, "--field", "url=https://example.org/pr/1",
            "--wallet", worker_wallet.uri,
        )  # fmt: skip
        assert proved["state"] == "SUBMITTED"
        assert proved["payout_invoice"] == worker_wallet.invoices[0]
        paid = await as_party(employer, "approve", task_id, "--timeout", "120")

        assert paid["state"] == "PAID"
        assert await balance_msat(devnet, "worker") - worker_before == paid["payout_msat"]
        assert employer_before - await balance_msat(devnet, "employer") >= AMOUNT_SAT * 1000
        assert employer_wallet.client_secret not in serve.log.read_text()
    finally:
        await serve.stop()
        await employer_wallet.stop()
        await worker_wallet.stop()
