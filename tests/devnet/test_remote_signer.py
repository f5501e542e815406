"""The escrow lnd as a watch-only node with a remote signer (issue #18), on the shared devnet,
which runs that way by default (``tests/support/devnet_network.py``; the pool devnet keeps its
keys in the node, so ``test_pool_*`` show a devnet without a signer still works).

What must hold: the escrow node's wallet has no private key (every account watch-only) and its
identity is the signer's; with the signer stopped, the escrow node, its data dir, unlocked wallet
and password all in hand, cannot spend or sign; the signer back, it can again. And taskhold,
asked to pay a worker while the signer is away, keeps the employer's payment held and pays
once the signer is back: nothing lost, nothing paid twice, no channel closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.devnet_network import DevnetHandle

from taskhold.devnet.layout import SIGNER, Layout
from taskhold.devnet.lnd_node import LndAdmin
from taskhold.lightning.base import InvoiceState, LightningError

from .live_stack import balances, funded, hold_state, live_stack, public_log_problems, sqlite_url
from .test_escrow_e2e import LndStack, _no_force_closes
from .test_hostile_worker import PROOF

pytestmark = [pytest.mark.devnet]

__all__ = ["sqlite_url"]  # the fixture

SIGNER_AWAY_S = 20.0
"""How long the payout is left to fail: several engine passes at ``payout_timeout_s=5``."""


def _layout(devnet: DevnetHandle) -> Layout:
    state = Layout(devnet.data_dir).load_state()
    assert state is not None
    return Layout.of(devnet.data_dir, state)


@contextlib.asynccontextmanager
async def _admins(devnet: DevnetHandle) -> AsyncIterator[tuple[LndAdmin, LndAdmin]]:
    layout = _layout(devnet)
    escrow, signer = LndAdmin(layout.node("escrow")), LndAdmin(layout.signer)
    try:
        yield escrow, signer
    finally:
        await escrow.aclose()
        await signer.aclose()


@contextlib.asynccontextmanager
async def _signer_away(devnet: DevnetHandle) -> AsyncIterator[None]:
    """The signer stopped for the body; started again (and answering) after it, even when the
    body failed: the next tests need it."""
    await devnet.stop_node(SIGNER)
    try:
        yield
    finally:
        await devnet.start_node(SIGNER)


@pytest.fixture(autouse=True)
def _needs_the_signer(devnet: DevnetHandle) -> None:
    if not _layout(devnet).remote_signer:
        pytest.skip(
            "the shared devnet runs without a remote signer (TASKHOLD_DEVNET_REMOTE_SIGNER)"
        )


async def test_the_escrow_node_is_watch_only_and_the_signer_holds_its_keys(
    devnet: DevnetHandle,
) -> None:
    document = json.loads(devnet.connection_file.read_text())
    assert document["remote_signer"]["name"] == SIGNER
    assert document["remote_signer"]["signs_for"] == "escrow"
    async with _admins(devnet) as (escrow, signer):
        escrow_accounts = (await escrow.rest.call("GET", "/v2/wallet/accounts"))["accounts"]
        signer_accounts = (await signer.rest.call("GET", "/v2/wallet/accounts"))["accounts"]
        with_keys = [a for a in escrow_accounts if a.get("extended_public_key")]
        # lnd's default accounts (np2wkh, p2wkh, p2tr) and its internal key families.
        assert len(with_keys) >= 3
        assert all(account.get("watch_only") is True for account in with_keys), with_keys
        assert not any(account.get("watch_only") for account in signer_accounts)
        # The same xpubs: the escrow's wallet is the signer's, without the private half.
        assert {a["extended_public_key"] for a in with_keys} <= {
            a["extended_public_key"] for a in signer_accounts
        }
        escrow_info, signer_info = await escrow.getinfo(), await signer.getinfo()
        assert escrow_info["identity_pubkey"] == signer_info["identity_pubkey"]
        assert escrow_info["identity_pubkey"] == devnet.pubkey("escrow")
        # The signer is on no network: no peers, no channels, no chain backend.
        assert await signer.peers() == set()
        assert await signer.channels() == []
        assert int(escrow_info.get("num_active_channels") or 0) >= 2


async def test_without_its_signer_the_escrow_node_can_neither_spend_nor_sign(
    devnet: DevnetHandle,
) -> None:
    """Everything the escrow node's host holds (data dir, unlocked wallet, its password file,
    the running lnd with admin) is not enough to move a coin: signing lives in the signer."""
    layout = _layout(devnet)
    escrow_dir = layout.node("escrow").lnd_dir
    employer = devnet.wallet("employer")
    try:
        async with _admins(devnet) as (escrow, _):
            target = await employer.new_address()
            coins_before = await escrow.confirmed_balance_sat()
            assert coins_before > 100_000
            async with _signer_away(devnet):
                address = await escrow.new_address()  # public derivation: xpubs are enough
                assert address.startswith("bcrt1")
                with pytest.raises(LightningError) as refused_send:
                    await escrow.send_coins(target, 50_000)
                with pytest.raises(LightningError) as refused_sign:
                    await escrow.rest.call("POST", "/v1/signmessage", body={"msg": "dGFza2hvbGQ="})
                for refusal in (refused_send.value, refused_sign.value):
                    assert "remote sign" in str(refusal).lower() or "connect" in str(refusal)
                assert await escrow.confirmed_balance_sat() == coins_before
            # The signer back: the node signs again (lnd's gRPC client reconnects by itself).
            txid = await _eventually(lambda: escrow.send_coins(target, 50_000))
            assert len(txid) == 64
            await devnet.mine(1)
    finally:
        await employer.close()
    # Nothing in the escrow's dir is a seed: lnd keeps none on disk, and its wallet is
    # watch-only (above). What is there: channel state, public keys, TLS and macaroons.
    names = {path.name for path in escrow_dir.rglob("*") if path.is_file()}
    assert not any("seed" in name.lower() for name in names), names


async def _eventually(call: object, within_s: float = 90.0) -> str:
    """``call()``'s answer once it stops failing (the signer connection comes back with gRPC's
    backoff); its last error after ``within_s``."""
    assert callable(call)
    deadline = time.monotonic() + within_s
    while True:
        try:
            return str(await call())
        except LightningError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


@pytest.fixture
async def stack(devnet: DevnetHandle, tmp_path: Path, sqlite_url: str) -> AsyncIterator[LndStack]:
    async with live_stack(devnet, tmp_path / "data", sqlite_url, payout_timeout_s=5) as opened:
        yield opened


async def test_a_payout_while_the_signer_is_away_waits_held_and_pays_once_it_is_back(
    stack: LndStack, devnet: DevnetHandle
) -> None:
    employer, worker = stack.client(), stack.client()
    before = await balances(stack)
    task = await funded(stack, employer)
    task_id, hold_hash = task["task_id"], task["funding"]["payment_hash"]
    await worker.claim(task_id)
    invoice = await stack.worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, PROOF, invoice.payment_request)

    async with _signer_away(devnet):
        await employer.approve(task_id)
        await asyncio.sleep(SIGNER_AWAY_S)  # engine passes try the payout and fail
        assert await hold_state(stack, hold_hash) is InvoiceState.ACCEPTED
        assert (await employer.get_task(task_id))["state"] == "VERIFIED"
        assert (await balances(stack))[2] == before[2]  # the worker got nothing yet

    final = await employer.wait_for_state(task_id, {"PAID", "REFUNDED"}, timeout_s=180)
    assert final["state"] == "PAID", final
    assert await hold_state(stack, hold_hash) is InvoiceState.SETTLED
    escrow, employer_balance, worker_balance = await balances(stack)
    assert worker_balance - before[2] == final["payout_msat"]  # paid once
    assert before[1] - employer_balance == final["amount_msat"]
    assert escrow - before[0] == final["fee_msat"] - final["payout_fee_msat"]
    assert await _no_force_closes(stack)
    assert await public_log_problems(stack) == []
