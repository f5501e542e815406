"""The bitcoind shim against a fake btcd that frames its replies as btcd does.

Requests are sent the way LDK Node sends them (no ``jsonrpc``, string id, keep-alive); every
reply must carry a reason phrase and ``Content-Length`` (the client asserts both).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.fake_btcd import (
    GENESIS_MERKLE,
    REGTEST_GENESIS_HASH,
    FakeBtcd,
    LdkStyleClient,
    header_bytes,
    rehash_json_header,
    wait_until,
)

from taskhold.devnet import bitcoind_shim
from taskhold.devnet.bitcoind_shim import (
    MAX_UPSTREAM_CALLS,
    BitcoindShim,
    block_hash,
    header_work,
)
from taskhold.devnet.layout import Layout, ports_free

from .conftest import SHIM_PASS, SHIM_USER

REGTEST_BITS = 0x207FFFFF
GENESIS = header_bytes(1, "0" * 64, GENESIS_MERKLE, 1296688602, REGTEST_BITS, 2)


def _regtest_chain(fake: FakeBtcd, blocks: int) -> list[str]:
    """Genesis and ``blocks`` regtest blocks on top; their hashes by height."""
    hashes = [fake.chain.add(GENESIS)]
    for height in range(1, blocks + 1):
        raw = header_bytes(
            0x20000000, hashes[-1], f"{height:064x}", 1296688602 + height, REGTEST_BITS, height
        )
        hashes.append(fake.chain.add(raw))
    return hashes


def _error(reply_body: dict[str, object]) -> dict[str, object]:
    error = reply_body["error"]
    assert isinstance(error, dict), reply_body
    assert reply_body["result"] is None
    return error


# -- golden header ---------------------------------------------------------------------------


def test_regtest_genesis_hashes_to_its_known_hash_with_work_two() -> None:
    assert block_hash(GENESIS) == REGTEST_GENESIS_HASH
    assert header_work(REGTEST_BITS) == 2
    assert f"{2:064x}" == "0" * 63 + "2"


def test_genesis_through_the_shim_rehashes_and_has_chainwork_two(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    _regtest_chain(fake, 0)
    header = client.result("getblockheader", [REGTEST_GENESIS_HASH])
    assert header["height"] == 0
    assert header["chainwork"] == f"{2:064x}"
    assert rehash_json_header(header) == REGTEST_GENESIS_HASH


# -- transport -------------------------------------------------------------------------------


def test_the_fake_is_silent_without_jsonrpc_as_btcd_is(
    fake: FakeBtcd, fake_cert: tuple[Path, Path]
) -> None:
    """Why the shim exists: an LDK-shaped request straight to btcd gets an empty body."""
    _regtest_chain(fake, 0)
    context = ssl.create_default_context(cafile=str(fake_cert[0]))
    body = json.dumps({"method": "getblockchaininfo", "params": [], "id": "1"}).encode()
    auth = base64.b64encode(f"{fake.user}:{fake.password}".encode()).decode()
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
        + auth.encode()
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    raw = socket.create_connection(("127.0.0.1", fake.port))
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(request)
        reply = b""
        while chunk := tls.recv(4096):
            reply += chunk
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert b"content-length" not in head.lower()
    assert b"connection: close" in head.lower()
    assert rest.strip() == b""


def test_two_ldk_requests_on_one_socket_get_framed_replies(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    hashes = _regtest_chain(fake, 3)
    first = client.call("getblockchaininfo")
    second = client.call("getblockhash", [2])
    assert client.connections == 1
    assert first.status == 200 and first.reason == "OK"
    assert first.body["id"] == "1" and second.body["id"] == "2"
    assert first.body["result"]["bestblockhash"] == hashes[3]
    assert first.body["result"]["chainwork"] == f"{8:064x}"
    assert second.body["result"] == hashes[2]
    upstream = fake.requests
    assert all(r["jsonrpc"] == "1.0" and isinstance(r["id"], int) for r in upstream)


def test_a_null_result_is_sent_as_null(fake: FakeBtcd, client: LdkStyleClient) -> None:
    reply = client.call("gettxout", ["cd" * 32, 0, False])
    assert reply.body == {"result": None, "error": None, "id": "1"}


def test_an_unknown_method_passes_through_with_btcds_error(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    reply = client.call("getzmqnotifications")
    assert _error(reply.body)["code"] == -32601
    assert fake.calls("getzmqnotifications") == [[]]


# -- getblockheader --------------------------------------------------------------------------


def test_block_headers_rehash_and_chainwork_grows_by_two_per_block(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    hashes = _regtest_chain(fake, 5)
    headers = [client.result("getblockheader", [h]) for h in hashes]
    for height, (block, header) in enumerate(zip(hashes, headers, strict=True)):
        assert rehash_json_header(header) == block
        assert header["height"] == height
        assert len(header["chainwork"]) == 64
        assert int(header["chainwork"], 16) == 2 * (height + 1)
    for parent, child in itertools.pairwise(headers):
        assert child["previousblockhash"] == parent["hash"]
        assert int(child["chainwork"], 16) == int(parent["chainwork"], 16) + header_work(
            REGTEST_BITS
        )


def test_short_bits_are_padded_and_chainwork_summed_over_the_headers(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    """btcd writes ``bits`` unpadded; for bits other than regtest's the work is summed."""
    bits = 0x0C7FFFFF
    first = fake.chain.add(header_bytes(1, "0" * 64, "11" * 32, 1000, bits, 7))
    second = fake.chain.add(header_bytes(1, first, "22" * 32, 1001, bits, 8))
    header = client.result("getblockheader", [second])
    assert header["bits"] == "0c7fffff"
    assert rehash_json_header(header) == second
    work = (1 << 256) // ((0x7FFFFF << (8 * (0x0C - 3))) + 1)
    assert int(header["chainwork"], 16) == 2 * work
    assert len(header["chainwork"]) == 64


