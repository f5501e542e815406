"""The bitcoind shim in front of the devnet's real btcd, called as LDK Node calls it.

Every call goes through one keep-alive socket with no ``"jsonrpc"`` and a string id; the client
asserts a reason phrase and ``Content-Length`` on every reply. What LDK checks is checked here:
the header re-hashes to its hash, chainwork is 64 hex digits and grows by 2 per regtest block, a
raw block hashes to the hash asked for, and a mempool transaction has an entry.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.devnet_network import DevnetHandle
from support.fake_btcd import REGTEST_GENESIS_HASH, LdkStyleClient, rehash_json_header

from taskhold.devnet.bitcoind_shim import BitcoindShim, block_hash
from taskhold.devnet.layout import HOST, Layout

pytestmark = pytest.mark.devnet

USER, PASSWORD = "ldk", "shim-devnet-pw"


@pytest.fixture
def shim_client(devnet: DevnetHandle) -> Iterator[LdkStyleClient]:
    state = Layout(devnet.data_dir).load_state()
    assert state is not None
    layout = Layout(devnet.data_dir, state.base_port)
    with (
        BitcoindShim(
            btcd_host=HOST,
            btcd_port=layout.btcd_rpc_port,
            btcd_cafile=layout.btcd_rpc_cert,
            btcd_user=state.rpc_user,
            btcd_password=state.rpc_pass,
            user=USER,
            password=PASSWORD,
        ) as shim,
        LdkStyleClient(shim.port, USER, PASSWORD) as client,
    ):
        yield client


def _assert_ldk_accepts(header: dict[str, object], asked: str) -> None:
    assert rehash_json_header(header) == asked
    chainwork = header["chainwork"]
    assert isinstance(chainwork, str) and len(chainwork) == 64
    assert int(chainwork, 16) == 2 * (int(str(header["height"])) + 1)


async def test_ldk_calls_through_the_shim_get_what_ldk_checks(
    devnet: DevnetHandle, shim_client: LdkStyleClient
) -> None:
    ldk = shim_client
    info = ldk.result("getblockchaininfo")
    tip, height = info["bestblockhash"], info["blocks"]
    assert len(tip) == 64 and height > 100

    tip_header = ldk.result("getblockheader", [tip])
    _assert_ldk_accepts(tip_header, tip)
    assert tip_header["height"] == height
    parent = ldk.result("getblockheader", [tip_header["previousblockhash"]])
    _assert_ldk_accepts(parent, tip_header["previousblockhash"])
    assert int(tip_header["chainwork"], 16) - int(parent["chainwork"], 16) == 2

    genesis = ldk.result("getblockheader", [REGTEST_GENESIS_HASH])
    _assert_ldk_accepts(genesis, REGTEST_GENESIS_HASH)
    assert genesis["chainwork"] == f"{2:064x}"

    raw_block = bytes.fromhex(ldk.result("getblock", [tip, 0]))
    assert block_hash(raw_block[:80]) == tip
    assert ldk.result("getblock", [tip, False]) == raw_block.hex()
    assert ldk.result("getblockhash", [height]) == tip
    unknown = ldk.call("getblockheader", ["ee" * 32])
    assert unknown.body["error"]["code"] == -5

    fee = ldk.result("estimatesmartfee", [6, "ECONOMICAL"])
    assert fee == {"feerate": 0.00002, "blocks": 6}
    pool = ldk.result("getmempoolinfo")
    assert pool["mempoolminfee"] == 0.00001 and isinstance(pool["size"], int)

    employer, worker = devnet.wallet("employer"), devnet.wallet("worker")
    try:
        txid = await employer.send_to_address(await worker.new_address(), 25_000)
    finally:
        await employer.close()
        await worker.close()
    try:
        assert txid in ldk.result("getrawmempool", [False])
        entry = ldk.result("getmempoolentry", [txid])
        assert entry["height"] == height and entry["time"] > 1_600_000_000
        assert entry["vsize"] > 0
        raw_tx = ldk.result("getrawtransaction", [txid])
        assert isinstance(raw_tx, str) and bytes.fromhex(raw_tx)
        assert ldk.result("getrawtransaction", [txid, True])["txid"] == txid
        absent = ldk.call("getmempoolentry", ["ef" * 32])
        assert absent.body["error"] == {"code": -5, "message": "Transaction not in mempool"}

        again = ldk.call("sendrawtransaction", [raw_tx])
        error = again.body["error"]
        assert again.body["result"] is None and isinstance(error["code"], int), again.body
        # btcd: -26 "already have transaction in mempool" (Core would return the txid); LDK logs it
        assert error["code"] in (-25, -26, -27), error
        assert ldk.result("getblockchaininfo")["bestblockhash"] == tip  # the socket lives on
        assert ldk.connections == 1
    finally:
        await devnet.mine(1)
    assert txid not in ldk.result("getrawmempool", [False])


async def test_a_walk_back_through_the_shim_matches_btcds_own_headers(
    devnet: DevnetHandle, shim_client: LdkStyleClient
) -> None:
    """The headers the shim fetches ahead (``getheaders``) answer as btcd itself would."""
    ldk = shim_client
    cursor = ldk.result("getblockchaininfo")["bestblockhash"]
    walked = []
    for _ in range(60):
        header = ldk.result("getblockheader", [cursor])
        _assert_ldk_accepts(header, cursor)
        walked.append(header)
        cursor = header["previousblockhash"]
    btcd = devnet.btcd()
    for header in walked[1::7]:  # the tip came from btcd; the rest from the fetch ahead
        own = await btcd.call("getblockheader", header["hash"], True)
        for field in ("height", "version", "merkleroot", "time", "nonce", "previousblockhash"):
            assert header[field] == own[field], field
        assert int(header["bits"], 16) == int(own["bits"], 16)
        assert header["confirmations"] >= 1
