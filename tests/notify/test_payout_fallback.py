"""The on-chain fallback notice (issue #14): when the Lightning payout cannot reach the worker
(no route to their node), a taskhold that offers a swap API tells the worker, once
per failure, and its task view shows the offer; without a swap API, or for any other failure,
nothing on chain is offered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from support.notices import Inbox
from support.stacks import Stack
from support.task_flows import submitted

from taskhold.lightning.sim_records import INCORRECT_PAYMENT_DETAILS, INSUFFICIENT_BALANCE, NO_ROUTE
from taskhold.nostr import NostrKeys
from taskhold.settings import Settings

SWAP_API = "https://boltz.example/v2"


async def _payout_fails(
    stack: Stack, keys: dict[str, NostrKeys], reason: str, times: int = 1
) -> tuple[dict[str, Any], Inbox]:
    """A verified task whose first payout attempt fails with ``reason`` (the next ``times``
    attempts will); the inbox has seen everything before the failure."""
    employer, worker = stack.client(keys["employer"]), stack.client(keys["worker"])
    task = await submitted(stack, employer, worker)
    inbox = Inbox(stack, keys)
    await inbox.new()
    stack.world.network.fail_next_payments(times, reason=reason)
    await employer.approve(task["task_id"])
    await stack.run_pass()
    failed = await employer.get_task(task["task_id"])
    assert (failed["state"], failed["payout_failures"]) == ("VERIFIED", 1)
    assert failed["last_payout_failure"] == reason
    return failed, inbox


async def test_an_unroutable_payout_offers_the_worker_an_on_chain_payout(
    open_custom: Any, keys: dict[str, NostrKeys]
) -> None:
    stack: Stack = await open_custom(swap_api_url=SWAP_API)
    task, inbox = await _payout_fails(stack, keys, NO_ROUTE, times=2)
    task_id = task["task_id"]
    assert await inbox.new() == {
        ("worker", "send_payout_invoice", task_id),
        ("worker", "payout_on_chain", task_id),
    }
    offer = {"on_chain": True, "swap_api": SWAP_API, "payout_msat": task["payout_msat"]}
    assert task["payout_fallback"] == {**offer, "reason": NO_ROUTE}
    stranger_view = await stack.client().get_task(task_id)  # public: it carries no secret
    assert stranger_view["payout_fallback"] == task["payout_fallback"]
    assert (await stack.client().info())["swap_api"] == SWAP_API

    # another entry while the same failure stands tells nobody again
    employer = stack.client(keys["employer"])
    await employer.report_swap(task_id, role="funding", swap_id="f1", swap_api=SWAP_API)
    assert await inbox.new() == set()

    # the next failure round is told again
    stack.services.engine._retry_at.clear()
    await stack.run_pass()
    assert (await employer.get_task(task_id))["payout_failures"] == 2
    assert await inbox.new() == {
        ("worker", "send_payout_invoice", task_id),
        ("worker", "payout_on_chain", task_id),
    }


async def test_the_escrow_nodes_own_shortage_asks_the_worker_for_nothing(
    open_custom: Any, keys: dict[str, NostrKeys]
) -> None:
    """lnd's ``FAILURE_REASON_INSUFFICIENT_BALANCE`` is the escrow node's own local balance:
    not the worker's failure, so no new invoice and no on-chain payout is asked of them; the
    payout waits for the operator's liquidity (tests/escrow/test_liquidity_wait.py)."""
    stack: Stack = await open_custom(swap_api_url=SWAP_API)
    employer, worker = stack.client(keys["employer"]), stack.client(keys["worker"])
    task = await submitted(stack, employer, worker)
    inbox = Inbox(stack, keys)
    await inbox.new()
    stack.world.network.fail_next_payments(1, reason=INSUFFICIENT_BALANCE)
    await employer.approve(task["task_id"])
    await stack.run_pass()
    waiting = await employer.get_task(task["task_id"])
    assert (waiting["state"], waiting["payout_failures"]) == ("VERIFIED", 0)
    assert waiting["payout_fallback"] is None
    assert not {n for n in await inbox.new() if n[0] == "worker"}


async def test_without_a_swap_api_nothing_on_chain_is_offered(
    open_custom: Any, keys: dict[str, NostrKeys]
) -> None:
    stack: Stack = await open_custom()
    assert stack.settings.swap_api_url is None
    task, inbox = await _payout_fails(stack, keys, NO_ROUTE)
    assert await inbox.new() == {("worker", "send_payout_invoice", task["task_id"])}
    assert task["payout_fallback"] is None
    assert (await stack.client().info())["swap_api"] is None


async def test_another_failure_offers_nothing_on_chain(
    open_custom: Any, keys: dict[str, NostrKeys]
) -> None:
    stack: Stack = await open_custom(swap_api_url=SWAP_API)
    task, inbox = await _payout_fails(stack, keys, INCORRECT_PAYMENT_DETAILS)
    assert await inbox.new() == {("worker", "send_payout_invoice", task["task_id"])}
    assert task["payout_fallback"] is None


async def test_a_new_invoice_withdraws_the_offer(
    open_custom: Any, keys: dict[str, NostrKeys]
) -> None:
    stack: Stack = await open_custom(swap_api_url=SWAP_API)
    task, _ = await _payout_fails(stack, keys, NO_ROUTE)
    assert task["payout_fallback"] is not None
    worker = stack.client(keys["worker"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    updated = await worker.update_payout_invoice(task["task_id"], invoice)
    assert updated["payout_fallback"] is None


@pytest.mark.parametrize(
    "url",
    [
        "http://boltz.example/v2",  # in the clear over a network
        "ftp://boltz.example",
        "https://user:secret@boltz.example",
        "https://boltz.example/v2?ref=x",
        "https://",
    ],
)
def test_a_swap_api_is_https_or_loopback_http(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValidationError, match="swap_api_url"):
        Settings(data_dir=tmp_path, swap_api_url=url)


@pytest.mark.parametrize(
    "url", ["https://api.boltz.exchange/v2", "http://127.0.0.1:9001", "http://localhost:9001/v2"]
)
def test_a_good_swap_api_is_kept_as_given(tmp_path: Path, url: str) -> None:
    assert Settings(data_dir=tmp_path, swap_api_url=url).swap_api_url == url
    assert Settings(data_dir=tmp_path, swap_api_url="").swap_api_url is None  # none offered
