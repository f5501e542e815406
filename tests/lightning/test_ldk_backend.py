"""What the LDK backend adds beyond the contract suite, on the devnet's embedded LDK escrow.

The invariants:
- taskhold's build patch is what lets LDK hold an HTLC for a task: a hold invoice asks for its
  final delta, and the HTLC outlives the ~6 blocks an unpatched LDK Node would hold it;
- the node's own auto-fail is reported, never hidden: past ``expiry - 39`` the invoice reads
  CANCELED, and the payer gets the money back;
- a hash that was cancelled cannot be paid afterwards (the HTLC is refused), so an employer's
  late payment is never held against a dead task;
- a restart loses nothing: an ACCEPTED invoice is still ACCEPTED, with the same heights, and
  settles;
- one process per node: a second opener of the same storage is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError
from support.devnet_network import (
    DevnetHandle,
    cancel_held_invoices,
    get_ldk_devnet,
    open_devnet_ldk_escrow,
    require_ldk_module,
)

from taskhold.devnet.ldk_escrow import wait_ldk_synced
from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.lightning.ldk import HTLC_FAIL_BACK_BUFFER, LdkBackend, LdkConfig, StorageInUse
from taskhold.lightning.ldk_module import LdkModuleMissing, patched_receive_method
from taskhold.lightning.lnd import LndBackend
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.services import ldk_config
from taskhold.settings import Settings

AMOUNT_MSAT = 20_000_000
WAIT_SECONDS = 30.0


def test_a_module_built_without_the_patch_is_refused() -> None:
    unpatched = types.SimpleNamespace(Bolt11Payment=type("Bolt11Payment", (), {}))

    with pytest.raises(LdkModuleMissing, match="without taskhold's patch"):
        patched_receive_method(unpatched)  # type: ignore[arg-type]


@dataclass
class World:
    devnet: DevnetHandle
    escrow: LdkBackend
    payer: LndWallet
    payer_node: LndBackend
    """The employer's lnd as a backend: how its payments ended."""


@pytest.fixture
async def ldk() -> AsyncIterator[World]:
    devnet = get_ldk_devnet()
    escrow = await open_devnet_ldk_escrow(devnet, payment_grace_seconds=2.0)
    world = World(devnet, escrow, devnet.wallet("employer"), devnet.backend("employer"))
    try:
        yield world
    finally:
        await cancel_held_invoices(escrow)
        await escrow.close()
        await world.payer.close()
        await world.payer_node.close()


async def _held(
    escrow: LdkBackend, payer: LndWallet, *, cltv_expiry_delta: int
) -> tuple[bytes, bytes]:
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    invoice = await escrow.create_hold_invoice(
        payment_hash,
        AMOUNT_MSAT,
        memo="held",
        expiry_seconds=3600,
        cltv_expiry_delta=cltv_expiry_delta,
    )
    await payer.send_payment(invoice.payment_request)
    await _until_state(escrow, payment_hash, InvoiceState.ACCEPTED)
    return preimage, payment_hash


async def _until_state(escrow: LdkBackend, payment_hash: bytes, state: InvoiceState) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        async for status in escrow.subscribe_invoice(payment_hash):
            if status.state is state:
                return
    raise AssertionError(f"the invoice ended without reaching {state}")


async def _mine(devnet: DevnetHandle, escrow: LdkBackend, blocks: int) -> None:
    await devnet.mine(blocks)
    await wait_ldk_synced(escrow, devnet.btcd())


async def _payer_outcome(payer: LndBackend, payment_hash: bytes) -> PaymentStatus:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            status = (await payer.lookup_payment(payment_hash)).status
            if status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED):
                return status
            await asyncio.sleep(0.2)


@pytest.mark.devnet
@pytest.mark.ldk
async def test_the_patch_lets_ldk_hold_an_htlc_far_past_its_own_six_blocks(
    ldk: World,
) -> None:
    devnet, escrow, payer = ldk.devnet, ldk.escrow, ldk.payer
    height = await escrow.block_height()
    preimage, payment_hash = await _held(escrow, payer, cltv_expiry_delta=120)
    (htlc,) = (await escrow.lookup_invoice(payment_hash)).htlcs
    assert htlc.expiry_height == height + 120 + 3  # lnd pads 3; unpatched LDK: height + 45

    await _mine(devnet, escrow, 12)  # twice what an unpatched LDK Node would have held

    assert (await escrow.lookup_invoice(payment_hash)).state is InvoiceState.ACCEPTED
    await escrow.settle_invoice(preimage)
    assert await _payer_outcome(ldk.payer_node, payment_hash) is PaymentStatus.SUCCEEDED


