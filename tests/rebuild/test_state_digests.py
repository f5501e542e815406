"""``StateDigests`` hashes each replayed state exactly as ``state_hash(task_to_data(task))``
does, however the states of tasks come (fields changed, dicts changed in place, enums,
deposits, swaps, text no ASCII can hold); and a rebuilt entry whose state tag no state of the
replay hashes to is still refused."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from support.audit_logs import Draft, RealLog
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_builders import task_in
from support.task_flows import read_log, submitted

from taskhold.nostr.entries import state_hash
from taskhold.rebuild.replay import LogRejected, rebuild_from_entries
from taskhold.rebuild.state_digests import StateDigests
from taskhold.store.codec import task_to_data
from taskhold.tasks import Task, TaskState
from taskhold.tasks.model import Deposit, DepositState, SwapRecord


def _deposit(state: DepositState) -> Deposit:
    return Deposit(
        depositor="d" * 64,
        role="worker",
        round=1,
        amount_msat=5_000,
        payment_hash_hex="ab" * 32,
        payment_request="lnbcrt1déposit",
        cltv_expiry_delta=40,
        invoice_expires_at=1_700_000_100,
        requested_at=1_700_000_000,
        state=state,
    )


def _states() -> Iterator[Task]:
    """States of several tasks, interleaved: each as the machine left it, then with fields
    changed the way later transitions change them (one dict in place, after its state was
    hashed)."""
    for state in TaskState:
        try:
            yield task_in(state)  # all as one task id: unrelated states in turn
        except (KeyError, AssertionError):
            continue  # a state task_in has no path to
    task = dataclasses.replace(task_in(TaskState.FUNDED), task_id="changed")
    acceptance: dict[str, Any] = {"criteria": ["ünïcode ✓", 'quote " and \\'], "score": 0.5}
    steps = [
        dataclasses.replace(task, acceptance=acceptance, labels={"b": "2", "a": "1"}),
        dataclasses.replace(task, acceptance=acceptance, deposits=(_deposit(DepositState.OPEN),)),
        dataclasses.replace(
            task,
            acceptance=acceptance,
            deposits=(_deposit(DepositState.HELD), _deposit(DepositState.OPEN)),
            swaps=(
                SwapRecord(
                    role="funding",
                    swap_id="s1",
                    swap_api="https://boltz.example/v2",
                    reporter="e" * 64,
                    first_reported_at=1,
                    last_reported_at=2,
                ),
            ),
            applicants=("a" * 64, "b" * 64),
            state=TaskState.CLAIMED,
            amount_msat=2**70,
        ),
    ]
    for number, step in enumerate(steps):
        yield step
        yield dataclasses.replace(task_in(TaskState.DRAFT), task_id=f"between-{number}")
    acceptance["criteria"].append("changed in place")  # the same dict object, new content
    yield dataclasses.replace(steps[-1], version=steps[-1].version + 1)


def test_every_state_hashes_as_the_writer_hashes_it() -> None:
    digests = StateDigests()
    task_ids = set()
    for task in _states():
        assert digests.digest(task) == state_hash(task_to_data(task)), task.state
        task_ids.add(task.task_id)
    assert len(task_ids) == 5


async def test_an_entry_whose_state_tag_hashes_no_replayed_state_is_refused(
    stack: Stack,
) -> None:
    employer, worker = stack.client(), stack.client()
    await submitted(stack, employer, worker)
    operator = stack.services.signer.get_public_key()
    log = RealLog(stack, operator, await read_log(stack))
    last = len(log.entries) - 1
    wrong = state_hash({"not": "the state"})

    def another_state(draft: Draft) -> None:
        draft.set_tag("state", wrong)

    forged = log.resigned(last, another_state)
    assert json.loads(forged[-1]["content"]) == json.loads(log.entries[-1]["content"])
    directory = stack.settings.data_dir
    async with new_database("sqlite", directory / "forged") as url:
        other = await open_stack(stack_settings(directory / "o", url))
        try:
            with pytest.raises(LogRejected, match="replayed state does not match its hash"):
                await rebuild_from_entries(other.services.store, forged, operator_pubkey=operator)
            report = await rebuild_from_entries(
                other.services.store, log.entries, operator_pubkey=operator
            )
            assert report.entries == len(log.entries)
        finally:
            await close_stack(other)
