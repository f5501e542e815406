"""The auditor's check of milestone series: each series is consistent in the log.

A milestone is a task of its own; its ``TaskCreated`` declares its series (``series_id``,
``milestone_index``, ``milestone_count``, ``funding_mode``). Across a series: the indexes are
0…n-1, once each; every milestone declares the same count, funding mode and employer; each task
id is the one derived from the series id and index; and under ``sequential`` funding no
milestone's ``FundingRequested`` comes before the entry that made the milestone before it PAID.
Logs from before milestones declare no series and pass unchanged.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from .entry import Entry, Series, milestone_task_id
from .findings import Finding, FindingKind

__all__ = ["check_series"]

FUNDING_MODES = frozenset({"upfront", "sequential"})
_PAID_BY = frozenset({"ReleaseCompleted", "SplitCompleted"})


def check_series(by_task: Mapping[str, Sequence[Entry]], findings: set[Finding]) -> None:
    members: dict[str, list[tuple[Entry, Series]]] = defaultdict(list)
    for entries in by_task.values():
        first = entries[0] if entries else None
        if first is not None and first.op == "TaskCreated" and first.series is not None:
            members[first.series.series_id].append((first, first.series))
    for series_id, created in members.items():
        _check_members(series_id, created, findings)
        if created[0][1].funding_mode == "sequential":
            _check_sequence(series_id, by_task, findings)


def _fault(entry: Entry, detail: str, findings: set[Finding]) -> None:
    findings.add(Finding(FindingKind.BAD_SERIES, entry.location(), detail, (entry.id,)))


def _check_members(
    series_id: str, created: list[tuple[Entry, Series]], findings: set[Finding]
) -> None:
    first_entry, first = min(created, key=lambda pair: pair[0].gseq)
    for entry, series in created:
        if entry.task != milestone_task_id(series_id, series.index):
            _fault(
                entry,
                f"milestone {series.index}'s task id is not derived from its series",
                findings,
            )
        if (series.count, series.funding_mode, series.employer) != (
            first.count,
            first.funding_mode,
            first.employer,
        ):
            _fault(
                entry,
                "the milestone declares another count, funding mode or employer than its series",
                findings,
            )
        if series.funding_mode not in FUNDING_MODES:
            _fault(entry, f"unknown funding mode {series.funding_mode!r}", findings)
    seen = Counter(series.index for _, series in created)
    expected = set(range(first.count)) if first.count > 0 else set()
    twice = sorted(index for index, times in seen.items() if times > 1)
    missing = sorted(expected - seen.keys())
    stray = sorted(seen.keys() - expected)
    if twice or missing or stray:
        detail = (
            f"series of {first.count}: indexes created twice {twice}, missing {missing},"
            f" outside the series {stray}"
        )
        _fault(first_entry, detail, findings)


def _check_sequence(
    series_id: str, by_task: Mapping[str, Sequence[Entry]], findings: set[Finding]
) -> None:
    """Milestone k's funding opens only after milestone k-1 was PAID."""
    index = 1
    while (entries := by_task.get(milestone_task_id(series_id, index))) is not None:
        opened = next((e for e in entries if e.op == "FundingRequested"), None)
        before = by_task.get(milestone_task_id(series_id, index - 1), ())
        paid = next((e for e in before if e.op in _PAID_BY), None)
        if opened is not None and (paid is None or paid.gseq > opened.gseq):
            _fault(
                opened,
                f"sequential funding opened milestone {index} before milestone {index - 1}"
                " was PAID",
                findings,
            )
        index += 1