@pytest.mark.devnet
@pytest.mark.ldk
async def test_ldks_own_fail_back_reads_cancelled_and_returns_the_money(
    ldk: World,
) -> None:
    devnet, escrow, payer = ldk.devnet, ldk.escrow, ldk.payer
    _, payment_hash = await _held(escrow, payer, cltv_expiry_delta=42)
    (htlc,) = (await escrow.lookup_invoice(payment_hash)).htlcs
    blocks = htlc.expiry_height - HTLC_FAIL_BACK_BUFFER - await escrow.block_height()

    await _mine(devnet, escrow, blocks)

    assert (await escrow.lookup_invoice(payment_hash)).state is InvoiceState.CANCELED
    assert await _payer_outcome(ldk.payer_node, payment_hash) is PaymentStatus.FAILED


@pytest.mark.devnet
@pytest.mark.ldk
async def test_a_payment_after_the_cancel_is_refused_and_nothing_is_held(
    ldk: World,
) -> None:
    escrow, payer = ldk.escrow, ldk.payer
    payment_hash = hashlib.sha256(os.urandom(32)).digest()
    invoice = await escrow.create_hold_invoice(
        payment_hash, AMOUNT_MSAT, memo="late", expiry_seconds=3600, cltv_expiry_delta=60
    )
    await escrow.cancel_invoice(payment_hash)

    await payer.send_payment(invoice.payment_request)

    assert await _payer_outcome(ldk.payer_node, payment_hash) is PaymentStatus.FAILED
    status = await escrow.lookup_invoice(payment_hash)
    assert (status.state, status.amount_paid_msat, status.htlcs) == (InvoiceState.CANCELED, 0, ())


@pytest.mark.devnet
@pytest.mark.ldk
async def test_a_held_invoice_survives_a_restart_and_settles_after_it(
    ldk: World,
) -> None:
    devnet, escrow, payer = ldk.devnet, ldk.escrow, ldk.payer
    preimage, payment_hash = await _held(escrow, payer, cltv_expiry_delta=80)
    before = await escrow.lookup_invoice(payment_hash)
    await escrow.close()

    again = await open_devnet_ldk_escrow(devnet, payment_grace_seconds=2.0)
    try:
        assert await again.lookup_invoice(payment_hash) == before
        await again.settle_invoice(preimage)
        assert (await again.lookup_invoice(payment_hash)).state is InvoiceState.SETTLED
        assert await _payer_outcome(ldk.payer_node, payment_hash) is PaymentStatus.SUCCEEDED
    finally:
        await again.close()


@pytest.mark.devnet
@pytest.mark.ldk
async def test_the_nodes_storage_is_readable_by_its_owner_only(ldk: World) -> None:
    settings = Settings(lightning="ldk", lnd_connection_file=ldk.devnet.connection_file)

    storage = ldk_config(settings, None).storage_dir

    assert storage.stat().st_mode & 0o777 == 0o700


@pytest.mark.devnet
@pytest.mark.ldk
async def test_a_second_opener_of_the_same_node_is_refused(
    ldk: World,
) -> None:
    devnet, escrow = ldk.devnet, ldk.escrow

    with pytest.raises(StorageInUse, match="already running"):
        await open_devnet_ldk_escrow(devnet)

    assert await escrow.block_height() > 0  # the first one is untouched


def test_the_nodes_seed_and_chain_password_stay_out_of_its_config_repr(tmp_path: Path) -> None:
    seed = os.urandom(64)
    config = LdkConfig(
        storage_dir=tmp_path,
        seed=seed,
        rpc_host="127.0.0.1",
        rpc_port=1,
        rpc_user="ldk",
        rpc_password="chain-password-7f3a",
    )

    shown = repr(config)

    assert seed.hex() not in shown and repr(seed) not in shown
    assert "chain-password-7f3a" not in shown


@pytest.mark.ldk
def test_the_module_in_use_is_the_pinned_crate_with_taskholds_patch() -> None:
    """``scripts/build-ldk`` records what it built; the module taskhold loads is that one."""
    module = require_ldk_module()
    package = Path(os.environ["TASKHOLD_LDK_DIR"]) / "ldk_node"
    build = (package / "BUILDINFO").read_text()

    assert "ldk-node 0.7.1 sha256 9a890a268dd7430d" in build
    assert "receive-for-hash-final-cltv-delta.patch" in build
    assert Path(module.__file__ or "").parent == package
    assert patched_receive_method(module) == "receive_for_hash_with_final_cltv_delta"


@pytest.mark.parametrize("value", ["8332", "localhost:", "localhost:port", "h:70000"])
def test_the_ldk_chain_and_listen_addresses_must_be_host_and_port(value: str) -> None:
    for name in ("ldk_bitcoind_rpc", "ldk_listen"):
        with pytest.raises(ValidationError, match="is not host:port"):
            Settings(**{name: value})
