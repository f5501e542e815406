"""The operator's published terms state the largest hold window of the backend in use, in
blocks and in seconds (the cap less the node's own auto-cancel margin), the node's limits, and
when a renewal opens; a task the
terms cannot cover even renewed is refused naming the limit."""

from __future__ import annotations

import time
from typing import Any

import pytest
from support.stacks import Stack

from taskhold.client import TaskholdAPIError


async def test_the_terms_state_the_hold_window_and_the_renewal_lead(stack: Stack) -> None:
    settings = stack.settings
    terms = (await stack.client().info())["renewal"]
    blocks = settings.max_cltv_expiry_delta - settings.hold_expiry_delta
    assert terms["hold_window"] == {
        settings.lightning: {"blocks": blocks, "seconds": blocks * settings.block_time_s}
    }
    assert terms["node_limits"] == {
        "backend": settings.lightning,
        "auto_cancel_blocks": settings.hold_expiry_delta,
        "min_cltv_expiry_delta": settings.min_cltv_expiry_delta,
        "max_cltv_expiry_delta": settings.max_cltv_expiry_delta,
    }
    assert terms["renewal_lead_blocks"] == settings.renewal_lead_blocks
    assert terms["renewal_lead_s"] == settings.renewal_lead_blocks * settings.block_time_s
    assert terms["max_task_duration_s"] == settings.max_task_duration_s == 30 * 86_400


async def test_a_task_within_one_hold_needs_no_renewal_and_a_longer_one_does(
    stack: Stack,
) -> None:
    employer = stack.client()
    short = await employer.create_task("short", "", 100_000, int(time.time()) + 3600)
    long = await employer.create_task("long", "", 100_000, int(time.time()) + 10 * 86_400)
    assert (short["renewal_needed"], long["renewal_needed"]) == (False, True)
    assert short["renewal"] is None


async def test_past_the_longest_renewed_task_the_refusal_names_the_limit(
    open_custom: Any,
) -> None:
    stack: Stack = await open_custom(max_task_duration_s=5 * 86_400)
    with pytest.raises(TaskholdAPIError) as refused:
        await stack.client().create_task("long", "", 100_000, int(time.time()) + 6 * 86_400)
    assert (refused.value.status, refused.value.code) == (422, "task_too_long")
    assert "432000" in refused.value.detail
