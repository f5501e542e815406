"""A split's log entries: the auditor accepts the writer's, and finds a split whose shares and
fee do not make the amount, a share paid twice or with a preimage of another hash, and a
settlement naming payments other than the shares."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.audit_logs import Draft, RealLog
from support.split_flows import paid_split
from support.stacks import Stack
from support.task_flows import read_log, tag

from taskhold.audit import FindingKind, audit_log


async def _split_log(stack: Stack) -> RealLog:
    task = await paid_split(stack)
    assert task["state"] == "PAID"
    return RealLog(stack, stack.services.signer.get_public_key(), await read_log(stack))


async def test_a_paid_split_audits_clean(stack: Stack) -> None:
    log = await _split_log(stack)
    decided = log.entry("SplitDecided")
    assert tag(decided, "basis") == "ruling"
    shares = [tag(log.entry("SplitSharePaid", n), "share") for n in (0, 1)]
    assert shares == ["worker", "employer"]
    result = audit_log(log.entries, log.operator)
    assert result.clean, [f.to_json() for f in result.findings]


def _bump(name: str) -> Callable[[Draft], None]:
    def change(draft: Draft) -> None:
        value = next(t[1] for t in draft.tags if t[0] == name)
        draft.set_tag(name, str(int(value) + 1))

    return change


def _set(name: str, value: str) -> Callable[[Draft], None]:
    return lambda draft: draft.set_tag(name, value)


@pytest.mark.parametrize(
    ("op", "nth", "change"),
    [
        ("SplitDecided", 0, _bump("worker_msat")),  # the shares make more than the amount
        ("SplitSharePaid", 1, _set("share", "worker")),  # the worker's share paid twice
        ("SplitSharePaid", 0, _set("share_preimage", "00" * 32)),  # not the hash's preimage
        ("SplitCompleted", 0, _set("employer_hash", "ab" * 32)),  # names another payment
    ],
    ids=["shares-exceed-amount", "share-paid-twice", "wrong-share-preimage", "other-payment"],
)
async def test_a_dishonest_split_is_found(
    stack: Stack, op: str, nth: int, change: Callable[[Draft], None]
) -> None:
    log = await _split_log(stack)
    gseq = int(tag(log.entry(op, nth), "gseq") or -1)
    result = audit_log(log.resigned(gseq, change), log.operator)
    kinds = {finding.kind for finding in result.findings}
    assert FindingKind.BAD_SPLIT in kinds, [f.to_json() for f in result.findings]
