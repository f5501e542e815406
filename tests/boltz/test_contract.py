"""The client pinned to Boltz's published API shapes (``api_shapes.json``: names, JSON types and
required lists read from boltz-backend's swagger-spec.json; facts, not code).

Every request the client builds uses only published properties, with their types, and all the
required ones; every required property of an answer is read (an answer without it is refused);
the test answers the other client tests use are themselves of the published shape; and the
swagger's own examples parse and give the fee figures of Boltz's docs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import boltz_answers as answers

from taskhold.boltz.api import BoltzApi
from taskhold.boltz.errors import BoltzProtocolError
from taskhold.boltz.models import (
    LockupTransaction,
    PartialSignature,
    RefundRequest,
    ReverseClaimRequest,
    ReversePair,
    ReverseRequest,
    ReverseResponse,
    SubmarineClaimDetails,
    SubmarinePair,
    SubmarineRequest,
    SubmarineResponse,
    SwapStatus,
    parse_pairs,
)
from taskhold.swaps.fees import reverse_quote, submarine_quote

SHAPES = json.loads((Path(__file__).parent / "api_shapes.json").read_text())
SCHEMAS: dict[str, dict[str, Any]] = SHAPES["schemas"]


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    return {str: "string", dict: "object", list: "array"}[type(value)]


def check_shape(schema_name: str, body: dict[str, Any]) -> None:
    """``body`` uses only ``schema_name``'s properties, with their types, and its required
    ones (and one of each required alternative); nested inline objects are checked too."""
    schema = SCHEMAS[schema_name]
    unknown = set(body) - set(schema["properties"])
    assert not unknown, f"{schema_name}: unpublished properties {sorted(unknown)}"
    missing = set(schema["required"]) - set(body)
    assert not missing, f"{schema_name}: required properties missing {sorted(missing)}"
    for key in ("anyOf_required", "oneOf_required"):
        if key in schema:
            met = [all(name in body for name in group) for group in schema[key]]
            assert any(met) if key == "anyOf_required" else sum(met) == 1, (schema_name, key)
    for name, value in body.items():
        assert json_type(value) == schema["properties"][name], f"{schema_name}.{name}"
        if isinstance(value, dict) and f"{schema_name}.{name}" in SCHEMAS:
            check_shape(f"{schema_name}.{name}", value)


def test_the_facts_name_their_source() -> None:
    source = SHAPES["source"]
    assert source["repository"] == "github.com/BoltzExchange/boltz-backend"
    assert len(source["commit"]) == 40 and source["file"] == "swagger-spec.json"


# requests -----------------------------------------------------------------------------------

KEY, HASH, NONCE = b"\x02" * 33, b"\x11" * 32, b"\x03" * 66

REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("SubmarineRequest", SubmarineRequest("lnbc1", KEY).to_json()),
    ("SubmarineRequest", SubmarineRequest("lnbc1", KEY, "hash", 3600, "BTC", "BTC").to_json()),
    ("ReverseRequest", ReverseRequest(HASH, KEY, invoice_amount=100_000).to_json()),
    (
        "ReverseRequest",
        ReverseRequest(HASH, KEY, onchain_amount=96_728, pair_hash="h", description="task",
                       invoice_expiry_s=3600).to_json(),
    ),
    ("PartialSignature", PartialSignature(NONCE, b"\x04" * 32).to_json()),
    ("RefundRequest", RefundRequest(NONCE, "0200", 0).to_json()),
    ("ReverseClaimRequest", ReverseClaimRequest(b"\x05" * 32, NONCE, "0200", 1).to_json()),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "body"), REQUESTS, ids=[s for s, _ in REQUESTS])
def test_every_request_uses_published_properties_only_and_all_required(
    schema: str, body: dict[str, Any]
) -> None:
    check_shape(schema, body)


def test_a_request_outside_the_published_shape_is_caught() -> None:
    """The checker itself: an unknown property, a missing one, a wrong type all fail."""
    good = SubmarineRequest("lnbc1", KEY).to_json()
    for bad in ({**good, "refundKey": "02"}, {"from": "BTC", "to": "BTC"},
                {**good, "paymentTimeout": "3600"}):  # fmt: skip
        with pytest.raises(AssertionError):
            check_shape("SubmarineRequest", bad)


async def test_the_broadcast_body_is_published() -> None:
    sent: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(201, json={"id": answers.TXID})

    async with BoltzApi("http://boltz/v2", transport=httpx.MockTransport(handle)) as api:
        await api.broadcast("0200")
    check_shape("BroadcastRequest", sent[0])
    check_shape("BroadcastResponse", {"id": answers.TXID})


# answers ------------------------------------------------------------------------------------

ANSWERS: list[tuple[str, Callable[[], dict[str, Any]], Callable[[Any], Any], str]] = [
    ("SubmarineResponse", answers.submarine_response, SubmarineResponse.from_json, ""),
    ("ReverseResponse", answers.reverse_response, ReverseResponse.from_json, ""),
    ("SwapStatus", answers.swap_status, SwapStatus.from_json, ""),
    ("SwapStatus.transaction", answers.swap_status, SwapStatus.from_json, "transaction"),
    ("SwapStatus", answers.failed_status, SwapStatus.from_json, ""),
    ("SwapStatus.failureDetails", answers.failed_status, SwapStatus.from_json,
     "failureDetails"),
    ("SubmarineClaimDetails", answers.claim_details, SubmarineClaimDetails.from_json, ""),
    ("PartialSignature", answers.partial_signature, PartialSignature.from_json, ""),
    ("SubmarineTransaction", answers.lockup_transaction, LockupTransaction.from_json, ""),
    ("ReverseTransaction", lambda: {**answers.lockup_transaction(), "timeoutEta": None},
     LockupTransaction.from_json, ""),
    ("SwapTree", answers.submarine_response, SubmarineResponse.from_json, "swapTree"),
    ("SwapTreeLeaf", answers.submarine_response, SubmarineResponse.from_json,
     "swapTree.claimLeaf"),
]  # fmt: skip


def _inner(document: dict[str, Any], path: str) -> dict[str, Any]:
    for part in filter(None, path.split(".")):
        document = document[part]
    return document


@pytest.mark.parametrize(
    ("schema", "answer", "parse", "path"), ANSWERS, ids=[a[0] for a in ANSWERS]
)
def test_every_required_answer_property_is_read(
    schema: str, answer: Callable[[], dict[str, Any]], parse: Callable[[Any], Any], path: str
) -> None:
    parse(answer())
    for name in SCHEMAS[schema]["required"]:
        document = answer()
        del _inner(document, path)[name]
        with pytest.raises(BoltzProtocolError, match=f"{name} is missing"):
            parse(document)


@pytest.mark.parametrize(
    ("schema", "answer", "path"),
    [(a[0], a[1], a[3]) for a in ANSWERS],
    ids=[a[0] for a in ANSWERS],
)
def test_the_test_answers_have_the_published_shape(
    schema: str, answer: Callable[[], dict[str, Any]], path: str
) -> None:
    check_shape(schema, {k: v for k, v in _inner(answer(), path).items() if v is not None})


PAIR_SCHEMAS = [
    ("SubmarinePair", "GET /swap/submarine", SubmarinePair),
    ("ReversePair", "GET /swap/reverse", ReversePair),
]


@pytest.mark.parametrize(("schema", "endpoint", "model"), PAIR_SCHEMAS)
def test_every_required_pair_property_is_read(schema: str, endpoint: str, model: Any) -> None:
    example = SHAPES["examples"][endpoint]["BTC"]["BTC"]
    check_shape(schema, example)
    nested = [k for k in SCHEMAS if k.startswith(schema + ".")]
    for where in ["", *(k.removeprefix(schema + ".") for k in nested)]:
        for name in SCHEMAS[f"{schema}.{where}" if where else schema]["required"]:
            document = json.loads(json.dumps(example))
            del _inner(document, where)[name]
            with pytest.raises(BoltzProtocolError, match=f"{name} is missing"):
                model.from_json(document)


def test_the_swagger_pair_examples_parse_and_give_the_docs_fee_figures() -> None:
    submarine = parse_pairs(SHAPES["examples"]["GET /swap/submarine"], SubmarinePair)
    reverse = parse_pairs(SHAPES["examples"]["GET /swap/reverse"], ReversePair)
    assert set(submarine) == {("BTC", "BTC"), ("L-BTC", "BTC")}
    assert ("BTC", "BTC") in reverse
    sub, rev = submarine[("BTC", "BTC")], reverse[("BTC", "BTC")]
    assert (sub.minimal, sub.maximal, sub.maximal_zero_conf) == (50_000, 25_000_000, 0)
    assert submarine_quote(100_000, sub.percentage, sub.miner_fees).payer_sends == 104_479
    assert (rev.lockup_fee, rev.claim_fee) == (2_772, 1_998)
    assert reverse_quote(100_000, rev.percentage, rev.lockup_fee).stated_amount == 96_728


def test_the_height_answer_is_published() -> None:
    check_shape("ChainHeight", {"height": 812})