def test_a_block_off_the_main_chain_gets_height_and_chainwork_from_its_raw_header(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    hashes = _regtest_chain(fake, 3)
    side_one = fake.chain.add(
        header_bytes(0x20000000, hashes[2], "aa" * 32, 1300000000, REGTEST_BITS, 11), main=False
    )
    side_two = fake.chain.add(
        header_bytes(0x20000000, side_one, "bb" * 32, 1300000001, REGTEST_BITS, 12), main=False
    )
    header = client.result("getblockheader", [side_two])
    assert header["height"] == 4
    assert int(header["chainwork"], 16) == 2 * (4 + 1)
    assert header["confirmations"] == -1
    assert header["previousblockhash"] == side_one
    assert rehash_json_header(header) == side_two
    parent = client.result("getblockheader", [side_one])
    assert parent["height"] == 3 and int(parent["chainwork"], 16) == 8
    verbose_asks = [p for p in fake.calls("getblockheader") if p[1] is True]
    again = client.result("getblockheader", [side_two])
    assert again == header
    later_verbose = [p for p in fake.calls("getblockheader") if p[1] is True]
    assert len(later_verbose) == len(verbose_asks) + 1  # only the block itself, no walk


_LDK_READS = (
    "hash", "height", "version", "previousblockhash", "merkleroot", "time", "bits", "nonce",
    "chainwork",
)  # fmt: skip


def _walk_back(client: LdkStyleClient, tip: str, steps: int) -> list[dict[str, object]]:
    """What a node does after missed blocks: ask for the tip's header, then each parent's."""
    headers, cursor = [], tip
    for _ in range(steps):
        header = client.result("getblockheader", [cursor])
        headers.append(header)
        cursor = header["previousblockhash"]
    return headers


def _verbose_header_asks(fake: FakeBtcd) -> int:
    return len([p for p in fake.calls("getblockheader") if p[1] is True])


def test_a_walk_back_from_the_tip_takes_one_header_call_and_one_getheaders(
    fake: FakeBtcd, client: LdkStyleClient, shim: BitcoindShim, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = _regtest_chain(fake, 30)
    walked = _walk_back(client, hashes[-1], 30)
    assert _verbose_header_asks(fake) == 1
    assert len(fake.calls("getheaders")) == 1
    for height, header in zip(range(30, 0, -1), walked, strict=True):
        assert header["height"] == height and rehash_json_header(header) == hashes[height]
    assert walked[20]["confirmations"] == 21  # block 10, counted from the tip at 30

    monkeypatch.setattr(bitcoind_shim, "HEADER_PREFETCH", 0)  # as before: one call a header
    shim.stop()
    with BitcoindShim(
        btcd_host="127.0.0.1", btcd_port=fake.port, btcd_cafile=shim._btcd_cafile,
        btcd_user=fake.user, btcd_password=fake.password, user=SHIM_USER, password=SHIM_PASS,
    ) as plain, LdkStyleClient(plain.port, SHIM_USER, SHIM_PASS) as ldk:  # fmt: skip
        direct = _walk_back(ldk, hashes[-1], 30)
    assert _verbose_header_asks(fake) == 1 + 30
    for kept, asked in zip(walked, direct, strict=True):
        assert {k: kept[k] for k in _LDK_READS} == {k: asked[k] for k in _LDK_READS}


def test_fetched_headers_that_do_not_link_up_are_not_kept(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    """A reorg between the two calls, or a wrong answer, must not become a wrong chain."""
    hashes = _regtest_chain(fake, 10)
    fake.handlers["getheaders"] = lambda params: [
        fake.chain.blocks[h].raw.hex() for h in hashes[1:5] + hashes[6:10]
    ]
    walked = _walk_back(client, hashes[-1], 10)
    assert [header["hash"] for header in walked] == hashes[10:0:-1]
    assert _verbose_header_asks(fake) == 10


def test_an_unknown_block_header_keeps_btcds_not_found(client: LdkStyleClient) -> None:
    reply = client.call("getblockheader", ["ee" * 32])
    assert _error(reply.body)["code"] == -5


def test_a_non_verbose_header_passes_through(fake: FakeBtcd, client: LdkStyleClient) -> None:
    hashes = _regtest_chain(fake, 1)
    assert (
        client.result("getblockheader", [hashes[1], False])
        == fake.chain.blocks[hashes[1]].raw.hex()
    )


# -- blocks and transactions -----------------------------------------------------------------


def test_bool_verbosity_is_sent_to_btcd_as_an_integer(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    hashes = _regtest_chain(fake, 1)
    fake.mempool["cd" * 32] = {"size": 1}
    assert client.result("getblock", [hashes[1], False]).startswith(
        fake.chain.blocks[hashes[1]].raw.hex()
    )
    assert client.result("getblock", [hashes[1], True])["height"] == 1
    assert client.result("getrawtransaction", ["cd" * 32, False, hashes[1]]) == "0200" + "cd" * 32
    assert fake.calls("getblock") == [[hashes[1], 0], [hashes[1], 1]]
    assert fake.calls("getrawtransaction") == [["cd" * 32, 0]]


def test_verbosity_two_names_the_transactions_tx(fake: FakeBtcd, client: LdkStyleClient) -> None:
    hashes = _regtest_chain(fake, 1)
    block = client.result("getblock", [hashes[1], 2])
    assert "rawtx" not in block and block["tx"] == [{"txid": "aa" * 32}]


def test_a_transaction_not_found_keeps_minus_five(client: LdkStyleClient) -> None:
    assert _error(client.call("getrawtransaction", ["cd" * 32]).body)["code"] == -5


def test_sendrawtransaction_forwards_only_the_hex(fake: FakeBtcd, client: LdkStyleClient) -> None:
    assert client.result("sendrawtransaction", ["0200beef", 0.1, 0]) == "ab" * 32
    assert fake.calls("sendrawtransaction") == [["0200beef"]]


def test_a_raw_block_asked_again_is_served_without_asking_btcd(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    """A node catching up asks for the same block several times; its bytes never change."""
    hashes = _regtest_chain(fake, 2)
    first = client.result("getblock", [hashes[1], 0])
    assert client.result("getblock", [hashes[1], 0]) == first
    assert client.result("getblock", [hashes[2], 0]) != first
    assert client.result("getblock", [hashes[1], 1])["height"] == 1  # verbose: not cached
    assert fake.calls("getblock") == [[hashes[1], 0], [hashes[2], 0], [hashes[1], 1]]


def test_an_unknown_raw_block_is_not_remembered(fake: FakeBtcd, client: LdkStyleClient) -> None:
    missing = "ab" * 32
    assert _error(client.call("getblock", [missing, 0]).body)["code"] == -5
    assert _error(client.call("getblock", [missing, 0]).body)["code"] == -5
    assert len(fake.calls("getblock")) == 2


def test_later_connections_resume_the_tls_session(fake: FakeBtcd, client: LdkStyleClient) -> None:
    """btcd closes after each reply; a resumed session skips its certificate's signature."""
    _regtest_chain(fake, 0)
    for _ in range(3):
        client.result("getblockchaininfo")
    assert fake.resumed[0] is False
    assert any(fake.resumed[1:]), fake.resumed


def test_a_busy_btcd_is_asked_again_for_a_read(fake: FakeBtcd, client: LdkStyleClient) -> None:
    """A failed call in LDK Node's catch-up costs it an exponential back-off."""
    _regtest_chain(fake, 0)
    fake.busy_replies = 2
    assert client.result("getblockchaininfo")["chain"] == "regtest"
    assert len(fake.calls("getblockchaininfo")) == 3


def test_a_transaction_is_never_sent_twice(fake: FakeBtcd, client: LdkStyleClient) -> None:
    fake.busy_replies = 1
    assert _error(client.call("sendrawtransaction", ["0200beef"]).body)["code"] == -28
    assert fake.calls("sendrawtransaction") == [["0200beef"]]


# -- mempool and fees ------------------------------------------------------------------------


def _entry(time_: int, height: int) -> dict[str, object]:
    return {
        "size": 222, "vsize": 141, "weight": 561, "fee": 0.00000282, "time": time_,
        "height": height, "startingpriority": 0, "currentpriority": 0, "depends": [],
    }  # fmt: skip


def test_getmempoolentry_is_built_from_the_verbose_mempool(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    fake.mempool["cd" * 32] = _entry(1700000000, 101)
    entry = client.result("getmempoolentry", ["cd" * 32])
    assert entry["time"] == 1700000000 and entry["height"] == 101
    assert entry["vsize"] == 141 and entry["weight"] == 561
    assert entry["fees"]["base"] == 0.00000282
    missing = client.call("getmempoolentry", ["ef" * 32])
    assert _error(missing.body) == {"code": -5, "message": "Transaction not in mempool"}
    assert fake.calls("getmempoolentry") == []


def test_a_transaction_newer_than_the_cached_mempool_is_still_found(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    fake.mempool["cd" * 32] = _entry(1700000000, 101)
    client.result("getmempoolentry", ["cd" * 32])
    fake.mempool["ef" * 32] = _entry(1700000005, 101)
    assert client.result("getmempoolentry", ["ef" * 32])["time"] == 1700000005
    client.result("getmempoolentry", ["cd" * 32])
    assert len(fake.calls("getrawmempool")) == 2  # the hit came from the cache


def test_estimatesmartfee_is_a_constant_without_errors(
    fake: FakeBtcd, client: LdkStyleClient
) -> None:
    for target, mode in ((6, "ECONOMICAL"), (1, "CONSERVATIVE"), (1008, "ECONOMICAL")):
        answer = client.result("estimatesmartfee", [target, mode])
        assert answer == {"feerate": 0.00002, "blocks": target}
    assert _error(client.call("estimatesmartfee", ["six"]).body)["code"] == -32602


def test_getmempoolinfo_gains_the_fee_floor(fake: FakeBtcd, client: LdkStyleClient) -> None:
    fake.mempool["cd" * 32] = _entry(1700000000, 101)
    info = client.result("getmempoolinfo")
    assert info["size"] == 1 and info["bytes"] == 250
    assert info["mempoolminfee"] == 0.00001 and info["minrelaytxfee"] == 0.00001
    assert info["loaded"] is True


def test_getnetworkinfo_claims_a_version_below_package_relay(client: LdkStyleClient) -> None:
    info = client.result("getnetworkinfo")
    assert info["version"] == 270000 and info["relayfee"] == 0.00001


# -- hostile downstream ----------------------------------------------------------------------


def test_a_wrong_or_missing_login_gets_401_with_a_json_body(
    fake: FakeBtcd, shim: BitcoindShim
) -> None:
    body = json.dumps({"method": "getblockchaininfo", "params": [], "id": "9"}).encode()
    with LdkStyleClient(shim.port, SHIM_USER, "wrong") as wrong:
        reply = wrong.send_raw(body)
        assert reply.status == 401 and reply.reason == "Unauthorized"
        assert _error(reply.body)["code"] == -1
        assert reply.headers["www-authenticate"].startswith("Basic")
        assert wrong.send_raw(body, auth="").status == 401
        assert wrong.connections == 1  # the socket stays usable
    assert fake.requests == []


def test_malformed_requests_get_json_rpc_errors(fake: FakeBtcd, client: LdkStyleClient) -> None:
    parse = client.send_raw(b"{not json")
    assert parse.status == 400 and _error(parse.body)["code"] == -32700
    no_method = client.send_raw(b'{"params": [], "id": "3"}')
    assert _error(no_method.body)["code"] == -32600 and no_method.body["id"] == "3"
    batch = client.send_raw(b"[]")
    assert _error(batch.body)["code"] == -32600
    assert client.connections == 1  # the socket survived all three
    assert fake.requests == []


def test_a_request_without_length_is_refused_and_closed(shim: BitcoindShim) -> None:
    with LdkStyleClient(shim.port, SHIM_USER, SHIM_PASS) as ldk:
        reply = ldk.send_raw(b"", headers="")
        assert reply.status == 411 and _error(reply.body)["code"] == -32600
        assert reply.headers["connection"] == "close"


def test_a_broken_request_line_or_verb_gets_a_json_error(shim: BitcoindShim) -> None:
    with LdkStyleClient(shim.port, SHIM_USER, SHIM_PASS) as ldk:
        garbage = ldk.send_bytes(b"GARBAGE\r\n\r\n")
        assert garbage.status == 400 and _error(garbage.body)["code"] == -32600
    with LdkStyleClient(shim.port, SHIM_USER, SHIM_PASS) as ldk:
        put = ldk.send_bytes(b"PUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert put.status == 501 and _error(put.body)["code"] == -32600
    with LdkStyleClient(shim.port, SHIM_USER, SHIM_PASS) as ldk:
        get = ldk.send_bytes(b"GET / HTTP/1.1\r\n\r\n")
        assert get.status == 405 and _error(get.body)["code"] == -32600


def test_a_body_over_one_megabyte_is_refused_unread(shim: BitcoindShim) -> None:
    with LdkStyleClient(shim.port, SHIM_USER, SHIM_PASS) as ldk:
        reply = ldk.send_raw(b"", headers="Content-Length: 1000001\r\n")
        assert reply.status == 413 and _error(reply.body)["code"] == -32600


def test_upstream_down_is_an_error_reply_not_a_hang(fake_cert: tuple[Path, Path]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with BitcoindShim(
        btcd_host="127.0.0.1", btcd_port=closed_port, btcd_cafile=fake_cert[0],
        btcd_user="u", btcd_password="p", user=SHIM_USER, password=SHIM_PASS,
    ) as down, LdkStyleClient(down.port, SHIM_USER, SHIM_PASS) as ldk:  # fmt: skip
        error = _error(ldk.call("getblockchaininfo").body)
        assert error["code"] == -28
        assert "btcd unreachable" in str(error["message"])
        assert ldk.result("estimatesmartfee", [6]) == {"feerate": 0.00002, "blocks": 6}


def test_a_missing_btcd_certificate_is_an_error_reply(tmp_path: Path) -> None:
    with BitcoindShim(
        btcd_host="127.0.0.1", btcd_port=1, btcd_cafile=tmp_path / "absent.cert",
        btcd_user="u", btcd_password="p", user=SHIM_USER, password=SHIM_PASS,
    ) as shim, LdkStyleClient(shim.port, SHIM_USER, SHIM_PASS) as ldk:  # fmt: skip
        assert _error(ldk.call("getrawmempool", [False]).body)["code"] == -28


def test_never_more_than_four_calls_reach_btcd_at_once(fake: FakeBtcd, shim: BitcoindShim) -> None:
    _regtest_chain(fake, 0)
    fake.gate.clear()
    callers = 2 * MAX_UPSTREAM_CALLS
    results: list[object] = []

    def ask() -> None:
        with LdkStyleClient(shim.port, SHIM_USER, SHIM_PASS) as ldk:
            results.append(ldk.result("getblockchaininfo"))

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for thread in threads:
        thread.start()
    wait_until(lambda: fake.in_flight >= MAX_UPSTREAM_CALLS)
    # Give the other callers every chance to push past the bound before the gate opens.
    stalled = threading.Event()
    stalled.wait(0.5)
    assert fake.in_flight == MAX_UPSTREAM_CALLS
    fake.gate.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == callers
    assert fake.max_in_flight == MAX_UPSTREAM_CALLS


# -- the process -----------------------------------------------------------------------------


def test_the_process_serves_and_keeps_passwords_out_of_argv_and_logs(
    fake: FakeBtcd, fake_cert: tuple[Path, Path]
) -> None:
    _regtest_chain(fake, 0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TASKHOLD_SHIM_BTCD_PASS": fake.password, "TASKHOLD_SHIM_PASS": SHIM_PASS}
    argv = [
        sys.executable, "-m", "taskhold.devnet.bitcoind_shim",
        "--btcd-rpc", f"127.0.0.1:{fake.port}", "--btcd-cert", str(fake_cert[0]),
        "--btcd-user", fake.user, "--listen", f"127.0.0.1:{port}", "--user", SHIM_USER,
    ]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_until(listening, 20)
        with LdkStyleClient(port, SHIM_USER, SHIM_PASS) as ldk:
            assert ldk.result("getblockchaininfo")["bestblockhash"] == REGTEST_GENESIS_HASH
            assert _error(ldk.call("getblockheader", ["ee" * 32]).body)["code"] == -5
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "btcd getblockheader failed: -5" in stderr  # one line per upstream error
    for secret in (
        fake.password,
        SHIM_PASS,
        base64.b64encode(f"{fake.user}:{fake.password}".encode()).decode(),
    ):
        assert secret not in stderr


def test_the_devnet_layout_reserves_base_plus_six_for_the_shim() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        layout = Layout("/nonexistent-devnet", base_port=port - 6)
        assert layout.bitcoind_shim_port == port
        assert port in ports_free(port - 6)
