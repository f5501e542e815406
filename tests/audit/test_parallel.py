"""The audit spread over processes reports what the serial audit reports, in the same order,
on a log with every kind of fault planted: the per-event checks run in chunks, the whole-log
checks after them, and nothing in the report may depend on where a chunk was cut."""

from __future__ import annotations

import multiprocessing
import os
import random
from typing import Any

import pytest
from support.audit_logs import Draft, RealLog, build_real_log, tag
from support.stacks import Stack

from taskhold.audit import FindingKind, audit_log, parallel
from taskhold.nostr import NostrKeys


def _faulty(log: RealLog) -> list[Any]:
    """The real log with a gap, an equivocation, a bad signature, a foreign signer, a bad id,
    time going backwards, a malformed event and copies, in a shuffled order."""
    earlier = log.entries[9]["created_at"] - 60

    def backdate(draft: Draft) -> None:
        draft.created_at = earlier

    entries = log.resigned(10, backdate)
    dropped = next(e for e in entries if tag(e, "op") == "ProofSubmitted")
    original = next(e for e in entries if tag(e, "op") == "FundingAccepted")
    twin = log.sign(
        original["content"],
        [["state", "ab" * 32] if t[0] == "state" else t for t in original["tags"]],
        original["created_at"],
    )
    victim = entries[3]
    flipped = {**victim, "sig": victim["sig"][:-1] + ("0" if victim["sig"][-1] != "0" else "1")}
    foreign = NostrKeys.generate().sign_event(
        3910, victim["content"], victim["tags"], victim["created_at"]
    )
    claimed = next(e for e in entries if tag(e, "op") == "TaskClaimed")
    tampered = {**claimed, "content": claimed["content"].replace('"TaskClaimed"', '"TaskClaimeD"')}
    events: list[Any] = [e for e in entries if e is not dropped]
    events += [twin, flipped, foreign, tampered, {"id": "x"}, *entries[:3]]
    random.Random(17).shuffle(events)
    return events


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
async def test_the_parallel_audit_reports_the_serial_findings_in_the_same_order(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    log = await build_real_log(stack)
    events = _faulty(log)
    serial = audit_log(events, log.operator)
    assert {f.kind for f in serial.findings} >= {
        FindingKind.GAP, FindingKind.EQUIVOCATION, FindingKind.BAD_SIGNATURE,
        FindingKind.WRONG_AUTHOR, FindingKind.BAD_ID, FindingKind.TIME_WENT_BACKWARDS,
        FindingKind.MALFORMED, FindingKind.SEQ_GAP,
    }  # fmt: skip

    received: list[int] = []  # events examined by each other process
    real_unpack, real_unpack_chunks = parallel._unpack, parallel._unpack_chunks

    def counting_unpack(data: bytes) -> list[Any]:
        unpacked = real_unpack(data)
        received.append(len(unpacked))
        return unpacked

    def counting_unpack_chunks(data: bytes) -> dict[int, list[Any]]:
        unpacked = real_unpack_chunks(data)
        received.append(sum(map(len, unpacked.values())))
        return unpacked

    monkeypatch.setattr(parallel, "MIN_EVENTS_PER_JOB", 1)  # cut even a small log in chunks
    monkeypatch.setattr(parallel, "_may_fork", lambda: fork)
    monkeypatch.setattr(parallel, "_unpack", counting_unpack)
    monkeypatch.setattr(parallel, "_unpack_chunks", counting_unpack_chunks)
    for jobs in (2, 3, 7) if fork else (2, 3):
        received.clear()
        spread = audit_log(events, log.operator, jobs=jobs)
        assert len(received) == jobs - 1 and all(received)  # other processes took chunks
        assert spread.findings == serial.findings
        assert [f.to_json() for f in spread.findings] == [f.to_json() for f in serial.findings]
        assert spread.summary == serial.summary
        assert spread.operator_keys == serial.operator_keys


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
async def test_a_clean_log_stays_clean_over_processes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    log = await build_real_log(stack)
    monkeypatch.setattr(parallel, "MIN_EVENTS_PER_JOB", 1)
    monkeypatch.setattr(parallel, "_may_fork", lambda: fork)
    result = audit_log(log.entries, log.operator, jobs=2)
    assert result.clean, [f.to_json() for f in result.findings]
    assert result.summary == audit_log(log.entries, log.operator).summary


def test_small_logs_stay_in_this_process() -> None:
    assert parallel.MIN_EVENTS_PER_JOB >= 100
    events: list[object] = [{"id": "x"}] * (parallel.MIN_EVENTS_PER_JOB * 2 - 1)
    examined = parallel.examine_all(events, parallel.AuditKinds(), jobs=8)
    assert [verdict for verdict, _ in examined] == [parallel.Verdict.MALFORMED] * len(events)


@pytest.mark.parametrize(("count", "jobs"), [(2, 2), (7, 7), (10, 7), (7000, 2), (7001, 3)])
def test_the_chunks_cover_every_event_once(count: int, jobs: int) -> None:
    bounds = parallel._bounds(count, jobs)
    assert len(bounds) == jobs and all(start < stop for start, stop in bounds)
    assert [i for start, stop in bounds for i in range(start, stop)] == list(range(count))


@pytest.mark.parametrize(("count", "jobs"), [(7, 7), (10, 3), (7000, 2), (70_001, 2)])
def test_the_forked_chunks_cover_every_event_once(count: int, jobs: int) -> None:
    chunks = parallel._Chunks(count, jobs, multiprocessing.get_context("fork"))
    assert chunks.count >= jobs and chunks.size <= parallel.CHUNK_EVENTS
    taken = [list(chunks.numbers(first)) for first in range(jobs)]
    assert all(taken[:1]) and all(numbers == [first] for first, numbers in enumerate(taken[1:], 1))
    events = list(range(count))
    assert [e for n in range(chunks.count) for e in chunks.events(events, n)] == events


def test_a_forked_process_that_dies_leaves_its_chunks_to_this_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = NostrKeys.generate()
    events = [keys.sign_event(3912, str(n), [], 17) for n in range(40)] + [{"id": "x"}]
    monkeypatch.setattr(parallel, "MIN_EVENTS_PER_JOB", 1)
    monkeypatch.setattr(parallel, "_may_fork", lambda: True)
    monkeypatch.setattr(parallel, "_examine_forked", lambda *args: os._exit(3))
    examined = parallel.examine_all(events, parallel.AuditKinds(), jobs=2)
    assert [v for v, _ in examined] == [parallel.Verdict.OK] * 40 + [parallel.Verdict.MALFORMED]
