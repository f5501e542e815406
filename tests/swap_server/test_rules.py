"""The server's rules on their own: fee formulas (Boltz's documented examples), the pair hash,
the lifecycle table, the signing guards and the record files."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from support.swap_server_world import ServerWorld

from taskhold.devnet.swap_server.app import (
    SwapServerConfig,
    pair_info,
    reverse_invoice_amount,
    reverse_onchain_amount,
    submarine_expected_amount,
)
from taskhold.devnet.swap_server.lifecycle import (
    FINAL,
    TRANSITIONS,
    IllegalMove,
    Status,
    check_move,
)
from taskhold.devnet.swap_server.records import RecordStore, SwapRecord, new_secret_key
from taskhold.devnet.swap_server.signing import SigningRefused, cooperative_refund
from taskhold.lightning.base import PaymentStatus
from taskhold.swaps.tree import Network, SwapType

DOCS = SwapServerConfig(
    network=Network.REGTEST,
    submarine_fee_percent=Decimal("0.1"),
    submarine_miner_fee_sat=4_379,
    reverse_fee_percent=Decimal("0.5"),
    reverse_lockup_fee_sat=2_772,
)


def test_fee_formulas_reproduce_boltz_docs_examples() -> None:
    assert submarine_expected_amount(DOCS, 100_000) == 104_479
    assert reverse_onchain_amount(DOCS, 100_000) == 96_728
    # percentage fees round up, so a 1-sat remainder still costs a sat
    assert submarine_expected_amount(DOCS, 100_001) == 100_001 + 4_379 + 101
    # the invoice for a wanted on-chain amount pays at least that much on chain
    for onchain in (10_000, 96_728, 123_457):
        invoice = reverse_invoice_amount(DOCS, onchain)
        assert reverse_onchain_amount(DOCS, invoice) >= onchain
        assert reverse_onchain_amount(DOCS, invoice - 1) < onchain


async def test_the_pair_hash_follows_the_fees(world: ServerWorld) -> None:
    pairs = (await world.http.get("/swap/submarine")).json()
    pair = pairs["BTC"]["BTC"]
    assert pair["limits"] == {"minimal": 10_000, "maximal": 5_000_000, "maximalZeroConf": 0}
    assert pair["fees"] == {"percentage": 0.1, "minerFees": 300}
    assert pair["hash"] == pair_info(world.config, SwapType.SUBMARINE)["hash"]
    other = SwapServerConfig(network=Network.REGTEST, submarine_fee_percent=Decimal("0.2"))
    assert pair_info(other, SwapType.SUBMARINE)["hash"] != pair["hash"]
    reverse = (await world.http.get("/swap/reverse")).json()["BTC"]["BTC"]
    assert reverse["fees"]["minerFees"] == {"lockup": 300, "claim": 200}
    assert reverse["hash"] != pair["hash"]
    # a current hash is accepted
    await world.create_submarine(pairHash=pair["hash"])
    nodes = (await world.http.get("/nodes")).json()
    assert nodes["BTC"]["LND"]["publicKey"] == world.server_node.pubkey_hex
    heights = (await world.http.get("/chain/heights")).json()
    assert heights == {"BTC": world.chain.tip}
    assert (await world.http.get("/chain/BTC/height")).json() == {"height": world.chain.tip}


def test_lifecycle_refuses_skipped_steps() -> None:
    check_move(SwapType.SUBMARINE, Status.INVOICE_PAID, Status.TX_CLAIM_PENDING)
    for kind, current, to in [
        (SwapType.SUBMARINE, Status.INVOICE_SET, Status.TX_CLAIMED),
        (SwapType.SUBMARINE, Status.INVOICE_PENDING, Status.SWAP_EXPIRED),  # paying: wait
        (SwapType.SUBMARINE, Status.INVOICE_FAILED_TO_PAY, Status.INVOICE_PAID),
        (SwapType.REVERSE, Status.SWAP_CREATED, Status.INVOICE_SETTLED),
        (SwapType.REVERSE, Status.INVOICE_SETTLED, Status.TX_REFUNDED),
    ]:
        with pytest.raises(IllegalMove):
            check_move(kind, current, to)
    assert FINAL[SwapType.SUBMARINE] == {
        Status.TX_CLAIMED,
        Status.INVOICE_FAILED_TO_PAY,
        Status.SWAP_EXPIRED,
    }
    assert FINAL[SwapType.REVERSE] == {
        Status.INVOICE_SETTLED,
        Status.TX_REFUNDED,
        Status.TX_FAILED,
        Status.INVOICE_EXPIRED,
        Status.SWAP_EXPIRED,
    }
    assert all(status not in FINAL[kind] for kind, table in TRANSITIONS.items() for status in table)


def _record(status: Status) -> SwapRecord:
    from coincurve import PrivateKey

    return SwapRecord(
        id="abc",
        kind=SwapType.SUBMARINE,
        status=status,
        server_seckey_hex=new_secret_key().hex(),
        client_pubkey_hex=PrivateKey().public_key.format().hex(),
        preimage_hash_hex="11" * 32,
        timeout_block_height=500,
        created_height=300,
        invoice="lnbcrt...",
        invoice_amount_sat=100_000,
        onchain_amount_sat=100_400,
        address="",
        lockup_txid="22" * 32,
        lockup_vout=0,
        lockup_amount_sat=100_400,
    )


@pytest.mark.parametrize("payment", [PaymentStatus.IN_FLIGHT, PaymentStatus.SUCCEEDED])
def test_no_refund_signature_while_a_payment_may_land(payment: PaymentStatus) -> None:
    """Even in a refundable state: a payment in flight or done means the server is owed the
    lockup."""
    with pytest.raises(SigningRefused, match="pending or succeeded"):
        cooperative_refund(
            _record(Status.INVOICE_FAILED_TO_PAY),
            payment=payment,
            tx_hex="00",
            index=0,
            pub_nonce_hex="00",
        )


def test_records_survive_a_reload_and_refuse_illegal_moves(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    record = _record(Status.INVOICE_SET)
    store.add(record)
    store.move(record, Status.TX_MEMPOOL, lockup_confirmed=False)
    with pytest.raises(IllegalMove):
        store.move(record, Status.TX_CLAIMED)
    reloaded = RecordStore(tmp_path).get("abc")
    assert reloaded == record
    assert reloaded is not None and reloaded.history == ["invoice.set", "transaction.mempool"]
    assert not list((tmp_path / "swaps").glob("*.tmp"))  # written by rename, no leftovers
    assert json.loads((tmp_path / "swaps" / "abc.json").read_text())["status"] == (
        "transaction.mempool"
    )


def test_a_records_repr_does_not_show_its_secret_key() -> None:
    record = _record(Status.INVOICE_SET)
    assert record.server_seckey_hex not in repr(record)
