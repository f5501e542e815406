"""``as_plain`` builds what ``dataclasses.asdict`` builds, for every task state and event."""

from __future__ import annotations

import dataclasses

import pytest
from support.task_builders import EMPLOYER, apply, create_command, task_in

from taskhold.tasks import TaskState
from taskhold.tasks import commands as c
from taskhold.tasks.plain import as_plain


@pytest.mark.parametrize("state", list(TaskState))
def test_a_task_in_every_state_comes_out_as_asdict_makes_it(state: TaskState) -> None:
    task = task_in(state)
    plain = as_plain(task)
    assert plain == dataclasses.asdict(task)
    assert {name: type(value) for name, value in plain.items()} == {
        name: type(value) for name, value in dataclasses.asdict(task).items()
    }


def with_checks() -> c.CreateTask:
    return dataclasses.replace(create_command(), acceptance={"checks": [{"kind": "url"}]})


def test_events_come_out_as_asdict_makes_them() -> None:
    _, created = apply(None, with_checks())
    assert created
    for event in created:
        assert as_plain(event) == dataclasses.asdict(event)


def test_the_plain_copy_shares_no_mutable_container_with_the_record() -> None:
    task, _ = apply(None, with_checks())
    plain = as_plain(task)
    plain["acceptance"]["checks"].append({"kind": "forged"})
    assert task.acceptance == {"checks": [{"kind": "url"}]}
    assert task.employer_pubkey == EMPLOYER


def test_a_value_that_is_not_a_record_is_refused() -> None:
    with pytest.raises(TypeError):
        as_plain({"not": "a dataclass"})
