"""``taskhold devnet up --escrow-nodes 2``: two lnd escrow nodes, each with channels from the
employer and to the worker, one node stopped and started again, ``add-liquidity`` raising a
node's inbound and outbound by about what it was asked for (on the run's pool devnet), and a
running one-node devnet grown to two, then brought down (on a private one)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.devnet_network import devnet_cli, get_pool_devnet, private_devnet_up

from taskhold.devnet.layout import Layout, ports_free
from taskhold.devnet.lnd_node import LndAdmin
from taskhold.lightning.base import InvoiceState, NodeUnreachable, PaymentStatus
from taskhold.lightning.lnd import LndBackend
from taskhold.lightning.lnd_rest import load_node_connection
from taskhold.lightning.lnd_wallet import LndWallet

pytestmark = [pytest.mark.devnet, pytest.mark.pool_devnet]

AMOUNT_MSAT = 20_000_000
WAIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def pool() -> Path:
    """The run's pool devnet (two escrow nodes); these tests leave it as they found it, or
    with more liquidity. Its data dir."""
    return get_pool_devnet().data_dir


def _connection(data_dir: Path) -> Path:
    return data_dir / "devnet.json"


@pytest.fixture
async def escrow_2(pool: Path) -> AsyncIterator[LndBackend]:
    backend = LndBackend.from_connection_file(_connection(pool), node="escrow-2")
    yield backend
    await backend.close()


async def _channel_peers(data_dir: Path, node: str) -> set[str]:
    """The pubkeys this node has an active channel with."""
    layout = Layout(data_dir)
    state = layout.load_state()
    assert state is not None
    admin = LndAdmin(Layout(data_dir, state.base_port, state.escrow_nodes).node(node))
    try:
        return {c["remote_pubkey"] for c in await admin.channels() if c.get("active")}
    finally:
        await admin.aclose()


def _pubkey(data_dir: Path, node: str) -> str:
    return load_node_connection(_connection(data_dir), node).pubkey


async def test_both_escrow_nodes_run_with_channels_from_the_employer_and_to_the_worker(
    pool: Path,
) -> None:
    document = json.loads(_connection(pool).read_text())
    assert document["escrow_nodes"] == ["escrow", "escrow-2"]
    assert _pubkey(pool, "escrow") != _pubkey(pool, "escrow-2")
    for node in ("escrow", "escrow-2"):
        peers = await _channel_peers(pool, node)
        assert {_pubkey(pool, "employer"), _pubkey(pool, "worker")} <= peers, node
        backend = LndBackend.from_connection_file(_connection(pool), node=node)
        try:
            capacity = await backend.capacity()
        finally:
            await backend.close()
        assert capacity.inbound_msat > 5_000_000_000, node  # most of the employer's channel
        assert capacity.outbound_msat > 5_000_000_000, node  # most of its channel to the worker
        assert capacity.htlc_slots_free == capacity.htlc_slots_max > 0, node
        # taskhold reaches each escrow node with its own baked macaroon, not admin.
        baked = Layout(pool).node(node).escrow_macaroon_path
        assert document["nodes"][node]["macaroon_path"] == str(baked) and baked.exists(), node


async def test_a_hold_invoice_of_escrow_2_is_paid_by_the_employer_and_settled(
    pool: Path, escrow_2: LndBackend
) -> None:
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    invoice = await escrow_2.create_hold_invoice(
        payment_hash, AMOUNT_MSAT, memo="pool", expiry_seconds=600, cltv_expiry_delta=80
    )
    employer = LndWallet.from_connection_file(_connection(pool), "employer")
    try:
        sent = await employer.send_payment(invoice.payment_request)
    finally:
        await employer.close()
    assert sent.status is PaymentStatus.IN_FLIGHT

    await _until_state(escrow_2, payment_hash, InvoiceState.ACCEPTED)
    await escrow_2.settle_invoice(preimage)
    settled = await _until_state(escrow_2, payment_hash, InvoiceState.SETTLED)

    assert settled.amount_paid_msat == AMOUNT_MSAT


async def _until_state(backend: LndBackend, payment_hash: bytes, state: InvoiceState) -> object:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            status = await backend.lookup_invoice(payment_hash)
            if status.state is state:
                return status
            await asyncio.sleep(0.2)


async def test_a_stopped_escrow_node_is_unreachable_until_started_again(pool: Path) -> None:
    stopped = devnet_cli("stop-node", "escrow-2", "--data-dir", str(pool))
    assert stopped.returncode == 0, stopped.stderr
    try:
        gone = LndBackend.from_connection_file(_connection(pool), node="escrow-2")
        try:
            with pytest.raises(NodeUnreachable):
                await gone.capacity()
        finally:
            await gone.close()
        other = LndBackend.from_connection_file(_connection(pool), node="escrow")
        try:
            assert (await other.capacity()).inbound_msat > 0  # the other node carries on
        finally:
            await other.close()
    finally:
        started = devnet_cli("start-node", "escrow-2", "--data-dir", str(pool))
    assert started.returncode == 0, started.stderr

    back = LndBackend.from_connection_file(_connection(pool), node="escrow-2")
    try:
        capacity = await back.capacity()
    finally:
        await back.close()
    assert capacity.inbound_msat > 5_000_000_000 and capacity.outbound_msat > 5_000_000_000
    peers = await _channel_peers(pool, "escrow-2")
    assert {_pubkey(pool, "employer"), _pubkey(pool, "worker")} <= peers


@pytest.mark.parametrize(
    ("flag", "field"), [("--inbound-sat", "inbound_msat"), ("--outbound-sat", "outbound_msat")]
)
async def test_add_liquidity_opens_one_channel_worth_about_what_was_asked(
    pool: Path, flag: str, field: str
) -> None:
    amount_sat = 2_000_000
    before = await _capacity(pool, "escrow-2")

    added = devnet_cli(
        "add-liquidity", "--node", "escrow-2", flag, str(amount_sat), "--data-dir", str(pool)
    )

    assert added.returncode == 0, added.stderr
    lines = added.stdout.strip().splitlines()
    assert len(lines) == 1
    opened = json.loads(lines[0])
    assert opened["node"] == "escrow-2" and opened["capacity_sat"] == amount_sat
    txid, _, index = opened["channel_point"].partition(":")
    assert len(bytes.fromhex(txid)) == 32 and index.isdigit()
    after = await _capacity(pool, "escrow-2")
    gained = getattr(after, field) - getattr(before, field)
    # The opener pays the commitment fee and anchors; both sides keep a 1% reserve.
    assert 0.95 * amount_sat * 1000 <= gained <= amount_sat * 1000


async def _capacity(data_dir: Path, node: str) -> object:
    backend = LndBackend.from_connection_file(_connection(data_dir), node=node)
    try:
        return await backend.capacity()
    finally:
        await backend.close()


def test_add_liquidity_for_a_node_that_is_not_an_escrow_is_refused(pool: Path) -> None:
    refused = devnet_cli(
        "add-liquidity", "--node", "worker", "--inbound-sat", "100000", "--data-dir", str(pool)
    )

    assert refused.returncode == 1
    assert "add-liquidity is for the escrow nodes (escrow, escrow-2)" in " ".join(
        refused.stderr.split()
    )
    assert refused.stdout == ""


def test_a_larger_count_grows_a_running_devnet_and_down_stops_every_node(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """On a private devnet (this one ends with ``down``): one escrow node, then two."""
    data_dir = tmp_path_factory.mktemp("grown")
    try:
        single = private_devnet_up(data_dir)
        assert single.returncode == 0, single.stderr[-3000:]
        state = Layout(data_dir).load_state()
        assert state is not None
        base_port = state.base_port
        before = json.loads(_connection(data_dir).read_text())
        assert before["escrow_nodes"] == ["escrow"]

        grown = devnet_cli("up", "--data-dir", str(data_dir), "--escrow-nodes", "2")

        assert grown.returncode == 0, grown.stderr[-3000:]
        assert "devnet already running" in grown.stderr  # not rebuilt
        after = json.loads(_connection(data_dir).read_text())
        assert after["escrow_nodes"] == ["escrow", "escrow-2"]
        for node in before["nodes"]:
            assert after["nodes"][node] == before["nodes"][node]  # same wallets, same ports
        baked = Layout(data_dir).node("escrow-2").escrow_macaroon_path  # baked for the new node
        assert after["nodes"]["escrow-2"]["macaroon_path"] == str(baked) and baked.exists()
        peers = asyncio.run(_channel_peers(data_dir, "escrow-2"))
        assert {_pubkey(data_dir, "employer"), _pubkey(data_dir, "worker")} <= peers

        shrunk = devnet_cli("up", "--data-dir", str(data_dir), "--escrow-nodes", "1")
        assert shrunk.returncode == 1
        assert "cannot drop any" in " ".join(shrunk.stderr.split())

        layout = Layout(data_dir, base_port, 2)
        pids = [int(layout.pid_path(name).read_text().split()[0]) for name in layout.node_names]
    finally:
        stopped = devnet_cli("down", "--data-dir", str(data_dir))

    assert stopped.returncode == 0
    assert "escrow-2" in stopped.stderr
    assert not any(_running(pid) for pid in pids)
    assert ports_free(base_port, 2) == []


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
