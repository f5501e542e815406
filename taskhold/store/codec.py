"""Task records to and from the JSON kept in the ``tasks.data`` column."""

from __future__ import annotations

from typing import Any

from taskhold.tasks.model import Deposit, DepositState, SwapRecord, Task, TaskState
from taskhold.tasks.plain import as_plain, plain_value

__all__ = ["field_to_data", "task_from_data", "task_to_data"]


def task_to_data(task: Task) -> dict[str, Any]:
    data = as_plain(task)
    data["state"] = task.state.value
    data["deposits"] = _deposits_data(data["deposits"])
    return data


def field_to_data(task: Task, name: str) -> Any:
    """``task_to_data(task)[name]``, without the other fields."""
    if name == "state":
        return task.state.value
    if name == "deposits":
        return _deposits_data(plain_value(task.deposits))
    return plain_value(getattr(task, name))


def _deposits_data(deposits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**deposit, "state": deposit["state"].value} for deposit in deposits]


def task_from_data(data: dict[str, Any]) -> Task:
    fields = dict(data)
    fields["state"] = TaskState(fields["state"])
    fields["deposits"] = tuple(
        Deposit(**{**deposit, "state": DepositState(deposit["state"])})
        for deposit in fields.get("deposits", ())
    )
    fields["swaps"] = tuple(SwapRecord(**swap) for swap in fields.get("swaps", ()))
    for name in ("applicants", "barred_workers"):  # JSON has lists; the task keeps tuples
        if name in fields:
            fields[name] = tuple(fields[name])
    return Task(**fields)
