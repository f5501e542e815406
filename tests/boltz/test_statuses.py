"""The client's status sets against Boltz's published SwapUpdateEvent values and lists."""

from __future__ import annotations

import json
from pathlib import Path

from taskhold.boltz import statuses as s

EVENTS = json.loads((Path(__file__).parent / "api_shapes.json").read_text())["swap_update_events"]


def test_every_status_the_client_knows_is_a_published_value() -> None:
    known = s.SUBMARINE_STATUSES | s.REVERSE_STATUSES
    assert known <= set(EVENTS["values"])
    constants = {v for k, v in vars(s).items() if k.isupper() and isinstance(v, str)}
    assert constants == known


def test_submarine_final_statuses_are_boltz_final_events() -> None:
    assert set(EVENTS["final"]) == s.SUBMARINE_FINAL


def test_failures_are_boltz_failed_events_and_successes_end_a_swap() -> None:
    # invoice.expired: Boltz's hold invoice of a reverse swap expired unpaid (docs/lifecycle.md)
    failures = s.SUBMARINE_FAILED | s.REVERSE_FAILED
    assert failures <= set(EVENTS["failed"]) | {s.INVOICE_EXPIRED}
    assert set(EVENTS["success"]) <= s.FINAL
    assert set(EVENTS["success"]).isdisjoint(s.SUBMARINE_FAILED | s.REVERSE_FAILED)


def test_a_lockup_with_the_wrong_amount_fails_but_is_not_final() -> None:
    assert s.TRANSACTION_LOCKUP_FAILED in s.SUBMARINE_FAILED
    assert s.TRANSACTION_LOCKUP_FAILED not in s.FINAL


def test_one_final_set_serves_both_lifecycles() -> None:
    """No status that ends one kind of swap is a step a live swap of the other kind passes."""
    assert s.SUBMARINE_FINAL.isdisjoint(s.REVERSE_STATUSES - s.REVERSE_FINAL)
    assert s.REVERSE_FINAL.isdisjoint(s.SUBMARINE_STATUSES - s.SUBMARINE_FINAL)


def test_cooperative_signatures_are_asked_only_where_boltz_gives_them() -> None:
    refundable, claimable = s.SUBMARINE_REFUNDABLE, s.REVERSE_CLAIMABLE
    assert refundable == {"invoice.failedToPay", "transaction.lockupFailed", "swap.expired"}
    assert claimable == {"transaction.mempool", "transaction.confirmed", "invoice.settled"}
