"""The server's answers have Boltz's API v2 shapes (property names and JSON types, from the
reference notes on swagger-spec.json): every required property, and none Boltz does not have,
so a client written against Boltz reads them unchanged."""

from __future__ import annotations

from typing import Any

from support.swap_parties import CLIENT_SK, DEST
from support.swap_server_world import ServerWorld

from taskhold.swaps.cooperative import start_cooperative_spend
from taskhold.swaps.tx import build_spend

# schema: (required properties, allowed properties with their JSON types)
S, N, B, OBJ = str, int, bool, dict
SCHEMAS: dict[str, tuple[set[str], dict[str, type]]] = {
    "SubmarineResponse": (
        {"id"},
        {"id": S, "bip21": S, "address": S, "swapTree": OBJ, "claimPublicKey": S,
         "timeoutBlockHeight": N, "acceptZeroConf": B, "expectedAmount": N},
    ),
    "ReverseResponse": (
        {"id"},
        {"id": S, "invoice": S, "swapTree": OBJ, "lockupAddress": S, "refundPublicKey": S,
         "timeoutBlockHeight": N, "onchainAmount": N},
    ),
    "SwapStatus": (
        {"status"},
        {"status": S, "zeroConfRejected": B, "transaction": OBJ, "failureReason": S,
         "failureDetails": OBJ},
    ),
    "SwapStatus.transaction": ({"id"}, {"id": S, "hex": S, "eta": N, "confirmed": B}),
    "SwapStatus.failureDetails": ({"expected", "actual"}, {"expected": N, "actual": N}),
    "SubmarinePair": ({"hash", "rate", "limits", "fees"},
                      {"hash": S, "rate": N, "limits": OBJ, "fees": OBJ}),
    "SubmarinePair.limits": ({"minimal", "maximal", "maximalZeroConf"},
                             {"minimal": N, "maximal": N, "maximalZeroConf": N}),
    "SubmarinePair.fees": ({"percentage", "minerFees"}, {"percentage": float, "minerFees": N}),
    "ReversePair.limits": ({"minimal", "maximal"}, {"minimal": N, "maximal": N}),
    "ReversePair.fees": ({"percentage", "minerFees"}, {"percentage": float, "minerFees": OBJ}),
    "ReversePair.fees.minerFees": ({"lockup", "claim"}, {"lockup": N, "claim": N}),
    "SubmarineClaimDetails": (
        {"preimage", "pubNonce", "publicKey", "transactionHash"},
        {"preimage": S, "pubNonce": S, "publicKey": S, "transactionHash": S},
    ),
    "PartialSignature": ({"pubNonce", "partialSignature"},
                         {"pubNonce": S, "partialSignature": S}),
    "SubmarineTransaction": ({"id", "timeoutBlockHeight"},
                             {"id": S, "hex": S, "timeoutBlockHeight": N, "timeoutEta": N}),
    "ReverseTransaction": ({"id", "timeoutBlockHeight"},
                           {"id": S, "hex": S, "timeoutBlockHeight": N}),
    "SwapTree": ({"claimLeaf", "refundLeaf"}, {"claimLeaf": OBJ, "refundLeaf": OBJ}),
    "SwapTreeLeaf": ({"output", "version"}, {"output": S, "version": N}),
    "BroadcastResponse": ({"id"}, {"id": S}),
    "ChainHeight": ({"height"}, {"height": N}),
}  # fmt: skip


def shaped(name: str, doc: Any) -> Any:
    required, allowed = SCHEMAS[name]
    assert isinstance(doc, dict), f"{name} is not an object"
    assert required <= doc.keys(), f"{name} lacks {required - doc.keys()}"
    assert doc.keys() <= allowed.keys(), f"{name} has {doc.keys() - allowed.keys()}"
    for key, value in doc.items():
        wanted = allowed[key]
        ok = isinstance(value, wanted) and not (wanted is int and isinstance(value, bool))
        assert ok, f"{name}.{key} is {type(value).__name__}, not {wanted.__name__}"
    return doc


