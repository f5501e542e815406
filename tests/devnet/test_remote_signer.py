"""The escrow lnd as a watch-only node with a remote signer (issue #18), on the shared devnet,
which runs that way by default (``tests/support/devnet_network.py``; the pool devnet keeps its
keys in the node, so ``test_pool_*`` show a devnet without a signer still works).

What must hold: the escrow node's wallet has no private key (every account watch-only) and its
identity is the signer's; with the signer stopped, the escrow node, its data dir, unlocked wallet
and password all in hand, cannot spend or sign: lnd answers with the signer's error and then
shuts itself down (lnd's ``considerShutdown``: a watch-only node does not run on without its
signer); the signer back, it starts and spends again. And taskhold, asked to pay a worker
while the signer is away, keeps the employer's payment held and never pays twice (lnd then
reports that payout in flight for good, lnd issue #9340; ``docs/remote-signer.md``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.devnet_network import DevnetHandle, settled_balance

from taskhold.devnet import processes
from taskhold.devnet.layout import SIGNER, Layout
from taskhold.devnet.lnd_node import LndAdmin
from taskhold.lightning.base import InvoiceState, LightningError, PaymentStatus

from .live_stack import funded, hold_state, live_stack, public_log_problems, sqlite_url
from .test_escrow_e2e import LndStack, _no_force_closes
from .test_hostile_worker import PROOF, hash_of

pytestmark = [pytest.mark.devnet]

__all__ = ["sqlite_url"]  # the fixture

SIGNER_AWAY_S = 10.0
"""Long enough for several engine passes (``payout_timeout_s=5``) to try again."""


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
    """The signer stopped for the body; after it, even when the body failed (the next tests
    need them), the signer and then the escrow node (if it shut itself down) run again with
    their channels active."""
    await devnet.stop_node(SIGNER)
    try:
        yield
    finally:
        await devnet.start_node("escrow")


async def _escrow_exits(devnet: DevnetHandle, within_s: float = 60.0) -> None:
    """Wait until the escrow lnd process is gone: it shuts down after a failed signing."""
    pid_path = _layout(devnet).pid_path("escrow")
    deadline = time.monotonic() + within_s
    while processes.alive_pid(pid_path) is not None:
        if time.monotonic() > deadline:
            raise AssertionError("the escrow lnd kept running without its signer")
        await asyncio.sleep(0.2)


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
    escrow_dir = _layout(devnet).node("escrow").lnd_dir
    employer = devnet.wallet("employer")
    try:
        async with _admins(devnet) as (escrow, _):
            target = await employer.new_address()
            coins_before = await escrow.confirmed_balance_sat()
            assert coins_before > 100_000
            async with _signer_away(devnet):
                address = await escrow.new_address()  # public derivation: xpubs are enough
                assert address.startswith("bcrt1")
                with pytest.raises(LightningError) as refused:
                    await escrow.send_coins(target, 50_000)
                # A clear answer, not a hang: the signer's connection error, named as such.
                assert "remote signer" in (refused.value.node_message or ""), refused.value
                await _escrow_exits(devnet)
                with pytest.raises(LightningError):
                    await escrow.rest.call("POST", "/v1/signmessage", body={"msg": "dGFza2hvbGQ="})
            await escrow.rest.aclose()  # its pooled connections died with the process
            assert await escrow.confirmed_balance_sat() == coins_before  # nothing was sent
            # The signer back, the same node spends and signs again.
            txid = await escrow.send_coins(target, 50_000)
            assert len(txid) == 64
            signed = await escrow.rest.call("POST", "/v1/signmessage", body={"msg": "dGFza2hvbGQ="})
            assert signed["signature"]
            await devnet.mine(1)
    finally:
        await employer.close()
    # Nothing in the escrow's dir is a seed: lnd keeps none on disk, and its wallet is
    # watch-only (above). What is there: channel state, public keys, TLS and macaroons.
    names = {path.name for path in escrow_dir.rglob("*") if path.is_file()}
    assert not any("seed" in name.lower() for name in names), names


@pytest.fixture
async def stack(devnet: DevnetHandle, tmp_path: Path, sqlite_url: str) -> AsyncIterator[LndStack]:
    async with live_stack(devnet, tmp_path / "data", sqlite_url, payout_timeout_s=5) as opened:
        yield opened


async def test_a_payout_when_the_signer_is_gone_keeps_the_hold_and_never_pays_twice(
    stack: LndStack, devnet: DevnetHandle
) -> None:
    """The approval comes while the signer is down. The payout's first commitment signature
    fails, lnd answers the send with an error and shuts itself down; taskhold sees its node
    unreachable and keeps the task VERIFIED. Back up, lnd still lists the payout IN_FLIGHT
    although no HTLC ever reached a channel (its attempt was registered before the signature
    failed: lnd issue #9340, resumed on every start and never resolved), so taskhold follows that
    one payment and sends no second one; the employer's payment stays held all along."""
    employer, worker = stack.client(), stack.client()
    worker_before = await settled_balance(stack.worker_wallet)
    task = await funded(stack, employer)
    task_id, hold_hash = task["task_id"], task["funding"]["payment_hash"]
    await worker.claim(task_id)
    invoice = await stack.worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, PROOF, invoice.payment_request)
    payout_hash = hash_of(invoice.payment_request)
    try:
        async with _signer_away(devnet):
            await employer.approve(task_id)
            await _escrow_exits(devnet)  # the payout's signature failed
            await asyncio.sleep(SIGNER_AWAY_S)  # engine passes fail against the missing node
            assert (await employer.get_task(task_id))["state"] == "VERIFIED"
        await asyncio.sleep(SIGNER_AWAY_S)  # and more passes with node and signer back
        assert (await employer.get_task(task_id))["state"] == "VERIFIED"
        assert await hold_state(stack, hold_hash) is InvoiceState.ACCEPTED  # still held
        payout = await stack.services.lightning.lookup_payment(payout_hash)
        assert payout.status is PaymentStatus.IN_FLIGHT
        worker_node = devnet.backend("worker")
        try:
            assert (await worker_node.lookup_invoice(payout_hash)).state is InvoiceState.OPEN
        finally:
            await worker_node.close()
        assert await settled_balance(stack.worker_wallet) == worker_before  # nothing paid
        assert await _no_force_closes(stack)
    finally:
        # Give the employer's payment back, so no held HTLC outlives the test (lnd would cancel
        # it near its expiry, moving the employer's balance under a later test).
        with contextlib.suppress(LightningError):
            await stack.services.lightning.cancel_invoice(bytes.fromhex(hold_hash))
    assert await public_log_problems(stack) == []
