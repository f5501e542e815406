"""``task_to_data`` is what ``dataclasses.asdict`` made of a task (every state hash in the
public log is taken over it), and what it returns shares nothing mutable with the task."""

from __future__ import annotations

import dataclasses

import pytest
from support.task_builders import task_in

from taskhold.store.codec import task_from_data, task_to_data
from taskhold.tasks.model import Deposit, DepositState, SwapRecord, TaskState


def _as_before(task: object) -> dict[str, object]:
    data = dataclasses.asdict(task)  # type: ignore[call-overload]
    data["state"] = data["state"].value
    data["deposits"] = [{**d, "state": d["state"].value} for d in data["deposits"]]
    return data


@pytest.mark.parametrize("state", list(TaskState))
def test_the_data_of_a_task_in_every_state_is_the_asdict_form(state: TaskState) -> None:
    task = task_in(state)
    assert task_to_data(task) == _as_before(task)
    assert task_from_data(task_to_data(task)) == task


def test_nested_fields_are_copied_not_shared() -> None:
    deposit = Deposit(
        depositor="d" * 64, role="worker", round=1, amount_msat=1_000, payment_hash_hex="a" * 64,
        payment_request="lnbcrt1x", cltv_expiry_delta=40, invoice_expires_at=9,
        requested_at=1, state=DepositState.HELD,
    )  # fmt: skip
    swap = SwapRecord(role="funding", swap_id="s1", swap_api="http://boltz", reporter="e" * 64,
                      first_reported_at=1, last_reported_at=2)  # fmt: skip
    task = dataclasses.replace(
        task_in(TaskState.FUNDED),
        acceptance={"required_fields": ["url"], "nested": {"a": [1, {"b": 2}]}},
        labels={"k": "v"},
        applicants=("1" * 64, "2" * 64),
        deposits=(deposit,),
        swaps=(swap,),
    )
    data = task_to_data(task)
    assert data == _as_before(task)
    assert type(data["applicants"]) is tuple and data["deposits"][0]["state"] == "HELD"
    data["acceptance"]["nested"]["a"][1]["b"] = 3
    data["labels"]["k"] = "changed"
    assert task.acceptance["nested"]["a"][1]["b"] == 2 and task.labels == {"k": "v"}
