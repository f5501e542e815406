"""The Boltz API v2 wire shapes the client uses, as frozen dataclasses.

Answers are read by a strict ``from_json``: a missing field, a wrong JSON type, bad hex or a
key of the wrong size raises ``BoltzProtocolError`` naming the field, so a broken or hostile
server never surfaces as a ``KeyError`` or ``TypeError`` deep in the client. Fields the swagger
marks optional but a BTC taproot swap created with an invoice always carries (address, swap
tree, keys, timeout, amounts) are required here: without them the swap cannot be verified.
Requests build their JSON with ``to_json`` in Boltz's own (camelCase) names.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from .fields import Fields

__all__ = [
    "LockupTransaction",
    "PartialSignature",
    "RefundRequest",
    "ReverseClaimRequest",
    "ReversePair",
    "ReverseRequest",
    "ReverseResponse",
    "StatusTransaction",
    "SubmarineClaimDetails",
    "SubmarinePair",
    "SubmarineRequest",
    "SubmarineResponse",
    "SwapStatus",
    "SwapTreeLeaves",
    "parse_pairs",
]


@dataclass(frozen=True, slots=True)
class SubmarinePair:
    """GET /swap/submarine, one from/to entry: limits and fees of a swap into Lightning."""

    hash: str
    rate: Decimal
    minimal: int
    maximal: int
    maximal_zero_conf: int
    percentage: Decimal
    miner_fees: int

    @classmethod
    def from_json(cls, doc: object, where: str = "SubmarinePair") -> SubmarinePair:
        f = Fields(doc, where)
        limits, fees = f.need("limits"), f.need("fees")
        return cls(
            hash=f.text("hash"),
            rate=f.number("rate"),
            minimal=limits.whole("minimal"),
            maximal=limits.whole("maximal"),
            maximal_zero_conf=limits.whole("maximalZeroConf"),
            percentage=fees.number("percentage"),
            miner_fees=fees.whole("minerFees"),
        )


@dataclass(frozen=True, slots=True)
class ReversePair:
    """GET /swap/reverse, one from/to entry: limits and fees of a swap out of Lightning."""

    hash: str
    rate: Decimal
    minimal: int
    maximal: int
    percentage: Decimal
    lockup_fee: int
    claim_fee: int

    @classmethod
    def from_json(cls, doc: object, where: str = "ReversePair") -> ReversePair:
        f = Fields(doc, where)
        limits, fees = f.need("limits"), f.need("fees")
        miner = fees.need("minerFees")
        return cls(
            hash=f.text("hash"),
            rate=f.number("rate"),
            minimal=limits.whole("minimal"),
            maximal=limits.whole("maximal"),
            percentage=fees.number("percentage"),
            lockup_fee=miner.whole("lockup"),
            claim_fee=miner.whole("claim"),
        )


P = TypeVar("P", SubmarinePair, ReversePair)


def parse_pairs(doc: object, pair: type[P]) -> dict[tuple[str, str], P]:
    """``{from: {to: pair}}`` as ``{(from, to): pair}``."""
    outer = Fields(doc, "pairs")
    found: dict[tuple[str, str], P] = {}
    for source in outer.doc:
        inner = outer.need(source)
        for target in inner.doc:
            where = f"pairs.{source}.{target}"
            found[(source, target)] = pair.from_json(inner.doc[target], where)
    return found


@dataclass(frozen=True, slots=True)
class SwapTreeLeaves:
    """The two leaves of Boltz's ``swapTree`` (version and script), to compare with ours."""

    claim_version: int
    claim_leaf: bytes
    refund_version: int
    refund_leaf: bytes

    @classmethod
    def from_json(cls, f: Fields) -> SwapTreeLeaves:
        claim, refund = f.need("claimLeaf"), f.need("refundLeaf")
        return cls(
            claim_version=claim.whole("version"),
            claim_leaf=claim.raw("output"),
            refund_version=refund.whole("version"),
            refund_leaf=refund.raw("output"),
        )


