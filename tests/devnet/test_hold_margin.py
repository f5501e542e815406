"""lnd's own cancel margin, measured on the real node, and taskhold's guardian set from it.

lnd cancels an ACCEPTED hold invoice once ``height + invoices.holdexpirydelta >= expiry``. The
default moved from 12 to 18 in lnd v0.21; a taskhold that assumes the old value lets the node
cancel first, and a release racing that cancel pays the worker from the operator's own money.
So the margin is measured here block by block, and taskhold must read the same number from the
node at start and guard strictly before it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.devnet_network import DevnetHandle

from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.lightning.lnd import LndBackend
from taskhold.lightning.lnd_rest import load_node_connection
from taskhold.services import build_services
from taskhold.settings import Settings

pytestmark = pytest.mark.devnet

AMOUNT_MSAT = 20_000_000
CLTV_EXPIRY_DELTA = 40
SETTLE_SECONDS = 1.0
"""How long lnd gets after each block to cancel (its expiry watcher reacts within milliseconds)."""


@pytest.fixture
async def escrow(devnet: DevnetHandle) -> AsyncIterator[LndBackend]:
    backend = devnet.backend("escrow")
    yield backend
    await backend.close()


async def _cancelled_within(backend: LndBackend, payment_hash: bytes, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        state = (await backend.lookup_invoice(payment_hash)).state
        if state is not InvoiceState.ACCEPTED:
            assert state is InvoiceState.CANCELED
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.05)


async def measure_cancel_margin(devnet: DevnetHandle, escrow: LndBackend) -> int:
    """Blocks left before the HTLC's expiry when lnd cancelled the held invoice by itself."""
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    invoice = await escrow.create_hold_invoice(
        payment_hash,
        AMOUNT_MSAT,
        memo="cancel margin",
        expiry_seconds=600,
        cltv_expiry_delta=CLTV_EXPIRY_DELTA,
    )
    wallet = devnet.wallet("employer")
    try:
        sent = await wallet.send_payment(invoice.payment_request)
    finally:
        await wallet.close()
    assert sent.status is PaymentStatus.IN_FLIGHT
    async with asyncio.timeout(15):
        async for status in escrow.subscribe_invoice(payment_hash):
            if status.state is InvoiceState.ACCEPTED:
                break
    expiry_height = status.accepted_htlc_expiry_height
    assert expiry_height is not None
    while True:
        await devnet.mine(1)  # one block at a time, as lnd's own itest warns
        height = await escrow.block_height()
        assert height < expiry_height, "lnd never cancelled the held invoice"
        if await _cancelled_within(escrow, payment_hash, SETTLE_SECONDS):
            return expiry_height - height


async def test_taskhold_guards_before_the_margin_lnd_really_cancels_at(
    devnet: DevnetHandle, escrow: LndBackend, tmp_path: Path
) -> None:
    measured = await measure_cancel_margin(devnet, escrow)

    assert await escrow.hold_expiry_delta() == measured
    connection = json.loads(devnet.connection_file.read_text())
    assert connection.pop("hold_expiry_delta") == measured  # what `devnet up` recorded
    # A production node's connection file records nothing, and taskhold was told the
    # pre-v0.21 value: it must still take the node's.
    unrecorded = tmp_path / "lnd.json"
    unrecorded.write_text(json.dumps(connection))
    settings = Settings(
        data_dir=tmp_path / "data",
        lightning="lnd",
        lnd_connection_file=unrecorded,
        hold_expiry_delta=12,
    )
    services = await build_services(settings)
    try:
        used = services.settings
    finally:
        await services.close()
    assert used.hold_expiry_delta == measured
    assert used.guard_blocks > measured


async def test_taskhold_does_not_start_when_the_node_cannot_say_its_margin(
    devnet: DevnetHandle, tmp_path: Path
) -> None:
    connection = load_node_connection(devnet.connection_file, "escrow")
    unreachable = LndBackend(
        "https://127.0.0.1:9", connection.tls_cert_path, connection.macaroon_path, timeout=2
    )
    settings = Settings(
        data_dir=tmp_path / "data", lightning="lnd", lnd_connection_file=devnet.connection_file
    )
    try:
        with pytest.raises(SystemExit, match="holdexpirydelta"):
            await build_services(settings, lightning=unreachable)
    finally:
        await unreachable.close()
