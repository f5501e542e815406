"""Every client mistake is a 400 (or a 404 for an unknown swap) with Boltz's ``{"error": ...}``
body: never a 500, and never a swap created from it."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import pytest
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from support.swap_parties import DEST
from support.swap_server_world import CLIENT_PUB, ServerWorld

from taskhold.lightning.sim import SimNetwork, SimNode

NOT_ON_CURVE = "02" + "ff" * 32
BAD_NONCE = ("02" + "ff" * 32) * 2
"""66 bytes, but no point: x is above the field prime."""
GOOD_HASH = hashlib.sha256(b"x").hexdigest()


async def _invoice(world: ServerWorld, **kwargs: Any) -> str:
    args: dict[str, Any] = {"memo": "t", "expiry_seconds": 3600, "cltv_expiry_delta": 40}
    args.update(kwargs)
    amount = args.pop("amount_sat", 100_000)
    hold = await world.escrow.create_hold_invoice(secrets.token_bytes(32), amount * 1000, **args)
    return hold.payment_request


def _submarine(invoice: str, **extra: Any) -> dict[str, Any]:
    return {"from": "BTC", "to": "BTC", "invoice": invoice, "refundPublicKey": CLIENT_PUB.hex(),
            **extra}  # fmt: skip


def _reverse(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": "BTC",
        "to": "BTC",
        "preimageHash": GOOD_HASH,
        "claimPublicKey": CLIENT_PUB.hex(),
        "invoiceAmount": 100_000,
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


async def _refused(world: ServerWorld, path: str, body: Any, error: str, status: int = 400) -> None:
    response = await world.http.post(path, json=body)
    assert response.status_code == status, response.text
    assert error in response.json()["error"]


async def test_submarine_creation_refusals(world: ServerWorld) -> None:
    good = await _invoice(world)
    cases: list[tuple[Any, str]] = [
        ([1, 2], "JSON object"),
        ({"from": "BTC", "to": "BTC", "refundPublicKey": CLIENT_PUB.hex()}, "invoice is required"),
        (_submarine("lnbcrt1garbage"), "not a valid BOLT11"),
        (_submarine(good, refundPublicKey="zz"), "must be hex"),
        (_submarine(good, refundPublicKey=CLIENT_PUB.hex()[:-2]), "33 bytes"),
        (_submarine(good, refundPublicKey=NOT_ON_CURVE), "not a valid public key"),
        (_submarine(good, refundPublicKey=7), "must be a string"),
        (_submarine(good, pairHash="00" * 32), "invalid pair hash"),
        (_submarine(good, to="L-BTC"), "could not find pair"),
        ({k: v for k, v in _submarine(good).items() if k != "from"}, "from is required"),
        (_submarine(await _invoice(world, amount_sat=9_999)), "less than minimal"),
        (_submarine(await _invoice(world, amount_sat=5_000_001)), "more than maximal"),
        (_submarine(await _invoice(world, expiry_seconds=600)), "invoice expiry too short"),
        (_submarine(await _invoice(world, cltv_expiry_delta=130)), "final CLTV"),
    ]
    for body, error in cases:
        await _refused(world, "/swap/submarine", body, error)
    raw = await world.http.post(
        "/swap/submarine", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert raw.status_code == 400 and "JSON object" in raw.json()["error"]
    assert list(world.watcher.records) == []


async def test_an_expired_or_foreign_invoice_is_refused(world: ServerWorld) -> None:
    past = SimNetwork(clock=lambda: 1_000_000.0)
    old = await SimNode(past, "old").create_hold_invoice(
        secrets.token_bytes(32), 100_000_000, memo="", expiry_seconds=3600, cltv_expiry_delta=40
    )
    await _refused(world, "/swap/submarine", _submarine(old.payment_request), "expired already")
    testnet = SimNode(SimNetwork(), "testnet")
    testnet.network = "tb"
    foreign = await testnet.create_hold_invoice(
        secrets.token_bytes(32), 100_000_000, memo="", expiry_seconds=3600, cltv_expiry_delta=40
    )
    await _refused(world, "/swap/submarine", _submarine(foreign.payment_request), "network")


async def test_one_swap_per_invoice(world: ServerWorld) -> None:
    swap = await world.create_submarine()
    record = world.watcher.records.get(swap.id)
    assert record is not None
    await _refused(world, "/swap/submarine", _submarine(record.invoice), "exists already")


async def test_reverse_creation_refusals(world: ServerWorld) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (_reverse(preimageHash="ab" * 31), "32 bytes"),
        (_reverse(preimageHash=None), "preimageHash is required"),
        (_reverse(claimPublicKey=NOT_ON_CURVE), "not a valid public key"),
        (_reverse(onchainAmount=90_000), "exactly one of"),
        (_reverse(invoiceAmount=None), "exactly one of"),
        (_reverse(invoiceAmount="100000"), "must be an integer"),
        (_reverse(invoiceAmount=True), "must be an integer"),
        (_reverse(invoiceAmount=1_000), "less than minimal"),
        (_reverse(invoiceAmount=None, onchainAmount=-5), "must be positive"),
        (_reverse(invoiceExpiry=5), "invoiceExpiry"),
        (_reverse(pairHash="nope"), "invalid pair hash"),
        (_reverse(to=None), "to is required"),
    ]
    for body, error in cases:
        await _refused(world, "/swap/reverse", body, error)
    assert list(world.watcher.records) == []
    created = await world.http.post("/swap/reverse", json=_reverse())
    assert created.status_code == 201
    await _refused(world, "/swap/reverse", _reverse(), "exists already")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/swap/nope"),
        ("GET", "/swap/submarine/nope/transaction"),
        ("GET", "/swap/submarine/nope/claim"),
        ("GET", "/swap/submarine/nope/preimage"),
        ("GET", "/swap/reverse/nope/transaction"),
        ("POST", "/swap/submarine/nope/claim"),
        ("POST", "/swap/submarine/nope/refund"),
        ("POST", "/swap/reverse/nope/claim"),
        ("GET", "/no/such/route"),
    ],
)
async def test_unknown_swaps_are_404(world: ServerWorld, method: str, path: str) -> None:
    response = await world.http.request(method, path, json={})
    assert response.status_code == 404
    assert "error" in response.json()


async def test_swap_endpoints_refuse_bad_bodies(world: ServerWorld) -> None:
    sub = await world.create_submarine()
    rev = await world.create_reverse()
    cases: list[tuple[str, Any, str]] = [
        (f"/swap/submarine/{sub.id}/refund", {}, "pubNonce is required"),
        (f"/swap/submarine/{sub.id}/refund",
         {"pubNonce": "00", "transaction": "zz", "index": "0"}, "must be an integer"),
        (f"/swap/submarine/{sub.id}/claim", {"pubNonce": "00"}, "partialSignature is required"),
        (f"/swap/submarine/{sub.id}/claim",
         {"pubNonce": "00", "partialSignature": "00"}, "no cooperative claim"),
        (f"/swap/reverse/{rev.id}/claim", {}, "preimage is required"),
        (f"/swap/reverse/{rev.id}/claim", {"preimage": "xyz"}, "preimage is not hex"),
        (f"/swap/reverse/{rev.id}/claim", {"preimage": rev.preimage.hex(), "pubNonce": "00"},
         "come together"),
        ("/chain/BTC/transaction", {"hex": "zz"}, "hex-encoded"),
        ("/chain/BTC/transaction", {"hex": "0011"}, "decode"),
        ("/chain/LTC/transaction", {"hex": "00"}, "not supported"),
        ("/devnet/cooperative", {"enabled": "yes"}, "true or false"),
    ]  # fmt: skip
    for path, body, error in cases:
        await _refused(world, path, body, error)


async def test_bad_nonces_and_transactions_in_signing_requests(world: ServerWorld) -> None:
    swap = await world.create_submarine()
    await world.fund_submarine(swap, 1)  # wrong amount: refundable at once
    await world.tick()
    assert await world.status(swap.id) == "transaction.lockupFailed"
    path = f"/swap/submarine/{swap.id}/refund"
    utxo = await world.lockup_utxo_from_chain(swap)
    tx = Transaction(
        vin=[TransactionInput(bytes.fromhex(utxo.txid), utxo.vout)],
        vout=[TransactionOutput(1, Script(DEST))],
    )
    good_tx = tx.serialize().hex()
    cases = [
        ({"pubNonce": "zz", "transaction": good_tx, "index": 0}, "pubNonce is not hex"),
        ({"pubNonce": BAD_NONCE, "transaction": good_tx, "index": 0}, "cannot sign"),
        ({"pubNonce": "02" * 10, "transaction": good_tx, "index": 0}, "66 bytes"),
        ({"pubNonce": BAD_NONCE, "transaction": "00", "index": 0}, "not a valid"),
        ({"pubNonce": BAD_NONCE, "transaction": good_tx, "index": 3}, "index 0"),
    ]
    for body, error in cases:
        await _refused(world, path, body, error)


async def test_websocket_path_is_not_a_500_over_http(world: ServerWorld) -> None:
    response = await world.http.get("/ws")
    assert response.status_code in (400, 404)


async def test_a_node_that_cannot_make_the_invoice_leaves_no_swap(world: ServerWorld) -> None:
    world.server_node.unreachable = True
    response = await world.http.post("/swap/reverse", json=_reverse())
    assert response.status_code == 503
    assert "could not create the invoice" in response.json()["error"]
    assert list(world.watcher.records) == []
    assert not list((world.state_dir / "swaps").glob("*.json"))
    world.server_node.unreachable = False
    assert (await world.http.post("/swap/reverse", json=_reverse())).status_code == 201
