"""The devnet's swap side: the ``swap`` lnd node, the swap server process, and the swap server's
chain (:class:`BtcdSwapChain`) on the real btcd and lnd wallet.

What the swap server does with them (swaps end to end) is tested elsewhere; here: the swap node
can pay the escrow and be paid by it, the server answers where ``devnet.json`` says and comes back
after a crash or a ``down``/``up``, and outputs, spends and broadcasts are found as the protocol
promises.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from support.devnet_network import DevnetHandle, get_devnet

from taskhold.devnet import control, processes
from taskhold.devnet.binaries import find_bin_dir
from taskhold.devnet.btcd import BtcdRpc
from taskhold.devnet.layout import SWAP_SERVER, Layout, ports_free
from taskhold.devnet.swap_server.btcd_chain import BtcdSwapChain
from taskhold.devnet.swap_server.chain import ChainRefused
from taskhold.lightning.base import PaymentStatus
from taskhold.lightning.lnd_rest import LndRest
from taskhold.swaps.tree import Network, decode_segwit_address

pytestmark = pytest.mark.devnet

AMOUNT_SAT = 54_321


@pytest.fixture
async def chain(devnet: DevnetHandle) -> AsyncIterator[BtcdSwapChain]:
    swap_chain = devnet.swap_chain()
    yield swap_chain
    await swap_chain.aclose()


def _layout(data_dir: Path) -> Layout:
    state = Layout(data_dir).load_state()
    assert state is not None
    return Layout(data_dir, state.base_port)


def _btcd(devnet: DevnetHandle) -> BtcdRpc:
    layout = _layout(devnet.data_dir)
    state = layout.load_state()
    assert state is not None
    return BtcdRpc(layout, state)


def _script_pubkey(address: str) -> bytes:
    version, program = decode_segwit_address(Network.REGTEST, address)
    return bytes([0x50 + version if version else 0, len(program)]) + program


async def _server_height(url: str) -> int:
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.get(f"{url}/chain/BTC/height")
    assert response.status_code == 200
    height = response.json()
    if isinstance(height, dict):  # Boltz answers a bare number; {"height": N} is tolerated
        height = height.get("height")
    assert isinstance(height, int)
    return height


# -- the swap node ---------------------------------------------------------------------------


@pytest.mark.parametrize(("payer", "payee"), [("swap", "escrow"), ("escrow", "swap")])
async def test_the_swap_node_and_the_escrow_pay_each_other_directly(
    devnet: DevnetHandle, payer: str, payee: str
) -> None:
    paying = devnet.backend(payer)
    paid = devnet.wallet(payee)
    try:
        invoice = await paid.create_invoice(2_000_000, memo=f"{payer} -> {payee}")
        result = await paying.pay_invoice(
            invoice.payment_request, max_fee_msat=0, timeout_seconds=30, cltv_limit=2016
        )
    finally:
        await paying.close()
        await paid.close()

    assert result.status is PaymentStatus.SUCCEEDED
    assert result.fee_msat == 0  # one hop: their own channel, no one in between


async def test_the_swap_node_has_one_channel_to_the_escrow_with_liquidity_both_ways(
    devnet: DevnetHandle,
) -> None:
    report = await control.status(devnet.data_dir)
    swap = report["nodes"]["swap"]

    assert swap["active_channels"] == 1
    # 10,000,000 sat, half pushed to the escrow: both sides can pay several swaps' worth.
    assert swap["local_balance_msat"] > 3_000_000_000
    assert swap["remote_balance_msat"] > 3_000_000_000


# -- the swap server process -----------------------------------------------------------------


async def test_the_swap_server_answers_at_the_url_in_the_connection_file(
    devnet: DevnetHandle,
) -> None:
    document = json.loads(devnet.connection_file.read_text())
    url = document["swap_server"]["url"]

    assert url.startswith("http://127.0.0.1:") and url.endswith("/v2")
    assert document["swap_server"]["ws_url"] == "ws" + url.removeprefix("http") + "/ws"
    assert await _server_height(url) == await _btcd(devnet).block_count()
    report = await control.status(devnet.data_dir)
    assert report["processes"][SWAP_SERVER]["alive"]
    assert report["swap_server"] == {"url": url, "block_height": await _server_height(url)}


async def test_up_restarts_a_dead_swap_server_and_keeps_the_network(
    devnet: DevnetHandle,
) -> None:
    layout = _layout(devnet.data_dir)
    btcd_pid = layout.pid_path("btcd").read_text()
    server_pid = int(layout.pid_path(SWAP_SERVER).read_text().split()[0])
    os.kill(server_pid, signal.SIGKILL)  # a crash
    for _ in range(100):  # SIGKILL is not instant
        if processes.alive_pid(layout.pid_path(SWAP_SERVER)) is None:
            break
        await asyncio.sleep(0.1)
    assert not (await control.status(devnet.data_dir))["running"]
    steps: list[str] = []

    await control.up(devnet.data_dir, bin_dir=find_bin_dir(), progress=steps.append)

    assert steps[0] == "devnet already running"
    assert any("starting the swap server" in step for step in steps)
    assert layout.pid_path("btcd").read_text() == btcd_pid  # the chain was not rebuilt
    assert int(layout.pid_path(SWAP_SERVER).read_text().split()[0]) != server_pid
    assert await _server_height(devnet.swap_server_url) == await _btcd(devnet).block_count()
    assert (await control.status(devnet.data_dir))["running"]


@pytest.mark.slow
def test_down_then_up_on_the_same_data_dir_brings_back_the_swap_node_and_server(
    tmp_path: Path,
) -> None:
    get_devnet()  # binaries present (else skipped), and a base port distinct from the shared one
    data_dir = tmp_path / "net"
    base_port = next(port for port in range(29100, 31000, 100) if not ports_free(port))
    cli = [sys.executable, "-m", "taskhold.devnet.cli"]
    try:
        up = [*cli, "up", "--data-dir", str(data_dir), "--base-port", str(base_port)]
        subprocess.run(up, check=True)
        subprocess.run([*cli, "down", "--data-dir", str(data_dir)], check=True)
        assert not (data_dir / "devnet.json").exists()

        subprocess.run([*cli, "up", "--data-dir", str(data_dir)], check=True)

        report = asyncio.run(control.status(data_dir))
        assert report["running"]
        assert report["nodes"]["swap"]["active_channels"] == 1
        url = json.loads((data_dir / "devnet.json").read_text())["swap_server"]["url"]
        assert url == f"http://127.0.0.1:{base_port + 5}/v2"
        assert asyncio.run(_server_height(url)) == report["block_height"]
    finally:
        subprocess.run([*cli, "down", "--data-dir", str(data_dir)], check=True)
    assert ports_free(base_port) == []


# -- the swap server's chain -----------------------------------------------------------------


async def test_a_payment_from_the_server_wallet_is_found_in_the_mempool_then_in_a_block(
    devnet: DevnetHandle, chain: BtcdSwapChain
) -> None:
    address = await chain.new_address()
    script = _script_pubkey(address)
    since = await chain.height()
    assert await chain.find_output(script, since_height=since) is None

    txid = await chain.send_to_address(address, AMOUNT_SAT)

    in_mempool = await chain.find_output(script, since_height=since)
    assert in_mempool is not None
    assert (in_mempool.txid, in_mempool.amount_sat, in_mempool.confirmations) == (
        txid,
        AMOUNT_SAT,
        0,
    )
    await devnet.mine(1)
    mined = await chain.find_output(script, since_height=since)
    assert mined is not None
    assert (mined.txid, mined.vout, mined.confirmations) == (txid, in_mempool.vout, 1)
    assert mined.tx_hex == in_mempool.tx_hex
    assert await chain.height() == since + 1
    # Below since_height and no longer in the mempool: not found.
    assert await chain.find_output(script, since_height=since + 2) is None


async def test_the_spend_of_an_output_is_found_and_an_unspent_one_has_none(
    devnet: DevnetHandle, chain: BtcdSwapChain
) -> None:
    since = await chain.height()
    txid = await chain.send_to_address(await chain.new_address(), AMOUNT_SAT)
    sent = await _btcd(devnet).call("getrawtransaction", txid, 1)
    spent = sent["vin"][0]

    found = await chain.find_spend(spent["txid"], spent["vout"], since_height=since)

    assert found == sent["hex"]  # in the mempool
    assert await chain.find_spend(txid, 0, since_height=since) is None
    await devnet.mine(1)
    assert await chain.find_spend(spent["txid"], spent["vout"], since_height=since) == sent["hex"]
    assert await chain.find_spend(spent["txid"], spent["vout"], since_height=since + 2) is None


async def test_broadcast_sends_a_signed_transaction_and_refuses_garbage_and_a_double_spend(
    devnet: DevnetHandle, chain: BtcdSwapChain
) -> None:
    first = await _signed_unpublished_tx(devnet, "worker")
    txid = await chain.broadcast(first)
    since = await chain.height()
    found = await chain.find_spend(*(await _first_input(devnet, txid)), since_height=since)
    assert found == first

    with pytest.raises(ChainRefused) as garbage:
        await chain.broadcast("00")
    assert "decode" in str(garbage.value).lower()
    with pytest.raises(ChainRefused):
        await chain.broadcast(first)  # already in the mempool


async def _first_input(devnet: DevnetHandle, txid: str) -> tuple[str, int]:
    spent = (await _btcd(devnet).call("getrawtransaction", txid, 1))["vin"][0]
    return str(spent["txid"]), int(spent["vout"])


async def _signed_unpublished_tx(devnet: DevnetHandle, node_name: str) -> str:
    """A transaction ``node_name``'s lnd funds and signs without publishing (PSBT fund+finalize)."""
    node = _layout(devnet.data_dir).node(node_name)
    wallet = LndRest(node.rest_url, node.tls_cert_path, node.macaroon_path)
    try:
        address = await wallet.call("GET", "/v1/newaddress", params={"type": "TAPROOT_PUBKEY"})
        funded = await wallet.call(
            "POST",
            "/v2/wallet/psbt/fund",
            body={"raw": {"outputs": {address["address"]: str(AMOUNT_SAT)}}, "sat_per_vbyte": "2"},
        )
        final = await wallet.call(
            "POST", "/v2/wallet/psbt/finalize", body={"funded_psbt": funded["funded_psbt"]}
        )
    finally:
        await wallet.aclose()
    return base64.b64decode(final["raw_final_tx"]).hex()
