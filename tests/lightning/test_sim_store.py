"""The simulated network survives a restart: a world reopened from its file holds the same
invoices, held HTLCs, payments and balances, and goes on from there as if never stopped."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.lightning.simworld import SimWorld

AMOUNT_MSAT = 150_000_000


def _hash(label: bytes) -> tuple[bytes, bytes]:
    preimage = hashlib.sha256(b"test/" + label).digest()
    return preimage, hashlib.sha256(preimage).digest()


async def _busy_world(path: Path) -> tuple[SimWorld, dict[str, bytes]]:
    """A world with one hold invoice of each state and a worker paid once."""
    world = SimWorld.open(path)
    hashes: dict[str, bytes] = {}
    for name in ("held", "settled", "cancelled", "open"):
        preimage, payment_hash = _hash(name.encode())
        hashes[name] = preimage
        invoice = await world.escrow.create_hold_invoice(
            payment_hash, AMOUNT_MSAT, memo=name, expiry_seconds=3600, cltv_expiry_delta=80
        )
        if name != "open":
            await world.employer.send_payment(invoice.payment_request)
    await world.escrow.settle_invoice(hashes["settled"])
    await world.escrow.cancel_invoice(hashlib.sha256(hashes["cancelled"]).digest())
    payout = await world.worker.create_invoice(AMOUNT_MSAT)
    await world.escrow.pay_invoice(payout, max_fee_msat=10_000, timeout_seconds=5, cltv_limit=2016)
    await world.network.mine(3)
    return world, hashes


async def test_a_reopened_world_is_the_world_that_was_saved(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    before, hashes = await _busy_world(path)
    after = SimWorld.open(path)

    assert after.network.height == before.network.height
    for name, node in before.nodes().items():
        assert after.nodes()[name].balance_msat == node.balance_msat
        assert after.nodes()[name].locked_msat == node.locked_msat
    for preimage in hashes.values():
        payment_hash = hashlib.sha256(preimage).digest()
        assert await after.escrow.lookup_invoice(payment_hash) == (
            await before.escrow.lookup_invoice(payment_hash)
        )
        assert await after.employer.lookup_payment(payment_hash) == (
            await before.employer.lookup_payment(payment_hash)
        )
    assert after.network.settled_payments == before.network.settled_payments


async def test_a_hold_settled_after_the_restart_pays_its_payer_once(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    before, hashes = await _busy_world(path)
    escrow_before = before.escrow.balance_msat
    held = hashlib.sha256(hashes["held"]).digest()

    after = SimWorld.open(path)
    await after.escrow.settle_invoice(hashes["held"])

    # the invoice and the employer's payment are one HTLC, restored as one
    assert (await after.employer.lookup_payment(held)).status is PaymentStatus.SUCCEEDED
    assert (await after.escrow.lookup_invoice(held)).state is InvoiceState.SETTLED
    assert after.escrow.balance_msat == escrow_before + AMOUNT_MSAT
    assert len(after.network.payments_to(held)) == 1
    again = SimWorld.open(path)  # and the settle itself was saved before it returned
    assert (await again.escrow.lookup_invoice(held)).state is InvoiceState.SETTLED


async def test_wallet_invoices_made_after_a_restart_are_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    before, _ = await _busy_world(path)
    earlier = await before.worker.create_invoice(AMOUNT_MSAT)
    later = await SimWorld.open(path).worker.create_invoice(AMOUNT_MSAT)
    assert later != earlier  # not the same preimage again: that would be "already exists"


async def test_lnd_auto_cancel_still_runs_on_a_restored_hold(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    _, hashes = await _busy_world(path)
    after = SimWorld.open(path)
    employer_before = after.employer.balance_msat
    await after.network.mine(80)
    held = hashlib.sha256(hashes["held"]).digest()
    assert (await after.escrow.lookup_invoice(held)).state is InvoiceState.CANCELED
    assert after.employer.balance_msat == employer_before + AMOUNT_MSAT


async def test_a_world_with_live_subscriptions_is_saved_without_them(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    world, hashes = await _busy_world(path)
    held = hashlib.sha256(hashes["held"]).digest()
    updates = world.escrow.subscribe_invoice(held)
    assert (await anext(updates)).state is InvoiceState.ACCEPTED
    await world.escrow.settle_invoice(hashes["held"])  # saved while a subscriber listens
    assert (await anext(updates)).state is InvoiceState.SETTLED
    restored = SimWorld.open(path)
    assert (await restored.escrow.lookup_invoice(held)).state is InvoiceState.SETTLED


async def test_saving_is_atomic_and_only_on_change(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    world, hashes = await _busy_world(path)
    saved = path.stat().st_mtime_ns
    await world.escrow.lookup_invoice(hashlib.sha256(hashes["held"]).digest())
    await world.escrow.cancel_invoice(hashlib.sha256(hashes["cancelled"]).digest())  # again
    assert path.stat().st_mtime_ns == saved  # nothing changed, nothing written
    assert [p.name for p in tmp_path.iterdir()] == ["sim.json"]  # no temporary left behind
    assert json.loads(path.read_text())["height"] == world.network.height


def test_a_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"format": 999}))
    with pytest.raises(ValueError, match="format"):
        SimWorld.open(path)
