"""Task records to and from the JSON kept in the ``tasks.data`` column."""

from __future__ import annotations

import copy
import dataclasses
import operator
from collections.abc import Callable
from typing import Any

from taskhold.tasks.model import Deposit, DepositState, SwapRecord, Task, TaskState

__all__ = ["task_from_data", "task_to_data"]


def task_to_data(task: Task) -> dict[str, Any]:
    data: dict[str, Any] = _plain(task)
    data["state"] = task.state.value
    data["deposits"] = [
        {**deposit, "state": deposit["state"].value} for deposit in data["deposits"]
    ]
    return data


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


_SCALARS = frozenset({str, int, bool, float, type(None), TaskState, DepositState})
_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], Any]]] = {}


def _plain(value: Any) -> Any:
    """What ``dataclasses.asdict`` makes of ``value``, without deep-copying every scalar: the
    state hash of every entry a rebuild replays is taken over it."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {_plain(key): _plain(item) for key, item in value.items()}
    if kind is tuple or kind is list:
        return kind(_plain(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        known = _FIELDS.get(kind)
        if known is None:
            names = tuple(f.name for f in dataclasses.fields(value))
            read_all = operator.attrgetter(*names) if len(names) > 1 else None
            known = _FIELDS[kind] = (
                names,
                read_all or (lambda obj: tuple(getattr(obj, name) for name in names)),
            )
        names, read = known
        return {
            name: item if type(item) in _SCALARS else _plain(item)
            for name, item in zip(names, read(value), strict=True)
        }
    return copy.deepcopy(value)