@dataclass(frozen=True, slots=True)
class SubmarineRequest:
    """POST /swap/submarine: Boltz pays ``invoice`` once the client locks on chain."""

    invoice: str
    refund_public_key: bytes
    pair_hash: str | None = None
    payment_timeout_s: int | None = None
    from_asset: str = "BTC"
    to_asset: str = "BTC"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "from": self.from_asset,
            "to": self.to_asset,
            "invoice": self.invoice,
            "refundPublicKey": self.refund_public_key.hex(),
        }
        if self.pair_hash is not None:
            body["pairHash"] = self.pair_hash
        if self.payment_timeout_s is not None:
            body["paymentTimeout"] = self.payment_timeout_s
        return body


@dataclass(frozen=True, slots=True)
class SubmarineResponse:
    """Boltz's answer to a submarine swap: where to lock how much, under which tree."""

    id: str
    address: str
    expected_amount: int
    claim_public_key: bytes
    timeout_block_height: int
    swap_tree: SwapTreeLeaves
    accept_zero_conf: bool = False
    bip21: str | None = None

    @classmethod
    def from_json(cls, doc: object) -> SubmarineResponse:
        f = Fields(doc, "SubmarineResponse")
        return cls(
            id=f.swap_id("id"),
            address=f.text("address"),
            expected_amount=f.whole("expectedAmount"),
            claim_public_key=f.raw("claimPublicKey", size=33),
            timeout_block_height=f.whole("timeoutBlockHeight"),
            swap_tree=SwapTreeLeaves.from_json(f.need("swapTree")),
            accept_zero_conf=f.flag("acceptZeroConf"),
            bip21=f.text("bip21", optional=True),
        )


