"""BoltzApi over an in-process transport: each call's method, path and body, and every way a
server can fail mapped to refused / unavailable / protocol error, never a bare exception."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from support import boltz_answers as answers

from taskhold.boltz.api import BoltzApi
from taskhold.boltz.errors import BoltzProtocolError, BoltzRefused, BoltzUnavailable
from taskhold.boltz.models import ReverseRequest, SubmarineRequest

BASE = "http://127.0.0.1:9001/v2"
Handler = Callable[[httpx.Request], httpx.Response]


def api_with(handler: Handler) -> BoltzApi:
    return BoltzApi(BASE, transport=httpx.MockTransport(handler))


def answering(status: int, body: Any, seen: list[httpx.Request] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return handle


def raising(exc: Exception) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return handle


# failures first ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "error", "text"),
    [
        (answering(200, b"<html>oops"), BoltzProtocolError, "not JSON"),
        (answering(200, [1, 2]), BoltzProtocolError, "not a JSON object"),
        (answering(200, {"status": 7}), BoltzProtocolError, r"SwapStatus\.status must be a string"),
        (answering(200, {}), BoltzProtocolError, r"SwapStatus\.status is missing"),
        (answering(302, b""), BoltzProtocolError, "HTTP 302"),
        (answering(404, {"error": "could not find swap with id: x"}), BoltzRefused,
         "could not find swap"),
        (answering(400, b"bad request"), BoltzRefused, "bad request"),
        (answering(500, {"error": "internal"}), BoltzUnavailable, "HTTP 500"),
        (answering(503, b""), BoltzUnavailable, "HTTP 503"),
        (answering(429, {"error": "too many requests"}), BoltzUnavailable, "HTTP 429"),
        (answering(408, b""), BoltzUnavailable, "HTTP 408"),
        (raising(httpx.ConnectError("refused")), BoltzUnavailable, "unreachable"),
        (raising(httpx.ReadTimeout("slow")), BoltzUnavailable, "timed out"),
        (raising(httpx.ConnectTimeout("slow")), BoltzUnavailable, "timed out"),
        (raising(httpx.RemoteProtocolError("eof")), BoltzUnavailable, "unreachable"),
    ],
)  # fmt: skip
async def test_every_failure_is_one_of_the_three_errors(
    handler: Handler, error: type[Exception], text: str
) -> None:
    async with api_with(handler) as api:
        with pytest.raises(error, match=text):
            await api.swap_status("abc")


async def test_a_refusal_carries_boltz_message_and_status_shortened_and_printable() -> None:
    async with api_with(answering(400, {"error": "invalid pair hash\x1b[31m" + "x" * 500})) as api:
        with pytest.raises(BoltzRefused) as caught:
            await api.create_submarine(SubmarineRequest("lnbc1", b"\x02" * 33))
    assert caught.value.status == 400
    assert caught.value.message.startswith("invalid pair hash?[31m")
    assert len(caught.value.message) <= 201


@pytest.mark.parametrize("field", ["swapTree", "claimPublicKey", "expectedAmount", "address"])
async def test_a_created_swap_missing_a_field_is_refused_naming_it(field: str) -> None:
    body = answers.submarine_response()
    del body[field]
    async with api_with(answering(201, body)) as api:
        with pytest.raises(BoltzProtocolError, match=f"SubmarineResponse.{field} is missing"):
            await api.create_submarine(SubmarineRequest("lnbc1", b"\x02" * 33))


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"claimPublicKey": "02zz"}, "claimPublicKey is not hex"),
        ({"claimPublicKey": "02 " + "ab" * 32}, "claimPublicKey is not hex"),
        ({"claimPublicKey": "02" + "ab" * 32 + "c"}, "claimPublicKey is not hex"),
        ({"claimPublicKey": "02" * 32}, "claimPublicKey must be 33 bytes"),
        ({"expectedAmount": "104479"}, "expectedAmount must be a whole number"),
        ({"expectedAmount": 104479.5}, "expectedAmount must be a whole number"),
        ({"expectedAmount": True}, "expectedAmount must be a whole number"),
        ({"expectedAmount": -1}, "out of range"),
        ({"expectedAmount": 2**63}, "out of range"),
        (
            {"swapTree": {"claimLeaf": {"version": 192}, "refundLeaf": {}}},
            r"claimLeaf\.output is missing",
        ),
        ({"id": "../../etc"}, "not a swap id"),
        ({"acceptZeroConf": "yes"}, "acceptZeroConf must be true or false"),
    ],
)
async def test_a_mistyped_field_is_refused_naming_it(change: dict[str, Any], text: str) -> None:
    async with api_with(answering(201, {**answers.submarine_response(), **change})) as api:
        with pytest.raises(BoltzProtocolError, match=text):
            await api.create_submarine(SubmarineRequest("lnbc1", b"\x02" * 33))


@pytest.mark.parametrize(
    "raw",
    [b'{"status": "x", "zeroConfRejected": NaN}', b'{"height": NaN}', b'{"height": Infinity}',
     b'{"BTC": {"BTC": {"hash": "h", "rate": 1e999999999}}}', b'{"height": 1e999999999}',
     b'{"BTC": {"BTC": {"hash": "h", "rate": NaN}}}', b"9" * 5000,
     b'{"BTC": {"BTC": {"hash": "h", "rate": ' + b"9" * 400 + b"}}}"],
)  # fmt: skip
async def test_absurd_numbers_are_protocol_errors(raw: bytes) -> None:
    async with api_with(answering(200, raw)) as api:
        with pytest.raises(BoltzProtocolError):
            if b"zeroConf" in raw:
                await api.swap_status("s1")
            elif b"BTC" in raw:
                await api.submarine_pairs()
            else:
                await api.chain_height()


def dropping_once(body: Any, seen: list[str]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) == 1:
            raise httpx.RemoteProtocolError("server closed the kept-alive connection")
        return httpx.Response(200, json=body)

    return handle


async def test_a_get_on_a_dropped_connection_is_tried_once_more() -> None:
    seen: list[str] = []
    async with api_with(dropping_once(answers.swap_status(), seen)) as api:
        assert (await api.swap_status("s1")).status == "transaction.mempool"
    assert seen == ["GET", "GET"]


async def test_a_post_on_a_dropped_connection_is_not_repeated() -> None:
    seen: list[str] = []
    async with api_with(dropping_once(answers.submarine_response(), seen)) as api:
        with pytest.raises(BoltzUnavailable, match="unreachable"):
            await api.create_submarine(SubmarineRequest("lnbc1", b"\x02" * 33))
    assert seen == ["POST"]


async def test_a_hostile_swap_id_is_never_put_in_a_path() -> None:
    seen: list[httpx.Request] = []
    async with api_with(answering(200, answers.swap_status(), seen)) as api:
        with pytest.raises(ValueError, match="not a Boltz swap id"):
            await api.swap_status("../chain/BTC/transaction")
    assert seen == []


# each call --------------------------------------------------------------------------------


async def call_and_see(
    status: int, body: Any, call: Callable[[BoltzApi], Any]
) -> tuple[Any, httpx.Request]:
    seen: list[httpx.Request] = []
    async with api_with(answering(status, body, seen)) as api:
        result = await call(api)
    assert len(seen) == 1
    return result, seen[0]


def sent(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


async def test_pairs_parse_and_keep_the_percentage_exact() -> None:
    pairs, request = await call_and_see(
        200,
        {"BTC": {"BTC": {"hash": "h", "rate": 1, "limits": {"minimal": 50_000,
         "maximal": 25_000_000, "maximalZeroConf": 0}, "fees": {"percentage": 0.1,
         "minerFees": 4_379}}}},
        lambda api: api.submarine_pairs(),
    )  # fmt: skip
    assert (request.method, request.url.path) == ("GET", "/v2/swap/submarine")
    pair = pairs[("BTC", "BTC")]
    assert pair.percentage == Decimal("0.1") and pair.miner_fees == 4_379


async def test_create_submarine_sends_boltz_field_names() -> None:
    request_model = SubmarineRequest("lnbcrt1x", b"\x03" * 33, pair_hash="ph")
    created, request = await call_and_see(
        201, answers.submarine_response(), lambda api: api.create_submarine(request_model)
    )
    assert (request.method, request.url.path) == ("POST", "/v2/swap/submarine")
    assert sent(request) == {
        "from": "BTC",
        "to": "BTC",
        "invoice": "lnbcrt1x",
        "refundPublicKey": "03" * 33,
        "pairHash": "ph",
    }
    assert created.expected_amount == 104_479 and created.id == "sub1"


async def test_create_reverse_sends_boltz_field_names() -> None:
    model = ReverseRequest(
        b"\x44" * 32, b"\x02" * 33, invoice_amount=100_000, invoice_expiry_s=3600
    )
    created, request = await call_and_see(
        201, answers.reverse_response(), lambda api: api.create_reverse(model)
    )
    assert (request.method, request.url.path) == ("POST", "/v2/swap/reverse")
    assert sent(request) == {
        "from": "BTC",
        "to": "BTC",
        "preimageHash": "44" * 32,
        "claimPublicKey": "02" * 33,
        "invoiceAmount": 100_000,
        "invoiceExpiry": 3600,
    }
    assert created.onchain_amount == 96_728


@pytest.mark.parametrize(
    ("call", "method", "path", "body", "answer"),
    [
        (lambda a: a.swap_status("s1"), "GET", "/v2/swap/s1", None, answers.swap_status()),
        (lambda a: a.submarine_lockup_transaction("s1"), "GET",
         "/v2/swap/submarine/s1/transaction", None, answers.lockup_transaction()),
        (lambda a: a.reverse_lockup_transaction("s1"), "GET",
         "/v2/swap/reverse/s1/transaction", None, answers.lockup_transaction()),
        (lambda a: a.submarine_claim_details("s1"), "GET", "/v2/swap/submarine/s1/claim", None,
         answers.claim_details()),
        (lambda a: a.post_submarine_claim_signature("s1", b"\x01" * 66, b"\x02" * 32), "POST",
         "/v2/swap/submarine/s1/claim", {"pubNonce": "01" * 66, "partialSignature": "02" * 32},
         {}),
        (lambda a: a.submarine_refund_signature("s1", b"\x01" * 66, "0200", 0), "POST",
         "/v2/swap/submarine/s1/refund", {"pubNonce": "01" * 66, "transaction": "0200",
         "index": 0}, answers.partial_signature()),
        (lambda a: a.reverse_claim_signature("s1", b"\x07" * 32, b"\x01" * 66, "0200", 1),
         "POST", "/v2/swap/reverse/s1/claim", {"preimage": "07" * 32, "pubNonce": "01" * 66,
         "transaction": "0200", "index": 1}, answers.partial_signature()),
        (lambda a: a.broadcast("0200"), "POST", "/v2/chain/BTC/transaction", {"hex": "0200"},
         {"id": answers.TXID}),
        (lambda a: a.chain_height(), "GET", "/v2/chain/BTC/height", None, {"height": 812}),
    ],
    ids=["status", "sub lockup", "rev lockup", "claim details", "claim sig", "refund sig",
         "reverse claim", "broadcast", "height"],
)  # fmt: skip
async def test_each_call_uses_its_path_and_body(
    call: Callable[[BoltzApi], Any], method: str, path: str, body: Any, answer: Any
) -> None:
    result, request = await call_and_see(200, answer, call)
    assert (request.method, request.url.path, sent(request)) == (method, path, body)
    if path.endswith("/height"):
        assert result == 812
    elif path.endswith("chain/BTC/transaction"):
        assert result == answers.TXID


async def test_parsed_answers_carry_the_wire_values() -> None:
    status, _ = await call_and_see(200, answers.swap_status(), lambda a: a.swap_status("s1"))
    assert status.status == "transaction.mempool" and status.zero_conf_rejected
    assert status.transaction is not None and status.transaction.id == answers.TXID
    failed, _ = await call_and_see(200, answers.failed_status(), lambda a: a.swap_status("s1"))
    assert (failed.failure_expected, failed.failure_actual) == (104_479, 100_000)
    assert failed.failure_reason == "invalid onchain amount"
    details, _ = await call_and_see(
        200, answers.claim_details(), lambda a: a.submarine_claim_details("s1")
    )
    assert details.preimage == b"\x55" * 32 and len(details.pub_nonce) == 66
    signed, _ = await call_and_see(
        200, answers.partial_signature(), lambda a: a.submarine_refund_signature("s", b"", "", 0)
    )
    assert signed.partial_signature == bytes.fromhex(answers.PARTIAL)


def test_the_client_shows_its_url_only() -> None:
    assert repr(BoltzApi(BASE + "/")) == f"BoltzApi({BASE!r})"
