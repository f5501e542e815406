"""The auditor and the rebuild on a real log of milestone series: a sequential series paid
through, one whose second milestone is refunded (the third cancelled), and an upfront one. It
reads clean and rebuilds to the same tasks, series fields included; a log whose series is
inconsistent (a milestone declaring another funding mode, an index twice, a sequential
milestone funded before the one before it was PAID) is caught."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.audit_logs import Draft, RealLog
from support.milestone_flows import fund, paid_sequential_series, plan, work_and_approve
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_flows import read_log, tag

from taskhold.audit import audit_log
from taskhold.audit.findings import FindingKind
from taskhold.rebuild.replay import rebuild_from_entries
from taskhold.store.codec import task_to_data


async def _series_log(stack: Stack) -> dict[str, list[str]]:
    employer, worker = stack.client(), stack.client()
    series: dict[str, list[str]] = {}
    series["paid"] = await paid_sequential_series(stack, employer, worker)
    refunded = await employer.create_milestones(plan(), funding_mode="sequential")
    series["refunded"] = ids = refunded["series"]["task_ids"]
    await fund(stack, employer, ids[0])
    await worker.claim(ids[0])
    await work_and_approve(stack, employer, worker, ids[0])
    await stack.settle_engine(1)
    await fund(stack, employer, ids[1])
    await employer.propose_agreement(ids[1], 0, note="no longer needed")
    await worker.accept_agreement(ids[1], 0)
    await stack.settle_engine()
    upfront = await employer.create_milestones(plan(2), funding_mode="upfront")
    series["upfront"] = ids = upfront["series"]["task_ids"]
    for task_id in ids:
        await fund(stack, employer, task_id)
    await worker.claim(ids[0])
    for task_id in reversed(ids):
        await stack.settle_engine(1)
        await work_and_approve(stack, employer, worker, task_id)
    states = {
        name: [(await employer.get_task(task_id))["state"] for task_id in ids]
        for name, ids in series.items()
    }
    assert states == {
        "paid": ["PAID"] * 3,
        "refunded": ["PAID", "REFUNDED", "CANCELLED"],
        "upfront": ["PAID"] * 2,
    }
    return series


async def test_series_audit_clean_and_rebuild_to_the_same_tasks(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    settings = stack_settings(tmp_path, database_url)
    original = await open_stack(settings)
    try:
        series = await _series_log(original)
        log = await read_log(original)
        operator = original.services.signer.get_public_key()
        async with original.services.store.transaction() as tx:
            expected = {
                task_id: task_to_data(task)
                for ids in series.values()
                for task_id in ids
                if (task := await tx.load_task(task_id)) is not None
            }
    finally:
        await close_stack(original)
    result = audit_log(log, operator)
    assert result.clean, [finding.to_json() for finding in result.findings]
    assert len(expected) == 8 and all(data["series_id"] for data in expected.values())

    async with new_database(database_kind, tmp_path / "rebuilt") as url:
        rebuilt = await open_stack(
            settings.model_copy(update={"database_url": url}), world=original.world
        )
        try:
            report = await rebuild_from_entries(
                rebuilt.services.store, log, operator_pubkey=operator
            )
            assert report.entries == len(log)
            async with rebuilt.services.store.transaction() as tx:
                for task_id, data in expected.items():
                    task = await tx.load_task(task_id)
                    assert task is not None and task_to_data(task) == data
        finally:
            await close_stack(rebuilt)


def _change_created(real: RealLog, task_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Re-sign the log with ``task_id``'s ``TaskCreated`` content event changed."""
    target = next(
        e for e in real.entries if tag(e, "task") == task_id and tag(e, "op") == "TaskCreated"
    )

    def edit(draft: Draft) -> None:
        content = json.loads(draft.content)
        change(content["event"])
        draft.content = json.dumps(content, sort_keys=True, separators=(",", ":"))

    real.entries = real.resigned(int(str(tag(target, "gseq"))), edit)


def _series_findings(real: RealLog) -> list[str]:
    result = audit_log(real.entries, real.operator)
    return [f.detail for f in result.findings if f.kind is FindingKind.BAD_SERIES]


async def test_an_inconsistent_series_is_caught(tmp_path: Path, database_url: str) -> None:
    stack = await open_stack(stack_settings(tmp_path, database_url))
    try:
        series = await _series_log(stack)
        entries = await read_log(stack)
        real = RealLog(stack, stack.services.signer.get_public_key(), entries)
        assert _series_findings(real) == []

        # one milestone of a sequential series declares upfront funding
        mixed = RealLog(stack, real.operator, list(entries))
        _change_created(mixed, series["paid"][2], lambda ev: ev.update(funding_mode="upfront"))
        assert any("another count, funding mode" in d for d in _series_findings(mixed))

        # an upfront series re-declared sequential: milestone 1 was funded before 0 was PAID
        early = RealLog(stack, real.operator, list(entries))
        for task_id in series["upfront"]:
            _change_created(early, task_id, lambda ev: ev.update(funding_mode="sequential"))
        assert any("before milestone 0 was PAID" in d for d in _series_findings(early))

        # milestone 2 claims index 1: index twice, and a task id not derived from it
        twice = RealLog(stack, real.operator, list(entries))
        _change_created(twice, series["paid"][2], lambda ev: ev.update(milestone_index=1))
        found = _series_findings(twice)
        assert any("created twice [1], missing [2]" in d for d in found), found
        assert any("not derived" in d for d in found), found
    finally:
        await close_stack(stack)


async def test_logs_without_series_still_audit(stack: Stack) -> None:
    """A task on its own declares no series; its entries pass unchanged (old logs too)."""
    employer = stack.client()
    task = await employer.create_task("One", "", 20_000_000, plan(1)[0]["deadline_at"])
    assert task["series"] is None
    log = await read_log(stack)
    created = json.loads(log[0]["content"])["event"]
    assert created["series_id"] is None
    assert audit_log(log, stack.services.signer.get_public_key()).clean