@dataclass(frozen=True, slots=True)
class ReverseRequest:
    """POST /swap/reverse: Boltz locks on chain for the client's preimage hash and claim key.

    Exactly one of ``invoice_amount`` and ``onchain_amount`` is given."""

    preimage_hash: bytes
    claim_public_key: bytes
    invoice_amount: int | None = None
    onchain_amount: int | None = None
    pair_hash: str | None = None
    description: str | None = None
    invoice_expiry_s: int | None = None
    from_asset: str = "BTC"
    to_asset: str = "BTC"

    def __post_init__(self) -> None:
        if (self.invoice_amount is None) == (self.onchain_amount is None):
            raise ValueError("give exactly one of invoice_amount and onchain_amount")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "from": self.from_asset,
            "to": self.to_asset,
            "preimageHash": self.preimage_hash.hex(),
            "claimPublicKey": self.claim_public_key.hex(),
        }
        optional = {
            "invoiceAmount": self.invoice_amount,
            "onchainAmount": self.onchain_amount,
            "pairHash": self.pair_hash,
            "description": self.description,
            "invoiceExpiry": self.invoice_expiry_s,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body


@dataclass(frozen=True, slots=True)
class ReverseResponse:
    """Boltz's answer to a reverse swap: its hold invoice and the output it will lock."""

    id: str
    invoice: str
    lockup_address: str
    refund_public_key: bytes
    timeout_block_height: int
    onchain_amount: int
    swap_tree: SwapTreeLeaves

    @classmethod
    def from_json(cls, doc: object) -> ReverseResponse:
        f = Fields(doc, "ReverseResponse")
        return cls(
            id=f.swap_id("id"),
            invoice=f.text("invoice"),
            lockup_address=f.text("lockupAddress"),
            refund_public_key=f.raw("refundPublicKey", size=33),
            timeout_block_height=f.whole("timeoutBlockHeight"),
            onchain_amount=f.whole("onchainAmount"),
            swap_tree=SwapTreeLeaves.from_json(f.need("swapTree")),
        )


@dataclass(frozen=True, slots=True)
class StatusTransaction:
    """The transaction a status update is about (a lockup, a claim)."""

    id: str
    hex: str | None = None
    confirmed: bool = False


@dataclass(frozen=True, slots=True)
class SwapStatus:
    """GET /swap/{id} and each WebSocket update."""

    status: str
    transaction: StatusTransaction | None = None
    failure_reason: str | None = None
    zero_conf_rejected: bool = False
    failure_expected: int | None = None
    """With ``failure_actual``: the amounts (sat) of a lockup Boltz refused as wrong."""
    failure_actual: int | None = None

    @classmethod
    def from_json(cls, doc: object, where: str = "SwapStatus") -> SwapStatus:
        f = Fields(doc, where)
        tx = f.obj("transaction", optional=True)
        if tx is not None:
            hex_text = tx.text("hex", optional=True)
            if hex_text is not None:
                tx.raw("hex")
            transaction = StatusTransaction(tx.text("id"), hex_text, tx.flag("confirmed"))
        details = f.obj("failureDetails", optional=True)
        return cls(
            status=f.text("status"),
            transaction=transaction if tx is not None else None,
            failure_reason=f.text("failureReason", optional=True),
            zero_conf_rejected=f.flag("zeroConfRejected"),
            failure_expected=details.whole("expected") if details else None,
            failure_actual=details.whole("actual") if details else None,
        )


@dataclass(frozen=True, slots=True)
class SubmarineClaimDetails:
    """GET /swap/submarine/{id}/claim: what Boltz asks the client to co-sign, with the preimage
    that proves it paid."""

    preimage: bytes
    pub_nonce: bytes
    public_key: bytes
    transaction_hash: bytes

    @classmethod
    def from_json(cls, doc: object) -> SubmarineClaimDetails:
        f = Fields(doc, "SubmarineClaimDetails")
        return cls(
            preimage=f.raw("preimage", size=32),
            pub_nonce=f.raw("pubNonce", size=66),
            public_key=f.raw("publicKey", size=33),
            transaction_hash=f.raw("transactionHash", size=32),
        )


@dataclass(frozen=True, slots=True)
class PartialSignature:
    """A MuSig2 public nonce and partial signature, sent either way."""

    pub_nonce: bytes
    partial_signature: bytes

    @classmethod
    def from_json(cls, doc: object) -> PartialSignature:
        f = Fields(doc, "PartialSignature")
        return cls(f.raw("pubNonce", size=66), f.raw("partialSignature", size=32))

    def to_json(self) -> dict[str, Any]:
        return {"pubNonce": self.pub_nonce.hex(), "partialSignature": self.partial_signature.hex()}


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """POST /swap/submarine/{id}/refund: the refund Boltz is asked to co-sign."""

    pub_nonce: bytes
    transaction_hex: str
    index: int

    def to_json(self) -> dict[str, Any]:
        return {
            "pubNonce": self.pub_nonce.hex(),
            "transaction": self.transaction_hex,
            "index": self.index,
        }


@dataclass(frozen=True, slots=True)
class ReverseClaimRequest:
    """POST /swap/reverse/{id}/claim: the preimage, and the claim Boltz is asked to co-sign."""

    preimage: bytes
    pub_nonce: bytes
    transaction_hex: str
    index: int

    def to_json(self) -> dict[str, Any]:
        return {
            "preimage": self.preimage.hex(),
            "pubNonce": self.pub_nonce.hex(),
            "transaction": self.transaction_hex,
            "index": self.index,
        }


@dataclass(frozen=True, slots=True)
class LockupTransaction:
    """GET /swap/{submarine,reverse}/{id}/transaction: a swap's lockup on chain."""

    id: str
    hex: str | None
    timeout_block_height: int

    @classmethod
    def from_json(cls, doc: object) -> LockupTransaction:
        f = Fields(doc, "LockupTransaction")
        hex_text = f.text("hex", optional=True)
        if hex_text is not None:
            f.raw("hex")
        return cls(f.text("id"), hex_text, f.whole("timeoutBlockHeight"))
