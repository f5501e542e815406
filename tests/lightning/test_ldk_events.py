"""The LDK backend's event handling, against a stand-in node: which arriving HTLCs it holds.

An HTLC is held (the invoice turns ACCEPTED) only for an OPEN hold invoice of this backend, for
at least the invoice's amount, expiring no sooner than the invoice's final delta asks. Anything
else is failed back at once, so a payer can neither lock an HTLC against a dead or foreign
invoice nor make the operator hold a short or partial one. A replayed event (after a restart)
changes nothing. The real node's side of each case is in ``test_ldk_backend.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from taskhold.lightning.base import InvoiceState, NodeUnreachable
from taskhold.lightning.ldk import HTLC_FAIL_BACK_BUFFER, LdkBackend
from taskhold.lightning.ldk_holds import HoldRecord, HoldRecords
from taskhold.lightning.ldk_module import PATCHED_RECEIVE

AMOUNT_MSAT = 50_000
DELTA = 100
HEIGHT = 500


@dataclass
class PaymentClaimable:
    payment_hash: str
    claimable_amount_msat: int
    claim_deadline: int | None
    payment_id: str = ""
    custom_records: list[Any] = field(default_factory=list)


@dataclass
class PaymentReceived:
    payment_hash: str
    amount_msat: int = AMOUNT_MSAT


class Bolt11Payment:
    def __init__(self) -> None:
        self.failed: list[str] = []
        self.claimed: list[str] = []

    def fail_for_hash(self, payment_hash: str) -> None:
        self.failed.append(payment_hash)

    def claim_for_hash(self, payment_hash: str, amount_msat: int, preimage: str) -> None:
        self.claimed.append(payment_hash)  # queued; only PaymentReceived says it happened


setattr(Bolt11Payment, PATCHED_RECEIVE, lambda self, *args: None)


class Node:
    def __init__(self) -> None:
        self.payments = Bolt11Payment()

    def bolt11_payment(self) -> Bolt11Payment:
        return self.payments

    def list_channels(self) -> list[Any]:
        return []

    def status(self) -> Any:
        return SimpleNamespace(current_best_block=SimpleNamespace(height=HEIGHT))


MODULE: Any = SimpleNamespace(
    Bolt11Payment=Bolt11Payment,
    Event=SimpleNamespace(
        PAYMENT_CLAIMABLE=PaymentClaimable,
        PAYMENT_RECEIVED=PaymentReceived,
        PAYMENT_FAILED=type("PaymentFailed", (), {}),
        PAYMENT_SUCCESSFUL=type("PaymentSuccessful", (), {}),
    ),
)


@pytest.fixture
async def backend(tmp_path: Path) -> Any:
    backend = LdkBackend(Node(), MODULE, HoldRecords(tmp_path), claim_seconds=0.5)
    yield backend
    backend._records.close()


def _open_invoice(backend: LdkBackend, preimage: bytes | None = None) -> bytes:
    payment_hash = hashlib.sha256(preimage or os.urandom(32)).digest()
    backend._records.add(
        HoldRecord(
            payment_hash=payment_hash,
            payment_request="lnbcrt...",
            amount_msat=AMOUNT_MSAT,
            cltv_expiry_delta=DELTA,
            expiry_seconds=3600,
            created_at=0,
        )
    )
    return payment_hash


def _arrives(
    backend: LdkBackend,
    payment_hash: bytes,
    *,
    amount_msat: int = AMOUNT_MSAT,
    expiry_height: int | None = HEIGHT + DELTA + 3,
) -> None:
    deadline = None if expiry_height is None else expiry_height - HTLC_FAIL_BACK_BUFFER
    backend._handle(PaymentClaimable(payment_hash.hex(), amount_msat, deadline))


def _failed(backend: LdkBackend) -> list[str]:
    return backend._node.bolt11_payment().failed  # type: ignore[no-any-return]


async def test_an_htlc_for_an_open_invoice_is_held_with_its_heights(backend: LdkBackend) -> None:
    payment_hash = _open_invoice(backend)

    _arrives(backend, payment_hash)

    record = backend._records.get(payment_hash)
    assert record is not None and record.state is InvoiceState.ACCEPTED
    assert (record.amount_paid_msat, record.accept_height, record.expiry_height) == (
        AMOUNT_MSAT,
        HEIGHT,
        HEIGHT + DELTA + 3,
    )
    assert _failed(backend) == []


async def test_a_replayed_event_changes_nothing(backend: LdkBackend) -> None:
    payment_hash = _open_invoice(backend)
    _arrives(backend, payment_hash)
    held = backend._records.get(payment_hash)

    _arrives(backend, payment_hash, expiry_height=HEIGHT + DELTA + 50)

    assert backend._records.get(payment_hash) == held
    assert _failed(backend) == []


@pytest.mark.parametrize(
    ("case", "amount_msat", "expiry_height"),
    [
        ("underpaid", AMOUNT_MSAT - 1, HEIGHT + DELTA + 3),
        ("expires sooner than the invoice's delta", AMOUNT_MSAT, HEIGHT + DELTA - 1),
        ("no claim deadline", AMOUNT_MSAT, None),
    ],
)
async def test_a_short_or_partial_htlc_is_failed_back_and_the_invoice_stays_open(
    backend: LdkBackend, case: str, amount_msat: int, expiry_height: int | None
) -> None:
    payment_hash = _open_invoice(backend)

    _arrives(backend, payment_hash, amount_msat=amount_msat, expiry_height=expiry_height)

    assert _failed(backend) == [payment_hash.hex()], case
    record = backend._records.get(payment_hash)
    assert record is not None and record.state is InvoiceState.OPEN


@pytest.mark.parametrize("state", [InvoiceState.CANCELED, InvoiceState.SETTLED])
async def test_an_htlc_for_a_finished_invoice_is_failed_back(
    backend: LdkBackend, state: InvoiceState
) -> None:
    payment_hash = _open_invoice(backend)
    record = backend._records.get(payment_hash)
    assert record is not None
    backend._records.save(record.with_state(state), if_state=(InvoiceState.OPEN,))

    _arrives(backend, payment_hash)

    assert _failed(backend) == [payment_hash.hex()]
    assert (again := backend._records.get(payment_hash)) is not None and again.state is state


async def test_an_htlc_for_a_hash_this_backend_never_issued_is_failed_back(
    backend: LdkBackend,
) -> None:
    stranger = hashlib.sha256(os.urandom(32)).digest()

    _arrives(backend, stranger)

    assert _failed(backend) == [stranger.hex()]
    assert backend._records.get(stranger) is None


async def test_a_claim_ldk_never_confirms_is_not_reported_settled(backend: LdkBackend) -> None:
    """LDK queues a claim it cannot make without an error: only ``PaymentReceived`` settles."""
    preimage = os.urandom(32)
    payment_hash = _open_invoice(backend, preimage)
    _arrives(backend, payment_hash)

    with pytest.raises(NodeUnreachable, match="not confirmed the claim"):
        await backend.settle_invoice(preimage)

    assert backend._node.bolt11_payment().claimed == [payment_hash.hex()]
    assert (await backend.lookup_invoice(payment_hash)).state is InvoiceState.ACCEPTED


async def test_settling_returns_once_ldk_reports_the_payment_received(backend: LdkBackend) -> None:
    preimage = os.urandom(32)
    payment_hash = _open_invoice(backend, preimage)
    _arrives(backend, payment_hash)
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, backend._handle, PaymentReceived(payment_hash.hex()))

    await backend.settle_invoice(preimage)

    assert (await backend.lookup_invoice(payment_hash)).state is InvoiceState.SETTLED


def test_the_first_change_of_a_pending_invoice_wins(tmp_path: Path) -> None:
    records = HoldRecords(tmp_path)
    payment_hash = hashlib.sha256(b"race").digest()
    opened = HoldRecord(payment_hash, "lnbcrt...", AMOUNT_MSAT, DELTA, 3600, 0)
    records.add(opened)
    assert records.save(opened.with_state(InvoiceState.CANCELED), if_state=(InvoiceState.OPEN,))

    held = records.save(opened.with_state(InvoiceState.ACCEPTED), if_state=(InvoiceState.OPEN,))

    assert held is False
    assert (record := records.get(payment_hash)) is not None
    assert record.state is InvoiceState.CANCELED
    records.close()
