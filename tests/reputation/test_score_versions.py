"""Every published score version recomputes by its own rules: an assertion of version 1 made
before the bump still verifies, one of version 2 is checked with the deal's counters, and a
number changed in either, or a version nobody defined, is a mismatch."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from support.log_builder import OPERATOR, LogBuilder, pubkey

from taskhold.reputation.metrics import Indexer
from taskhold.reputation.score import SCORE_VERSIONS, assertion_tags, recompute, score_card

E, W, W2 = pubkey("employer"), pubkey("worker"), pubkey("worker-2")
REPUTATION = pubkey("reputation key")


def history() -> LogBuilder:
    """A squatter revoked, then a worker whose proof the employer rejected and an arbiter
    upheld; then a paid task."""
    log = LogBuilder()
    task = log.create(E)
    log.fund(task)
    log.claim(task, W2)
    log.revoke(task, E, W2)
    log.claim(task, W)
    log.proof(task, W)
    log.reject(task, E)
    log.dispute(task, W)
    log.resolve(task, "employer")
    log.refund(task, "the arbiter ruled for the employer")
    log.paid_task(E, W)
    return log


def assertion(log: LogBuilder, subject: str, version: str, gseq_to: int) -> dict[str, Any]:
    indexer = Indexer(operator_pubkey=OPERATOR, version=version)
    indexer.add_many(log.entries[: gseq_to + 1])
    tags = assertion_tags(score_card(indexer, subject), OPERATOR)
    return {
        "id": hashlib.sha256(repr((subject, version, gseq_to)).encode()).hexdigest(),
        "pubkey": REPUTATION,
        "kind": 30382,
        "created_at": log.now,
        "tags": tags,
        "content": "",
        "sig": "0" * 128,
    }


def check(log: LogBuilder, assertions: list[dict[str, Any]]) -> list[tuple[str, str]]:
    report = recompute(log.entries, assertions, operator_pubkey=OPERATOR)
    assert report.checked == sum(1 for a in assertions if _tag(a, "v") in SCORE_VERSIONS)
    return [(m.subject, m.field) for m in report.mismatches]


def _tag(event: dict[str, Any], name: str) -> str:
    return next(t[1] for t in event["tags"] if t[0] == name)


def _with(event: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    return {**event, "tags": [[t[0], value] if t[0] == name else t for t in event["tags"]]}


def test_assertions_of_both_versions_over_one_log_all_recompute() -> None:
    log = history()
    last = len(log.entries) - 1
    assertions = [
        assertion(log, who, version, gseq_to)
        for who in (E, W, W2)
        for version in SCORE_VERSIONS
        for gseq_to in (6, last)
    ]
    assert check(log, assertions) == []
    by_version = {
        _tag(a, "v"): a for a in assertions if _tag(a, "d") == E and _tag(a, "gseq_to") == str(last)
    }
    assert set(by_version) == {"1", "2"}
    assert _tag(by_version["2"], "employer_rejections") == "1"
    assert _tag(by_version["2"], "employer_refunds_after_proof") == "1"
    assert not any(t[0] == "employer_rejections" for t in by_version["1"]["tags"])
    assert _tag(by_version["1"], "score") != _tag(by_version["2"], "score")


def test_a_tampered_deal_counter_or_score_of_version_2_is_a_mismatch() -> None:
    log = history()
    genuine = assertion(log, W2, "2", len(log.entries) - 1)
    assert _tag(genuine, "worker_revocations") == "1"
    hidden = _with(genuine, "worker_revocations", "0")
    assert check(log, [genuine, hidden]) == [(W2, "worker_revocations")]
    employer = assertion(log, E, "2", len(log.entries) - 1)
    inflated = _with(employer, "score", str(int(_tag(employer, "score")) + 1))
    assert check(log, [inflated]) == [(E, "score")]


def test_a_version_2_score_published_as_version_1_is_a_mismatch() -> None:
    """A bumped score relabelled as the old version cannot pass: version 1 is recomputed by
    version 1's rules, which publish none of the deal's counters."""
    log = history()
    relabelled = _with(assertion(log, E, "2", len(log.entries) - 1), "v", "1")
    fields = {field for _subject, field in check(log, [relabelled])}
    assert {"score", "employer_rejections", "employer_refunds_after_proof"} <= fields


@pytest.mark.parametrize("version", ["0", "3", "", "v2"])
def test_a_version_nobody_defined_is_a_mismatch_on_v(version: str) -> None:
    log = history()
    unknown = _with(assertion(log, E, "2", len(log.entries) - 1), "v", version)
    report = recompute(log.entries, [unknown], operator_pubkey=OPERATOR)
    assert [(m.field, m.published, m.recomputed) for m in report.mismatches] == [
        ("v", version, "1 or 2")
    ]
