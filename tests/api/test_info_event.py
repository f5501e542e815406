"""The operator's terms as a signed event: the same document ``GET /v1/info`` serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from support.stacks import close_stack, open_stack, stack_settings, terms_of

from taskhold.api.info import INFO_D, REJECTION_DEFAULTS, publish_info
from taskhold.audit.nip01 import Verdict, verify_event
from taskhold.cli import _settings
from taskhold.store.models import OutboxRow


async def test_the_info_event_is_signed_and_states_the_policies(
    tmp_path: Path, database_url: str
) -> None:
    stack = await open_stack(
        stack_settings(
            tmp_path, database_url, pow_max_bits=12, deposit_pct=7, payout_cltv_reserve_blocks=90
        )
    )
    try:
        event = await publish_info(stack.services)
        served = terms_of(await stack.http.get("/v1/info"))
        async with stack.services.store.transaction() as tx:
            queued = (
                await tx.session.execute(select(OutboxRow).where(OutboxRow.event_id == event["id"]))
            ).scalar_one()
    finally:
        await close_stack(stack)
    assert queued.raw == event
    assert verify_event(event) is Verdict.OK
    assert event["pubkey"] == served["operator_pubkey"]
    assert (event["kind"], event["tags"]) == (stack.settings.kind_checkpoint, [["d", INFO_D]])
    published = json.loads(event["content"])
    assert published == served
    assert published["reputation"]["policy"]["pow_max_bits"] == 12
    assert published["reputation"]["deposits"]["pct_of_amount_at_score_0"] == 7
    payouts = published["payouts"]  # the bounds every payout obeys
    assert "operator fee" in payouts["fee_cap"]
    assert payouts["deposit_max_fee_msat"] == 0
    assert payouts["cltv_reserve_blocks"] == 90
    assert "never cancelled after the worker was paid" in payouts["split"]["fallback"]
    assert "releases a submission that passed the automatic checks" in published["dispute_default"]
    assert published["limits"]["deposit_max_open_per_task"] == 10


async def test_a_restart_within_the_same_second_publishes_the_info_event_once(
    tmp_path: Path, database_url: str
) -> None:
    """serve killed and restarted within a second signs the very same info event: the startup
    must not fail on the copy already queued."""
    stack = await open_stack(stack_settings(tmp_path, database_url))
    try:
        first = await publish_info(stack.services, now=1_900_000_000)
        again = await publish_info(stack.services, now=1_900_000_000)
        async with stack.services.store.transaction() as tx:
            queued = (
                await tx.session.execute(select(OutboxRow).where(OutboxRow.event_id == first["id"]))
            ).scalars()
            assert len(list(queued)) == 1
    finally:
        await close_stack(stack)
    assert again["id"] == first["id"]


async def test_a_plain_taskhold_states_its_rejection_policy(
    tmp_path: Path, database_url: str
) -> None:
    """``serve`` with nothing configured: no arbiter, and rejections that no arbiter backs
    are released to the worker, as the info document says in plain words."""
    stack = await open_stack(stack_settings(tmp_path, database_url))
    try:
        event = await publish_info(stack.services)
        served = terms_of(await stack.http.get("/v1/info"))
    finally:
        await close_stack(stack)
    assert json.loads(event["content"]) == served
    assert (served["arbiters"], served["rejection_policy"]) == ([], "release_unless_ruled")
    assert "released to the worker" in served["rejection_default"]
    assert served["rejection_default"] == REJECTION_DEFAULTS["release_unless_ruled"]


def test_the_arbiter_policy_without_arbiters_is_a_clear_configuration_error() -> None:
    with pytest.raises(typer.BadParameter, match="needs at least one arbiter"):
        _settings(None, None, rejection_policy="arbiter")
    assert _settings(None, None, rejection_policy="arbiter", arbiters=["ab" * 32]).arbiters
