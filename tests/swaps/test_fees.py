"""Swap fees computed by the client: Boltz's documented examples, rounding, and the check that
refuses a server stating a different amount."""

from __future__ import annotations

from decimal import Decimal

import pytest

from taskhold.swaps.errors import SwapError, SwapMismatch
from taskhold.swaps.fees import (
    check_limits,
    check_stated_amount,
    percentage_fee,
    reverse_invoice_for_onchain,
    reverse_quote,
    submarine_quote,
)


def test_a_server_stating_one_sat_more_than_the_published_fees_is_refused() -> None:
    quote = submarine_quote(100_000, Decimal("0.1"), 4_379)
    with pytest.raises(SwapMismatch, match=r"expectedAmount = 104480 .* give 104479"):
        check_stated_amount(quote, 104_480, "expectedAmount")
    reverse = reverse_quote(100_000, Decimal("0.5"), 2_772)
    with pytest.raises(SwapMismatch, match="onchainAmount = 96727"):
        check_stated_amount(reverse, 96_727, "onchainAmount")


def test_boltz_docs_submarine_example() -> None:
    quote = submarine_quote(100_000, Decimal("0.1"), 4_379)
    assert (quote.payer_sends, quote.recipient_gets) == (104_479, 100_000)
    assert (quote.swap_fee, quote.miner_fees, quote.stated_amount) == (100, 4_379, 104_479)
    check_stated_amount(quote, 104_479, "expectedAmount")


def test_boltz_docs_reverse_example() -> None:
    quote = reverse_quote(100_000, Decimal("0.5"), 2_772)
    assert (quote.payer_sends, quote.stated_amount, quote.swap_fee) == (100_000, 96_728, 500)
    check_stated_amount(quote, 96_728, "onchainAmount")


def test_the_reverse_claim_fee_comes_out_of_what_lands() -> None:
    quote = reverse_quote(100_000, Decimal("0.5"), 2_772, claim_fee=1_998)
    assert quote.stated_amount == 96_728
    assert quote.recipient_gets == 96_728 - 1_998
    assert quote.miner_fees == 2_772 + 1_998


@pytest.mark.parametrize("amount", [1, 999, 1_001, 50_000, 123_457, 25_000_000])
def test_percentage_fees_round_up_and_the_figures_add_up(amount: int) -> None:
    for pct in (Decimal("0.1"), Decimal("0.25"), Decimal("0.5")):
        fee = percentage_fee(amount, pct)
        assert fee * 100 >= amount * pct > (fee - 1) * 100
        sub = submarine_quote(amount, pct, 4_379)
        assert sub.payer_sends - sub.recipient_gets == sub.swap_fee + sub.miner_fees
        if amount > 10_000:
            rev = reverse_quote(amount, pct, 2_772, 1_998)
            assert rev.payer_sends - rev.recipient_gets == rev.swap_fee + rev.miner_fees


def test_the_inverse_gives_the_docs_invoice_back() -> None:
    assert reverse_invoice_for_onchain(96_728, Decimal("0.5"), 2_772) == 100_000


@pytest.mark.parametrize("onchain", [50_000, 77_777, 96_728, 1_000_001])
def test_the_inverse_invoice_locks_at_least_the_wanted_amount(onchain: int) -> None:
    invoice = reverse_invoice_for_onchain(onchain, Decimal("0.5"), 2_772)
    assert reverse_quote(invoice, Decimal("0.5"), 2_772).stated_amount >= onchain
    assert reverse_quote(invoice - 1, Decimal("0.5"), 2_772).stated_amount < onchain


@pytest.mark.parametrize(
    ("amount", "pct", "fee"),
    [(0, "0.1", 10), (-5, "0.1", 10), (1000, "-0.1", 10), (1000, "100", 10), (1000, "0.1", -1)],
)
def test_nonsense_inputs_are_refused(amount: int, pct: str, fee: int) -> None:
    with pytest.raises(SwapError):
        submarine_quote(amount, Decimal(pct), fee)


def test_a_reverse_swap_that_leaves_nothing_is_refused() -> None:
    with pytest.raises(SwapError, match="leaves nothing"):
        reverse_quote(3_000, Decimal("0.5"), 2_772, claim_fee=1_998)


@pytest.mark.parametrize("amount", [49_999, 25_000_001])
def test_an_amount_outside_the_pair_limits_is_refused_naming_them(amount: int) -> None:
    with pytest.raises(SwapError, match=rf"{amount} sat is outside .* \(50000 to 25000000 sat\)"):
        check_limits(amount, minimal=50_000, maximal=25_000_000)


def test_the_limits_themselves_are_allowed() -> None:
    check_limits(50_000, minimal=50_000, maximal=25_000_000)
    check_limits(25_000_000, minimal=50_000, maximal=25_000_000)
