"""``taskhold task … --wallet nostr+walletconnect://…``: paying and being paid through NWC.

A NIP-47 wallet service (``support.nwc_wallet``) on a real relay, backed by the simulator's
wallets of a real ``taskhold serve``; the command runs in its own process so the service, on
the test's event loop, can answer it.

What must hold: the employer's hold invoice is paid and the worker's payout invoice made through
the wallet; a wallet's error (INSUFFICIENT_BALANCE) ends the command with exit 1 and its
message; a wallet that never answers times out clearly; the connection secret shows nowhere;
an answer signed by any key other than the wallet service's is not believed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.crash_harness import Serve
from support.nwc_wallet import Behaviour, Impostor, NwcWalletService, SimBackend
from support.task_cli import Ran, key_file, task_cli, task_cli_process

from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.wallet_connect import WalletConnection, WalletConnectUri

AMOUNT_SAT = 4_000


@pytest.fixture
async def services(relay: EmbeddedRelay) -> AsyncIterator[list[NwcWalletService | Impostor]]:
    """Every wallet service a test starts, stopped after it."""
    started: list[NwcWalletService | Impostor] = []
    yield started
    for service in started:
        await service.stop()


async def wallet_service(
    started: list[NwcWalletService | Impostor],
    relay: EmbeddedRelay,
    server: Serve,
    name: str,
    behaviour: Behaviour = "serve",
    wait_for: asyncio.Event | None = None,
) -> NwcWalletService:
    service = NwcWalletService(
        relay.url, SimBackend(server.url, name), behaviour=behaviour, wait_for=wait_for
    )
    await service.start()
    started.append(service)
    return service


def balances(server: Serve) -> dict[str, int]:
    return dict(httpx.get(f"{server.url}/v1/sim/wallets").json()["balances_msat"])


def shows_no_secret(service: NwcWalletService, *runs: Ran, serve: Serve) -> None:
    for ran in runs:
        assert service.client_secret not in ran.stdout + ran.stderr
    assert service.client_secret not in serve.log.read_text()


async def created(server: Serve, employer: Path) -> str:
    ran = await task_cli_process(
        "create", "Translate", "--amount-sat", str(AMOUNT_SAT), "--field", "url",
        "--server", server.url, "--key-file", str(employer), "--json",
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    return str(ran.json()["task_id"])


async def test_a_task_is_funded_and_paid_out_through_nwc_wallets(
    server: Serve, relay: EmbeddedRelay, services: list[Any], tmp_path: Path
) -> None:
    employer_wallet = await wallet_service(services, relay, server, "employer")
    worker_wallet = await wallet_service(services, relay, server, "worker")
    employer = ("--server", server.url, "--key-file", str(key_file(tmp_path / "e.key")))
    worker = ("--server", server.url, "--key-file", str(key_file(tmp_path / "w.key")))
    task_id = await created(server, tmp_path / "e.key")
    before = balances(server)

    funded = await task_cli_process(
        "fund", task_id, "--wallet", employer_wallet.uri, *employer, "--json"
    )
    assert funded.code == 0, funded.stderr
    assert funded.json()["state"] == "FUNDED"
    assert funded.json()["paid_with"] == f"nostr+walletconnect://{employer_wallet.pubkey_hex}"
    assert employer_wallet.methods == ["get_balance", "pay_invoice"]
    assert employer_wallet.encryptions == ["nip44_v2", "nip44_v2"]
    assert (await task_cli_process("claim", task_id, *worker)).code == 0
    proved = await task_cli_process(
        "proof", task_id, "--field", "url=https://example.org/t", "--wallet", worker_wallet.uri,
        *worker, "--json",
    )  # fmt: skip
    assert proved.code == 0, proved.stderr
    assert worker_wallet.methods == ["make_invoice"]
    approved = await task_cli_process("approve", task_id, *employer, "--json")
    assert approved.code == 0, approved.stderr
    assert approved.json()["state"] == "PAID"

    after = balances(server)
    payout_msat = approved.json()["payout_msat"]
    assert after["worker"] - before["worker"] == payout_msat  # paid to the NWC wallet's invoice
    assert before["employer"] - after["employer"] >= AMOUNT_SAT * 1000
    shows_no_secret(employer_wallet, funded, approved, serve=server)
    shows_no_secret(worker_wallet, proved, serve=server)


async def test_a_wallet_that_cannot_pay_is_exit_1_with_its_message(
    server: Serve, relay: EmbeddedRelay, services: list[Any], tmp_path: Path
) -> None:
    broke = await wallet_service(services, relay, server, "employer", "broke")
    task_id = await created(server, key_file(tmp_path / "e.key"))

    ran = await task_cli_process(
        "fund", task_id, "--wallet", broke.uri, "--server", server.url,
        "--key-file", str(tmp_path / "e.key"), "--json",
    )  # fmt: skip

    assert ran.code == 1
    error = ran.json()["error"]
    assert error["kind"] == "payment"
    assert "not enough sats in this wallet" in error["message"]
    assert "pay_invoice" in broke.methods
    shown = await task_cli_process("show", task_id, "--server", server.url, "--json")
    assert shown.json()["state"] == "PENDING_FUNDING"
    shows_no_secret(broke, ran, serve=server)


async def test_a_wallet_that_never_answers_times_out(
    server: Serve, relay: EmbeddedRelay, services: list[Any], tmp_path: Path
) -> None:
    silent = await wallet_service(services, relay, server, "worker", "silent")
    task_id = await created(server, key_file(tmp_path / "e.key"))
    employer = ("--server", server.url, "--key-file", str(tmp_path / "e.key"))

    fund = await task_cli_process(
        "fund", task_id, "--wallet", silent.uri, "--wallet-timeout", "1", *employer, "--json"
    )
    proof = await task_cli_process(
        "proof", task_id, "--field", "url=https://example.org/t", "--wallet", silent.uri,
        "--wallet-timeout", "1", *employer, "--json",
    )  # fmt: skip

    for ran, method in ((fund, "get_balance"), (proof, "make_invoice")):
        assert ran.code == 1
        error = ran.json()["error"]
        assert error["kind"] == "timeout"
        assert f"did not answer {method} within 1 s" in error["message"]
    assert silent.methods == ["get_balance", "make_invoice"]  # no payment was asked for
    shows_no_secret(silent, fund, proof, serve=server)


async def test_an_invoice_from_a_key_other_than_the_wallet_service_is_not_used(
    server: Serve, relay: EmbeddedRelay, services: list[Any], tmp_path: Path
) -> None:
    employer = ("--server", server.url, "--key-file", str(key_file(tmp_path / "e.key")))
    worker = ("--server", server.url, "--key-file", str(key_file(tmp_path / "w.key")))
    task_id = await created(server, tmp_path / "e.key")
    assert (await task_cli_process("fund", task_id, "--wallet", "sim", *employer)).code == 0
    assert (await task_cli_process("claim", task_id, *worker)).code == 0
    shown = await task_cli_process("show", task_id, "--server", server.url, "--json")
    payout_msat = shown.json()["payout_msat"]
    # a forged invoice for the right amount, paying the employer's wallet instead
    impostor = Impostor(relay.url, SimBackend(server.url, "employer"), payout_msat)
    await impostor.start()
    services.append(impostor)
    # the real wallet answers only after the impostor did: the first answer is the forgery
    real = await wallet_service(services, relay, server, "worker", wait_for=impostor.answered)

    proved = await task_cli_process(
        "proof", task_id, "--field", "url=https://example.org/t", "--wallet", real.uri, *worker,
        "--json",
    )  # fmt: skip

    assert proved.code == 0, proved.stderr
    assert impostor.answered.is_set()
    assert proved.json()["payout_invoice"] == real.invoices[0]
    assert proved.json()["payout_invoice"] != impostor.invoices[0]


async def test_the_connection_ignores_answers_signed_by_another_key(
    server: Serve, relay: EmbeddedRelay, services: list[Any]
) -> None:
    silent = await wallet_service(services, relay, server, "worker", "silent")
    impostor = Impostor(relay.url)
    await impostor.start()
    services.append(impostor)
    connection = WalletConnection(WalletConnectUri.parse(silent.uri), timeout_s=1.0)
    try:
        with pytest.raises(TimeoutError, match="did not answer get_balance"):
            await connection.balance_msat()
    finally:
        await connection.aclose()
    assert impostor.answered.is_set()  # it answered, and was not listened to


def test_a_connection_string_is_never_repeated_in_an_error(tmp_path: Path) -> None:
    secret = "ab" * 32
    key = str(key_file(tmp_path / "e.key"))
    for spec, says in (
        (f"nostr+walletconnect://nothex?relay=ws://127.0.0.1:1&secret={secret}", "64 lower hex"),
        (f"nostr+walletconnect://{'a' * 64}?relay=http://x&secret={secret}", "relay=ws(s)"),
    ):
        ran = task_cli(
            "fund", "t1", "--server", "http://127.0.0.1:9", "--key-file", key, "--wallet", spec,
            "--json",
        )  # fmt: skip
        assert ran.code == 2
        assert says in ran.stderr
        assert secret not in ran.stdout + ran.stderr
