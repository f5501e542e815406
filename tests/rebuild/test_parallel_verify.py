"""A rebuild whose signature checks are spread over processes restores the same projection and
refuses what a rebuild in one process refuses, with the same reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_flows import projection, read_log, submitted

from taskhold.nostr import verify
from taskhold.rebuild.replay import LogRejected, rebuild_from_entries


async def test_checks_spread_over_processes_restore_and_refuse_the_same(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    log = await read_log(stack)
    before = await projection(stack)
    operator = stack.services.signer.get_public_key()
    forged = [dict(e) for e in log]
    forged[1]["content"] = json.dumps({"forged": True})
    last_forged = [dict(e) for e in log]
    content = json.loads(last_forged[-1]["content"])
    content["request"]["sig"] = "00" * 64  # the entry's id no longer holds either
    last_forged[-1]["content"] = json.dumps(content)
    monkeypatch.setattr(verify, "MIN_EVENTS_PER_JOB", 1)  # cut even a short log in chunks
    directory = Path(stack.settings.data_dir)
    for jobs in (1, 3):
        async with new_database("sqlite", directory / f"rebuilt-{jobs}") as url:
            other = await open_stack(stack_settings(directory / f"o{jobs}", url))
            try:
                with pytest.raises(LogRejected, match=f"entry {log[1]['id']} does not verify"):
                    await rebuild_from_entries(
                        other.services.store, forged, operator_pubkey=operator, jobs=jobs
                    )
                with pytest.raises(LogRejected, match="does not verify") as refused:
                    await rebuild_from_entries(
                        other.services.store, last_forged, operator_pubkey=operator, jobs=jobs
                    )
                assert str(refused.value).startswith(f"entry {log[-1]['id']}")
                report = await rebuild_from_entries(
                    other.services.store, log, operator_pubkey=operator, jobs=jobs
                )
                assert report.entries == len(log)
                assert await projection(other) == before
            finally:
                await close_stack(other)
