"""Swap timing: a swap whose clocks cannot fit the hold invoice, the task or the payout bound is
refused with every number named, before any coins move."""

from __future__ import annotations

from typing import Any

import pytest

from taskhold.settings import Settings
from taskhold.swaps.errors import SwapTimingError
from taskhold.swaps.timing import check_reverse_fits, check_submarine_fits, submarine_cltv_limit

HEIGHT = 800_000


def submarine(**changes: Any) -> dict[str, Any]:
    settings = Settings()
    facts: dict[str, Any] = {
        "timeout_block_height": HEIGHT + 1_008,  # Boltz's taproot default: a week
        "height": HEIGHT,
        "invoice_cltv_expiry_delta": 300,
        "invoice_expiry_s": 3_600,
        "hold_seconds": 24 * 3_600,  # 144 blocks
        "hold_expiry_delta": settings.hold_expiry_delta,
        "guardian_margin_blocks": settings.guardian_margin_blocks,
        "block_time_s": settings.block_time_s,
    }
    return {**facts, **changes}


def reverse(**changes: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "invoice_min_final_cltv": 80,
        "route_cltv": 40,
        "payout_cltv_limit": Settings().payout_cltv_reserve_blocks,
        "timeout_block_height": HEIGHT + 144,
        "height": HEIGHT,
        "claim_blocks": 24,
        "invoice_expiry_s": 3_600,
        "min_invoice_validity_s": Settings().payout_min_validity_s,
    }
    return {**facts, **changes}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"invoice_cltv_expiry_delta": 989}, "exceeds the swap's cltvLimit"),
        ({"timeout_block_height": HEIGHT + 200}, "exceeds the swap's cltvLimit"),
        ({"timeout_block_height": HEIGHT}, "already passed"),
        ({"hold_seconds": 283 * 600}, "expire before the task's deadline"),
        ({"invoice_expiry_s": 1_199}, "at least 1200 s"),
    ],
)
def test_a_submarine_swap_that_cannot_fit_is_refused_naming_the_numbers(
    changes: dict[str, Any], problem: str
) -> None:
    facts = submarine(**changes)
    with pytest.raises(SwapTimingError, match=problem) as caught:
        check_submarine_fits(**facts)
    for name, value in facts.items():
        assert f"{name}={value}" in str(caught.value)
    assert "cltv_limit=" in str(caught.value)


def test_a_submarine_swap_that_fits_passes_at_the_edges() -> None:
    check_submarine_fits(**submarine())
    check_submarine_fits(**submarine(invoice_cltv_expiry_delta=988, hold_seconds=969 * 600))
    check_submarine_fits(**submarine(hold_seconds=281 * 600, invoice_expiry_s=1_200))


def test_boltz_cltv_limit_is_the_blocks_left_less_twenty() -> None:
    assert submarine_cltv_limit(HEIGHT + 1_008, HEIGHT) == 988


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"invoice_min_final_cltv": 105}, "exceed taskhold's payout bound"),
        ({"route_cltv": 65}, "exceed taskhold's payout bound"),
        ({"timeout_block_height": HEIGHT + 23}, "too little time to claim"),
        ({"invoice_expiry_s": 599}, "expire before the payout"),
    ],
)
def test_a_reverse_swap_that_cannot_fit_is_refused_naming_the_numbers(
    changes: dict[str, Any], problem: str
) -> None:
    facts = reverse(**changes)
    with pytest.raises(SwapTimingError, match=problem) as caught:
        check_reverse_fits(**facts)
    for name, value in facts.items():
        assert f"{name}={value}" in str(caught.value)


def test_a_reverse_swap_that_fits_passes_at_the_edges() -> None:
    check_reverse_fits(**reverse())
    check_reverse_fits(**reverse(route_cltv=64, timeout_block_height=HEIGHT + 24))
