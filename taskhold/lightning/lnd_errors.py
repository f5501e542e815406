"""lnd failures turned into taskhold's typed Lightning errors, in one function.

Everything that can go wrong talking to lnd arrives as one of three things: the HTTP transport
fails (:class:`httpx.TransportError`), lnd's gRPC gateway answers with an error object
(:class:`GatewayError`: a gRPC ``code`` and a ``message``), or a payment ends ``FAILED``
(:class:`FailedPayment`). :func:`map_lnd_error` is the only place that turns them into
:mod:`taskhold.lightning.base` exceptions.

lnd gives most invoice errors the generic gRPC code ``Unknown`` (2); the only signal is the text of
the Go error value it returned. Those texts are lnd's exported error constants
(``invoices/errors.go``, ``payments/db/errors.go`` at v0.21.2-beta), so they are matched here and
nowhere else, and a unit test pins every entry of the tables below.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import httpx

from taskhold.lightning.base import (
    AlreadyExists,
    InvoiceNotFound,
    LightningError,
    NodeUnreachable,
    PaymentFailed,
    WrongInvoiceState,
)

__all__ = [
    "FailedPayment",
    "GatewayError",
    "GrpcCode",
    "PaymentNotInitiated",
    "map_lnd_error",
]


class GrpcCode(enum.IntEnum):
    """The gRPC status codes lnd's REST gateway reports in an error's ``code`` field."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


@dataclass(frozen=True, slots=True)
class GatewayError:
    """An error object from lnd's REST gateway: ``{"code": 2, "message": "...", "details": []}``.

    ``code`` is ``None`` when the body was not the gateway's JSON (a proxy page, a crash).
    """

    code: int | None
    message: str
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class FailedPayment:
    """A payment lnd reports as ``FAILED``, with its ``failure_reason`` (``FAILURE_REASON_*``)."""

    payment_hash_hex: str
    failure_reason: str


class PaymentNotInitiated(LightningError):
    """lnd never attempted a payment with this hash. Internal: :mod:`lnd` turns it into UNKNOWN."""


# lnd error texts (code Unknown) -> error class. Matched as substrings, since callers up the
# stack sometimes wrap them ("...: unable to locate invoice").
_INVOICE_NOT_FOUND = ("unable to locate invoice", "there are no existing invoices")
_DUPLICATE = (
    "invoice with payment hash already exists",
    "invoice with payemnt addr already exists",  # sic, lnd's spelling
)
_WRONG_STATE = (
    "invoice already settled",
    "invoice already canceled",
    "invoice not canceled",
    "invoice already accepted",
    "invoice still open",
    "cannot move invoice to open",
    "cannot accept invoice",
)
_NOT_READY = (  # rpcperms/interceptor.go: lnd is starting or its wallet is not unlocked yet
    "the RPC server is in the process of starting up",
    "waiting to start, RPC services not available",
    "wallet locked, unlock it",
    "is still in the process of starting",
)
# Sent by grpc-gateway itself (code NotFound) when no handler serves the route, e.g. an lnd built
# without the invoicesrpc tag. It must not read as "no such invoice".
_ROUTE_NOT_FOUND = "Not Found"
_CLTV_LIMIT_TOO_LOW = ("cltv limit", "should be greater than")
"""lnd's ``routing.ValidateCLTVLimit``: "cltv limit X should be greater than Y"."""
NO_ROUTE = "FAILURE_REASON_NO_ROUTE"


def map_lnd_error(failure: httpx.TransportError | GatewayError | FailedPayment) -> LightningError:
    """The one mapping from an lnd failure to a typed :class:`LightningError`.

    The node's own words are kept in ``node_message``; the macaroon never appears because
    neither httpx's transport errors nor lnd's error objects contain request headers.
    """
    if isinstance(failure, httpx.TransportError):
        detail = str(failure) or type(failure).__name__
        return NodeUnreachable(f"lnd unreachable: {detail}", node_message=None)
    if isinstance(failure, FailedPayment):
        return PaymentFailed(
            f"payment {failure.payment_hash_hex} failed: {failure.failure_reason}",
            reason=failure.failure_reason,
            node_message=failure.failure_reason,
        )
    message, code = failure.message, failure.code
    said = f"lnd: {message}"
    if code is None:
        return NodeUnreachable(
            f"lnd answered HTTP {failure.http_status} without an error object", node_message=message
        )
    if code == GrpcCode.NOT_FOUND and message == _ROUTE_NOT_FOUND:
        return LightningError(
            "lnd does not serve this REST route (built without the invoicesrpc tag?)",
            node_message=message,
        )
    if code == GrpcCode.NOT_FOUND and "payment isn't initiated" in message:
        return PaymentNotInitiated(said, node_message=message)
    if code == GrpcCode.UNAVAILABLE or any(text in message for text in _NOT_READY):
        return NodeUnreachable(said, node_message=message)
    if code == GrpcCode.NOT_FOUND or any(text in message for text in _INVOICE_NOT_FOUND):
        return InvoiceNotFound(said, node_message=message)
    if code == GrpcCode.ALREADY_EXISTS or any(text in message for text in _DUPLICATE):
        # SendPaymentV2 answers AlreadyExists for "invoice is already paid", "payment is in
        # transition" and "payment already exists": the hash was paid or is being paid.
        return AlreadyExists(said, node_message=message)
    if any(text in message for text in _WRONG_STATE):
        return WrongInvoiceState(said, node_message=message)
    if all(text in message for text in _CLTV_LIMIT_TOO_LOW):
        # SendPaymentV2 refuses a cltv_limit the invoice's final CLTV does not fit in: no route
        # can exist, and nothing was sent (lnd records no payment).
        return PaymentFailed(said, reason=NO_ROUTE, node_message=message)
    return LightningError(said, node_message=message)
