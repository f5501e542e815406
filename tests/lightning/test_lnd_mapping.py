"""lnd's errors and JSON, turned into taskhold's types: no node needed.

Every lnd error text the mapping recognises is pinned here with the class it must become, so a
table entry cannot silently stop matching; anything unrecognised stays a plain LightningError.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from taskhold.lightning.base import (
    AlreadyExists,
    InvoiceNotFound,
    InvoiceState,
    LightningError,
    NodeCapacity,
    NodeUnreachable,
    PaymentFailed,
    PaymentStatus,
    WrongInvoiceState,
)
from taskhold.lightning.lnd import invoice_status_from_lnd, payment_result_from_lnd
from taskhold.lightning.lnd_channels import capacity_from_lnd
from taskhold.lightning.lnd_errors import (
    FailedPayment,
    GatewayError,
    GrpcCode,
    PaymentNotInitiated,
    map_lnd_error,
)
from taskhold.lightning.lnd_rest import LndRest, b64url, from_b64

UNKNOWN = GrpcCode.UNKNOWN


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (GrpcCode.NOT_FOUND, "unable to locate invoice", InvoiceNotFound),
        (UNKNOWN, "unable to locate invoice", InvoiceNotFound),
        (UNKNOWN, "there are no existing invoices", InvoiceNotFound),
        (UNKNOWN, "invoice with payment hash already exists", AlreadyExists),
        (UNKNOWN, "invoice with payemnt addr already exists", AlreadyExists),
        (GrpcCode.ALREADY_EXISTS, "invoice is already paid", AlreadyExists),
        (GrpcCode.ALREADY_EXISTS, "payment is in transition", AlreadyExists),
        (GrpcCode.ALREADY_EXISTS, "payment already exists", AlreadyExists),
        (UNKNOWN, "invoice already settled", WrongInvoiceState),
        (UNKNOWN, "invoice already canceled", WrongInvoiceState),
        (UNKNOWN, "invoice not canceled", WrongInvoiceState),
        (UNKNOWN, "invoice already accepted", WrongInvoiceState),
        (UNKNOWN, "invoice still open", WrongInvoiceState),
        (UNKNOWN, "cannot move invoice to open", WrongInvoiceState),
        (UNKNOWN, "cannot accept invoice", WrongInvoiceState),
        (GrpcCode.UNAVAILABLE, "connection closed", NodeUnreachable),
        (
            UNKNOWN,
            "the RPC server is in the process of starting up, but not yet ready to accept calls",
            NodeUnreachable,
        ),
        (UNKNOWN, "waiting to start, RPC services not available", NodeUnreachable),
        (UNKNOWN, "wallet locked, unlock it to enable full RPC access", NodeUnreachable),
        (GrpcCode.NOT_FOUND, "payment isn't initiated", PaymentNotInitiated),
        (UNKNOWN, "cltv limit 39 should be greater than 43", PaymentFailed),
        (UNKNOWN, "CLTV delta of 18 must be greater than minimum of 24", LightningError),
        (UNKNOWN, "verification failed: signature mismatch", LightningError),
    ],
)
def test_gateway_errors_map_to_their_type(
    code: int, message: str, expected: type[LightningError]
) -> None:
    error = map_lnd_error(GatewayError(code, message, 500))

    assert type(error) is expected
    assert error.node_message == message


def test_wrapped_lnd_messages_still_map() -> None:
    error = map_lnd_error(GatewayError(UNKNOWN, "unable to settle: invoice already canceled"))

    assert isinstance(error, WrongInvoiceState)


def test_a_route_lnd_does_not_serve_is_not_a_missing_invoice() -> None:
    error = map_lnd_error(GatewayError(GrpcCode.NOT_FOUND, "Not Found", 404))

    assert type(error) is LightningError
    assert "invoicesrpc" in str(error)


def test_a_body_without_an_error_object_reads_as_unreachable() -> None:
    error = map_lnd_error(GatewayError(None, "<html>bad gateway</html>", 502))

    assert isinstance(error, NodeUnreachable)


def test_transport_failures_are_unreachable() -> None:
    request = httpx.Request("GET", "https://127.0.0.1:1/v1/getinfo")

    for failure in (
        httpx.ConnectError("connection refused", request=request),
        httpx.ReadTimeout("timed out", request=request),
        httpx.RemoteProtocolError("peer closed connection", request=request),
    ):
        assert isinstance(map_lnd_error(failure), NodeUnreachable)


def test_a_failed_payment_carries_lnd_s_reason() -> None:
    error = map_lnd_error(FailedPayment("ab" * 32, "FAILURE_REASON_NO_ROUTE"))

    assert isinstance(error, PaymentFailed)
    assert error.reason == "FAILURE_REASON_NO_ROUTE"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_invoice_json_lists_only_htlcs_that_hold_or_paid() -> None:
    payment_hash = bytes(range(32))
    invoice = {
        "r_hash": _b64(payment_hash),
        "state": "ACCEPTED",
        "value_msat": "150000000",
        "amt_paid_msat": "150000000",
        "payment_request": "lnbcrt1500u1...",
        "htlcs": [
            {
                "state": "CANCELED",
                "amt_msat": "150000000",
                "accept_height": 90,
                "expiry_height": 133,
            },
            {
                "state": "ACCEPTED",
                "amt_msat": "150000000",
                "accept_height": 100,
                "expiry_height": 143,
            },
        ],
    }

    status = invoice_status_from_lnd(invoice)

    assert status.payment_hash == payment_hash
    assert status.state is InvoiceState.ACCEPTED
    assert (status.amount_msat, status.amount_paid_msat) == (150_000_000, 150_000_000)
    assert [(h.accept_height, h.expiry_height) for h in status.htlcs] == [(100, 143)]
    assert status.accepted_htlc_expiry_height == 143
    assert status.payment_request == "lnbcrt1500u1..."


def test_payment_json_keeps_the_preimage_only_when_succeeded() -> None:
    base = {"payment_hash": "aa" * 32, "value_msat": "1000", "fee_msat": "7"}

    succeeded = payment_result_from_lnd(
        base | {"status": "SUCCEEDED", "payment_preimage": "bb" * 32}
    )
    failed = payment_result_from_lnd(
        base | {"status": "FAILED", "payment_preimage": "00" * 32, "failure_reason": "X"}
    )
    initiated = payment_result_from_lnd(base | {"status": "INITIATED"})

    assert (succeeded.status, succeeded.preimage, succeeded.fee_msat) == (
        PaymentStatus.SUCCEEDED,
        bytes.fromhex("bb" * 32),
        7,
    )
    assert (failed.status, failed.preimage, failed.failure_reason) == (
        PaymentStatus.FAILED,
        None,
        "X",
    )
    assert initiated.status is PaymentStatus.IN_FLIGHT


def test_path_and_body_encodings_round_trip() -> None:
    data = bytes([0xFB, 0xFF, 0xFE]) * 11  # bytes whose base64 needs '+' and '/'

    assert "+" not in b64url(data) and "/" not in b64url(data)
    assert from_b64(_b64(data)) == data
    assert from_b64(b64url(data)) == data


def test_the_rest_client_does_no_io_until_used_and_hides_nothing_in_repr() -> None:
    rest = LndRest("https://127.0.0.1:1", "/nonexistent/tls.cert", "/nonexistent/admin.macaroon")

    assert repr(rest) == "LndRest('https://127.0.0.1:1')"


async def test_missing_credentials_are_reported_with_their_path() -> None:
    rest = LndRest("https://127.0.0.1:1", "/nonexistent/tls.cert", "/nonexistent/admin.macaroon")

    with pytest.raises(LightningError, match=r"/nonexistent/tls\.cert"):
        await rest.call("GET", "/v1/getinfo")


def _lnd_channel(
    *,
    active: bool,
    local_sat: int,
    remote_sat: int,
    incoming_htlcs: int = 0,
    outgoing_htlcs: int = 0,
    remote_max_htlcs: int = 483,
    local_max_htlcs: int = 483,
    reserve_sat: int = 100_000,
) -> dict[str, object]:
    """One ``lnrpc.Channel`` as ``GET /v1/channels`` sends it (64-bit integers as strings)."""

    def constraints(max_htlcs: int) -> dict[str, object]:
        return {
            "csv_delay": 1201,
            "chan_reserve_sat": str(reserve_sat),
            "dust_limit_sat": "354",
            "max_pending_amt_msat": "9900000000",
            "min_htlc_msat": "1",
            "max_accepted_htlcs": max_htlcs,
        }

    htlc = {"amount": "150000", "hash_lock": "", "expiration_height": 500, "htlc_index": "0"}
    return {
        "active": active,
        "remote_pubkey": "02" + "11" * 32,
        "capacity": "10000000",
        "local_balance": str(local_sat),
        "remote_balance": str(remote_sat),
        "commit_fee": "285",
        "pending_htlcs": [{**htlc, "incoming": True}] * incoming_htlcs
        + [{**htlc, "incoming": False}] * outgoing_htlcs,
        "local_chan_reserve_sat": str(reserve_sat),
        "remote_chan_reserve_sat": str(reserve_sat),
        "local_constraints": constraints(local_max_htlcs),
        "remote_constraints": constraints(remote_max_htlcs),
    }


def test_channels_json_sums_active_channels_net_of_reserves_and_incoming_htlcs() -> None:
    channels = [
        # Holds two incoming HTLCs; the peer may add at most 5 (remote_constraints).
        _lnd_channel(
            active=True,
            local_sat=1_001_001,
            remote_sat=8_698_054,
            incoming_htlcs=2,
            remote_max_htlcs=5,
        ),
        # One outgoing HTLC takes no incoming slot; our own limit (local) is not ours to use.
        _lnd_channel(
            active=True,
            local_sat=8_998_056,
            remote_sat=1_001_000,
            outgoing_htlcs=1,
            local_max_htlcs=7,
        ),
        # The peer is below its reserve: nothing to receive, never a negative figure.
        _lnd_channel(active=True, local_sat=9_900_000, remote_sat=50_000),
        # Inactive: however large, it counts for nothing.
        _lnd_channel(active=False, local_sat=5_000_000, remote_sat=9_000_000),
    ]

    capacity = capacity_from_lnd(channels)

    assert capacity.inbound_msat == (8_598_054 + 901_000) * 1000
    assert capacity.largest_inbound_msat == 8_598_054 * 1000
    assert capacity.outbound_msat == (901_001 + 8_898_056 + 9_800_000) * 1000
    assert capacity.htlc_slots_max == 5 + 483 + 483
    assert capacity.htlc_slots_free == 3 + 483 + 483


def test_no_active_channel_is_no_capacity() -> None:
    inactive = _lnd_channel(active=False, local_sat=5_000_000, remote_sat=5_000_000)

    assert capacity_from_lnd([inactive]) == NodeCapacity(0, 0, 0, 0, 0)
    assert capacity_from_lnd([]) == NodeCapacity(0, 0, 0, 0, 0)