def _tree(doc: Any) -> None:
    shaped("SwapTree", doc)
    for leaf in doc.values():
        assert shaped("SwapTreeLeaf", leaf)["version"] == 192


def _status(doc: Any) -> dict[str, Any]:
    shaped("SwapStatus", doc)
    if "transaction" in doc:
        shaped("SwapStatus.transaction", doc["transaction"])
    if "failureDetails" in doc:
        shaped("SwapStatus.failureDetails", doc["failureDetails"])
    return dict(doc)


async def test_pairs_and_chain_answers(world: ServerWorld) -> None:
    sub = shaped("SubmarinePair", (await world.http.get("/swap/submarine")).json()["BTC"]["BTC"])
    shaped("SubmarinePair.limits", sub["limits"])
    shaped("SubmarinePair.fees", sub["fees"])
    rev = shaped("SubmarinePair", (await world.http.get("/swap/reverse")).json()["BTC"]["BTC"])
    shaped("ReversePair.limits", rev["limits"])
    shaped("ReversePair.fees.minerFees", shaped("ReversePair.fees", rev["fees"])["minerFees"])
    shaped("ChainHeight", (await world.http.get("/chain/BTC/height")).json())


async def test_every_submarine_answer(world: ServerWorld) -> None:
    swap = await world.create_submarine()
    _tree(shaped("SubmarineResponse", swap.response)["swapTree"])
    _status((await world.http.get(f"/swap/{swap.id}")).json())
    await world.fund_submarine(swap)
    await world.tick()
    _status((await world.http.get(f"/swap/{swap.id}")).json())
    shaped(
        "SubmarineTransaction",
        (await world.http.get(f"/swap/submarine/{swap.id}/transaction")).json(),
    )
    world.chain.mine()
    await world.tick()
    await world.escrow.settle_invoice(swap.preimage)
    await world.tick()
    details = (await world.http.get(f"/swap/submarine/{swap.id}/claim")).json()
    shaped("SubmarineClaimDetails", details)
    assert _status((await world.http.get(f"/swap/{swap.id}")).json())["status"] == (
        "transaction.claim.pending"
    )


async def test_every_failed_submarine_answer(world: ServerWorld) -> None:
    swap = await world.create_submarine()
    await world.fund_submarine(swap, 20_000)
    await world.tick()
    status = _status((await world.http.get(f"/swap/{swap.id}")).json())
    assert status["status"] == "transaction.lockupFailed" and "failureDetails" in status
    utxo = await world.lockup_utxo_from_chain(swap)
    tx = build_spend(utxo, DEST, 300)
    ours = start_cooperative_spend(tx, utxo, CLIENT_SK)
    body = {"pubNonce": ours.public.hex(), "transaction": tx.serialize().hex(), "index": 0}
    shaped("PartialSignature", (await world.post(f"/swap/submarine/{swap.id}/refund", body)).json())


async def test_every_reverse_answer(world: ServerWorld) -> None:
    swap = await world.create_reverse()
    _tree(shaped("ReverseResponse", swap.response)["swapTree"])
    await world.escrow.send_payment(swap.response["invoice"])
    await world.tick()
    _status((await world.http.get(f"/swap/{swap.id}")).json())
    shaped(
        "ReverseTransaction", (await world.http.get(f"/swap/reverse/{swap.id}/transaction")).json()
    )
    utxo = await world.lockup_utxo(swap.id, swap.tree)
    tx = build_spend(utxo, DEST, 200)
    ours = start_cooperative_spend(tx, utxo, CLIENT_SK)
    body = {"preimage": swap.preimage.hex(), "pubNonce": ours.public.hex(),
            "transaction": tx.serialize().hex(), "index": 0}  # fmt: skip
    shaped("PartialSignature", (await world.post(f"/swap/reverse/{swap.id}/claim", body)).json())
    _status((await world.http.get(f"/swap/{swap.id}")).json())
    world.chain.mine()
    sent = await world.post("/chain/BTC/transaction", {"hex": world.chain.txs[0].hex})
    assert sent.status_code == 400  # already in the chain: an error, in Boltz's shape
    assert set(sent.json()) == {"error"}
