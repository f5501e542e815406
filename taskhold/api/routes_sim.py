"""Wallet routes for the Lightning simulator, mounted only when taskhold runs on it and
``sim_routes_enabled`` is set (``serve --sim-routes``; the demo sets it).

They stand in for the employer's and the worker's own wallets so the embedded demo and anyone
trying taskhold without Lightning nodes can fund tasks and make payout invoices.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from taskhold.errors import Invalid, NotFound, RefusalCode
from taskhold.payments.invoices import decode_invoice

from .deps import services_of
from .schemas import InvoiceAnswer, MineAnswer, PayAnswer, WalletBalances, problem_responses

__all__ = ["router"]

router = APIRouter(prefix="/v1/sim", tags=["simulator"])

Wallet = Literal["employer", "worker"]
_PROBLEMS = problem_responses(404, 422, 429, 503)


class PayBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    payment_request: str = Field(min_length=1, max_length=4000)
    wallet: Wallet = "employer"
    amount_msat: int | None = Field(default=None, gt=0)
    """Send this much instead of the invoice's amount, as a payer's node may (tests, demos)."""


class InvoiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount_msat: int = Field(gt=0)
    wallet: Wallet = "worker"
    memo: str = Field(default="", max_length=200)
    expiry_seconds: int = Field(default=86_400, gt=0, le=7 * 86_400)


class MineBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    blocks: int = Field(default=1, ge=1, le=1000)


def _sim(request: Request) -> Any:
    sim = services_of(request).sim
    if sim is None:
        raise NotFound("the simulator wallets exist only when taskhold runs on the simulator")
    return sim


@router.post(
    "/pay",
    summary="Pay an invoice from a simulated wallet (returns once held)",
    response_model=None,
    responses={200: {"model": PayAnswer}, **_PROBLEMS},
)
async def pay(request: Request, body: PayBody) -> dict[str, Any]:
    sim = _sim(request)
    wallet = sim.wallet(body.wallet)
    invoice = decode_invoice(body.payment_request, field="payment_request")
    if invoice.network != wallet.network or invoice.amount_msat is None:
        raise Invalid(
            f"payment_request must be an invoice with an amount on {wallet.network!r}",
            code=RefusalCode.BAD_INVOICE,
        )
    result = await wallet.send_payment(body.payment_request, amount_msat=body.amount_msat)
    if result.status.value == "FAILED":
        raise Invalid(
            f"the payment failed: {result.failure_reason}", code=RefusalCode.PAYMENT_FAILED
        )
    return {"status": result.status.value, "payment_hash": result.payment_hash.hex()}


@router.post(
    "/invoice",
    summary="Make an invoice in a simulated wallet",
    response_model=None,
    responses={200: {"model": InvoiceAnswer}, **_PROBLEMS},
)
async def invoice(request: Request, body: InvoiceBody) -> dict[str, Any]:
    node = _sim(request).wallet(body.wallet)
    payment_request = await node.create_invoice(
        body.amount_msat, memo=body.memo, expiry_seconds=body.expiry_seconds
    )
    return {"payment_request": payment_request}


@router.post(
    "/mine",
    summary="Advance the simulated chain",
    response_model=None,
    responses={200: {"model": MineAnswer}, **_PROBLEMS},
)
async def mine(request: Request, body: MineBody) -> dict[str, Any]:
    sim = _sim(request)
    await sim.network.mine(body.blocks)
    return {"height": sim.network.height}


@router.get(
    "/wallets",
    summary="Simulated balances",
    response_model=None,
    responses={200: {"model": WalletBalances}, **_PROBLEMS},
)
async def wallets(request: Request) -> dict[str, Any]:
    sim = _sim(request)
    return {
        "height": sim.network.height,
        "balances_msat": {name: node.balance_msat for name, node in sim.nodes().items()},
    }
