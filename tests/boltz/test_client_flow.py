"""The client's pieces in the order a swap needs them: pairs, quote, create, verify, check the
stated amount, record before funds move, and the record alone rebuilds the tree after a
restart. Boltz is an in-process transport answering the published shapes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from coincurve import PrivateKey
from support import boltz_answers as answers
from support.bolt11_invoices import invoice
from support.swap_parties import BOLTZ_SK, CLIENT_SK, PAYMENT_HASH, PREIMAGE, tree_for

from taskhold.boltz.api import BoltzApi
from taskhold.boltz.errors import RecordError
from taskhold.boltz.models import ReverseRequest, ReverseResponse, SubmarineRequest
from taskhold.boltz.records import SwapRecords, reverse_record, submarine_record
from taskhold.boltz.verify import verify_reverse, verify_submarine
from taskhold.swaps.errors import SwapMismatch
from taskhold.swaps.fees import check_stated_amount, reverse_quote, submarine_quote
from taskhold.swaps.tree import Network, SwapType

SHAPES = json.loads((Path(__file__).parent / "api_shapes.json").read_text())
h = bytes.fromhex


def boltz(routes: dict[tuple[str, str], Any], sent: list[Any]) -> BoltzApi:
    def handle(request: httpx.Request) -> httpx.Response:
        key = (request.method, request.url.path.removeprefix("/v2"))
        sent.append(json.loads(request.content) if request.content else None)
        return httpx.Response(201 if request.method == "POST" else 200, json=routes[key])

    return BoltzApi("http://boltz/v2", transport=httpx.MockTransport(handle))


async def test_a_submarine_swap_is_checked_and_recorded_before_the_lockup(
    tmp_path: Path,
) -> None:
    v = answers.SUBMARINE
    hold_invoice = invoice(h(v.preimage_hash), 100_000)
    sent: list[Any] = []
    routes = {
        ("GET", "/swap/submarine"): SHAPES["examples"]["GET /swap/submarine"],
        ("POST", "/swap/submarine"): answers.submarine_response(),
    }
    our_key = PrivateKey(h(v.our_key))
    async with boltz(routes, sent) as api:
        pair = (await api.submarine_pairs())[("BTC", "BTC")]
        quote = submarine_quote(100_000, pair.percentage, pair.miner_fees)
        request = SubmarineRequest(hold_invoice, our_key.public_key.format(), pair.hash)
        created = await api.create_submarine(request)
    assert sent[1]["pairHash"] == pair.hash
    tree = verify_submarine(
        created,
        refund_pubkey=our_key.public_key.format(),
        payment_hash=h(v.preimage_hash),
        network=Network.MAINNET,
    )
    check_stated_amount(quote, created.expected_amount, "expectedAmount")
    with pytest.raises(SwapMismatch, match="expectedAmount"):
        check_stated_amount(quote, created.expected_amount + 1, "expectedAmount")
    store = SwapRecords(tmp_path)
    store.create(
        submarine_record(
            created,
            tree,
            secret_key=our_key.secret,
            invoice=hold_invoice,
            invoice_amount_sat=100_000,
            payment_hash=h(v.preimage_hash),
            task_id="t1",
            network=Network.MAINNET,
        )
    )
    (resumed,) = SwapRecords(tmp_path).open_swaps()
    assert resumed.tree().address(Network.MAINNET) == v.address == tree.address(Network.MAINNET)
    assert resumed.expected_amount_sat == quote.payer_sends == 104_479


def reverse_answer() -> dict[str, Any]:
    tree = tree_for(SwapType.REVERSE)
    return {
        "id": "rev2",
        "invoice": invoice(PAYMENT_HASH, 100_000, network="bcrt"),
        "lockupAddress": tree.address(Network.REGTEST),
        "refundPublicKey": PrivateKey(BOLTZ_SK).public_key.format().hex(),
        "timeoutBlockHeight": tree.timeout_block_height,
        "onchainAmount": 96_728,
        "swapTree": answers.tree(tree.claim_leaf.hex(), tree.refund_leaf.hex()),
    }


async def test_a_reverse_swap_is_checked_and_recorded_before_its_invoice_is_handed_on(
    tmp_path: Path,
) -> None:
    sent: list[Any] = []
    routes = {
        ("GET", "/swap/reverse"): SHAPES["examples"]["GET /swap/reverse"],
        ("POST", "/swap/reverse"): reverse_answer(),
    }
    our_pub = PrivateKey(CLIENT_SK).public_key.format()
    async with boltz(routes, sent) as api:
        pair = (await api.reverse_pairs())[("BTC", "BTC")]
        quote = reverse_quote(100_000, pair.percentage, pair.lockup_fee, pair.claim_fee)
        created = await api.create_reverse(
            ReverseRequest(PAYMENT_HASH, our_pub, invoice_amount=100_000, pair_hash=pair.hash)
        )
    tree = verify_reverse(
        created,
        claim_pubkey=our_pub,
        preimage_hash=PAYMENT_HASH,
        network=Network.REGTEST,
        invoice_amount_sat=100_000,
    )
    check_stated_amount(quote, created.onchain_amount, "onchainAmount")
    facts = {
        "secret_key": CLIENT_SK,
        "invoice_amount_sat": 100_000,
        "task_id": "t2",
        "network": Network.REGTEST,
    }
    with pytest.raises(SwapMismatch, match="preimage or key"):
        reverse_record(created, tree, preimage=b"\x00" * 32, **facts)  # type: ignore[arg-type]
    store = SwapRecords(tmp_path)
    store.create(reverse_record(created, tree, preimage=PREIMAGE, **facts))  # type: ignore[arg-type]
    record = store.get("rev2")
    assert record.preimage_hex == PREIMAGE.hex() and record.expected_amount_sat == 96_728
    assert record.tree().claim_leaf == tree.claim_leaf


def test_a_record_that_no_longer_matches_its_tree_is_refused(tmp_path: Path) -> None:
    tree = tree_for(SwapType.REVERSE)
    response = ReverseResponse.from_json(reverse_answer())
    record = reverse_record(
        response,
        tree,
        secret_key=CLIENT_SK,
        preimage=PREIMAGE,
        invoice_amount_sat=100_000,
        task_id="t3",
        network=Network.REGTEST,
    )
    assert record.tree().address(Network.REGTEST) == record.address
    for change in ({"timeout_block_height": 1}, {"address": "bcrt1pother"},
                   {"secret_key_hex": BOLTZ_SK.hex()}, {"boltz_pubkey_hex": "zz"}):  # fmt: skip
        with pytest.raises(RecordError):
            dataclasses.replace(record, **change).tree()  # type: ignore[arg-type]
