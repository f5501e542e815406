"""The indexer and the score over scripted logs: exact metrics, exact score, any delivery order,
sybil rings, review records."""

from __future__ import annotations

import math
import random

import pytest
from support.log_builder import DAY, OPERATOR, LogBuilder, pubkey

from taskhold.reputation.metrics import Indexer, SequenceConflict
from taskhold.reputation.score import (
    HALF_LIFE_S,
    SCORE_VERSION,
    ScoreCard,
    score_card,
    wilson_lower_bound_permille,
)

E, W1, W2 = pubkey("employer"), pubkey("worker-1"), pubkey("worker-2")


def scripted() -> tuple[LogBuilder, dict[str, str]]:
    """A paid task 90 days ago, then a refund for lack of proof, a dispute the employer lost,
    a refund before anyone claimed, an expired task, and one review."""
    log = LogBuilder()
    a = log.paid_task(E, W1)
    log.now += 90 * DAY
    b = log.create(E)
    log.fund(b)
    log.claim(b, W2)
    log.refund(b, "deadline passed without proof")
    c = log.create(E)
    log.fund(c)
    log.claim(c, W1)
    log.entry(c, {"type": "ProofRefused", "actor": "system", "problems": ["no url"]})
    log.proof(c, W1)
    log.dispute(c, E)
    log.resolve(c, "worker")
    log.release(c)
    d = log.create(E)
    log.fund(d)
    log.refund(d, "cancelled by the employer")
    f = log.create(E)
    log.entry(f, {"type": "FundingExpired", "actor": "system", "reason": "unpaid"})
    log.review_record(a, W1, "worker", E, 4)
    return log, {"a": a, "b": b, "c": c, "d": d, "f": f}


def indexed(log: LogBuilder, events: list[dict[str, object]] | None = None) -> Indexer:
    indexer = Indexer(operator_pubkey=OPERATOR)
    indexer.add_many(events if events is not None else log.entries + log.records)
    return indexer


def test_a_scripted_history_gives_exactly_the_expected_metrics() -> None:
    log, _ = scripted()
    indexer = indexed(log)
    assert indexer.head_gseq == len(log.entries) - 1
    assert indexer.head_rseq == 0
    assert indexer.rejected_reviews == {}
    card = score_card(indexer, E)
    assert card.metrics["employer"] == {
        "tasks": 5,
        "funded": 4,
        "completed": 2,
        "refunded": 2,
        "cancelled": 0,
        "expired": 1,
        "disputes_opened": 1,
        "disputes_won": 0,
        "disputes_lost": 1,
        "proofs_refused": 0,
        "volume_msat": 400_000_000,
        "time_to_fund_s": 61,
        "time_to_first_proof_s": None,
        "verified_to_paid_s": 60,
        "reviews": 1,
        "rating_avg_milli": 4000,
        "counterparties": 2,
        "top_counterparty_ppm": 666_666,
        "effective_counterparties_milli": 1800,
        "rejections": 0,
        "rejections_overturned": 0,
        "refunds_after_proof": 0,
        "revocations": 0,
        "unclaims": 0,
    }
    assert card.metrics["worker"]["tasks"] == 0
    w1 = score_card(indexer, W1).metrics["worker"]
    assert (w1["tasks"], w1["completed"], w1["refunded"], w1["disputes_won"]) == (2, 2, 0, 1)
    assert (w1["time_to_first_proof_s"], w1["verified_to_paid_s"]) == (90, 60)
    assert (w1["volume_msat"], w1["counterparties"], w1["reviews"]) == (200_000_000, 1, 0)
    assert w1["proofs_refused"] == 1
    w2 = score_card(indexer, W2).metrics["worker"]
    assert (w2["tasks"], w2["completed"], w2["refunded"]) == (1, 0, 1)
    assert w2["time_to_first_proof_s"] is None


def _float_score(outcomes: list[tuple[str, int, int, float, bool]], now: int) -> float:
    """Version 1 of the score written again with floats, from its docstring."""
    shared: dict[str, int] = {}
    for counterparty, *_ in outcomes:
        shared[counterparty] = shared.get(counterparty, 0) + 1
    s = n = 0.0
    for counterparty, at, amount_msat, success, review in outcomes:
        halvings, rest = divmod(now - at, HALF_LIFE_S)
        decay = 0.5**halvings * (1 - rest / (2 * HALF_LIFE_S))
        weight = (amount_msat // 1000).bit_length() / 14 * decay / math.sqrt(shared[counterparty])
        weight /= 2 if review else 1
        n += weight
        s += weight * success
    z2 = 1.96**2
    p = s / n
    return (p + z2 / (2 * n) - math.sqrt(z2) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / (
        1 + z2 / n
    )


def test_a_scripted_history_gives_exactly_the_expected_score() -> None:
    log, ids = scripted()
    indexer = indexed(log)
    now = log.entries[-1]["created_at"]
    final_ops = (["op", "ReleaseCompleted"], ["op", "RefundCompleted"])
    at = {
        name: next(
            e["created_at"]
            for e in log.entries
            if ["task", task] in e["tags"] and any(op in e["tags"] for op in final_ops)
        )
        for name, task in ids.items()
        if name in "abc"
    }
    amount = 100_000_000
    employer = [
        (W1, at["a"], amount, 1.0, False),
        (W2, at["b"], amount, 1.0, False),
        (W1, at["c"], amount, 0.0, False),
        (W1, at["a"], amount, 0.75, True),
    ]
    card = score_card(indexer, E)
    assert card.version == SCORE_VERSION == "2"
    assert abs(card.score - 1000 * _float_score(employer, now)) <= 1
    assert card.score == 196
    assert card.role_scores == {"employer": 196, "worker": 0}
    assert card.rank == 19
    worker = [(E, at["a"], amount, 1.0, False), (E, at["c"], amount, 1.0, False)]
    w1 = score_card(indexer, W1)
    assert abs(w1.score - 1000 * _float_score(worker, now)) <= 1
    assert w1.score == 251
    assert score_card(indexer, W2).score == 0  # one failure
    assert score_card(indexer, pubkey("nobody")).score == 0
    assert (card.gseq_from, card.gseq_to, card.rseq_to) == (0, len(log.entries) - 1, 0)


def _cards(indexer: Indexer) -> dict[str, ScoreCard]:
    return {subject: score_card(indexer, subject) for subject in indexer.subjects()}


@pytest.mark.parametrize("seed", range(5))
def test_any_delivery_order_gives_the_same_scores(seed: int) -> None:
    log, _ = scripted()
    in_order = _cards(indexed(log))
    events = log.entries + log.records
    shuffled = [*events, *random.Random(seed).sample(events, k=10)]  # with duplicates
    random.Random(seed).shuffle(shuffled)
    indexer = indexed(log, shuffled)
    assert indexer.waiting == 0
    assert _cards(indexer) == in_order


def test_a_gap_holds_back_what_comes_after_it() -> None:
    log, _ = scripted()
    indexer = indexed(log, log.entries[:3] + log.entries[4:])
    assert indexer.head_gseq == 2
    assert indexer.waiting == len(log.entries) - 4
    indexer.add(log.entries[3])
    assert indexer.head_gseq == len(log.entries) - 1 and indexer.waiting == 0


def test_two_entries_for_one_waiting_gseq_are_refused() -> None:
    log, _ = scripted()
    indexer = indexed(log, log.entries[2:3])
    other = {**log.entries[2], "id": "f" * 64}
    with pytest.raises(SequenceConflict):
        indexer.add(other)


def test_a_sybil_ring_scores_lower_than_the_same_volume_with_strangers() -> None:
    ring = LogBuilder()
    boss, members = pubkey("ring-boss"), [pubkey(f"ring-{i}") for i in range(10)]
    for i, member in enumerate(members):
        for _ in range(10):
            ring.paid_task(boss, member)
            ring.paid_task(member, members[(i + 1) % 10])
    fair = LogBuilder(now=ring.now)
    honest, workers = pubkey("honest-boss"), [pubkey(f"honest-{i}") for i in range(10)]
    for i, worker in enumerate(workers):
        for j in range(10):
            fair.paid_task(honest, pubkey(f"stranger-{i}-{j}"))
            fair.paid_task(pubkey(f"client-{i}-{j}"), worker)
            fair.paid_task(worker, pubkey(f"helper-{i}-{j}"))
    ring_index, fair_index = indexed(ring), indexed(fair)
    ring_boss, fair_boss = score_card(ring_index, boss), score_card(fair_index, honest)
    assert ring_boss.metrics["employer"]["completed"] == fair_boss.metrics["employer"]["completed"]
    assert (
        ring_boss.metrics["employer"]["volume_msat"] == fair_boss.metrics["employer"]["volume_msat"]
    )
    assert ring_boss.score < fair_boss.score
    for member, worker in zip(members, workers, strict=True):
        ring_card, fair_card = score_card(ring_index, member), score_card(fair_index, worker)
        assert ring_card.score < fair_card.score
        assert ring_card.metrics["employer"]["effective_counterparties_milli"] == 1000
    assert (ring_boss.score, fair_boss.score) == (908, 969)


def test_more_successes_and_less_age_score_higher() -> None:
    few, many, old = LogBuilder(), LogBuilder(), LogBuilder()
    for i in range(3):
        few.paid_task(E, pubkey(f"w{i}"))
    for i in range(12):
        many.paid_task(E, pubkey(f"w{i}"))
    for i in range(12):
        old.paid_task(E, pubkey(f"w{i}"))
    old.now += 365 * DAY
    old.create(pubkey("someone else"))
    scores = [score_card(indexed(log), E).score for log in (few, many, old)]
    assert scores[0] < scores[1] and scores[2] < scores[1]
    assert wilson_lower_bound_permille(0, 0) == 0


def test_reviews_count_only_for_parties_once_after_the_task_closed() -> None:
    log = LogBuilder()
    task = log.paid_task(E, W1)
    stranger = pubkey("stranger")
    log.review_record(task, stranger, "worker", E, 5)  # rseq 0: not a party
    log.review_record(task, W1, "employer", E, 5)  # rseq 1: wrong role in the receipt
    log.review_record(task, W1, "worker", E, 5)  # rseq 2: counts
    log.review_record(task, W1, "worker", E, 1)  # rseq 3: second review by W1
    log.review_record(task, E, "employer", W1, 3)  # rseq 4: counts
    refunded = log.create(E)
    log.fund(refunded)
    log.refund(refunded, "cancelled by the employer")
    log.review_record(refunded, E, "employer", W1, 1)  # rseq 5: no worker on that task
    indexer = indexed(log)
    assert sorted(indexer.rejected_reviews) == [0, 1, 3, 5]
    assert "took no part" in indexer.rejected_reviews[0]
    assert "role" in indexer.rejected_reviews[1]
    assert "already" in indexer.rejected_reviews[3]
    assert score_card(indexer, E).metrics["employer"]["reviews"] == 1
    assert score_card(indexer, W1).metrics["worker"]["rating_avg_milli"] == 3000


def test_a_review_delivered_before_its_task_closed_waits_for_it() -> None:
    log = LogBuilder()
    task = log.paid_task(E, W1)
    log.review_record(task, W1, "worker", E, 5)
    indexer = Indexer(operator_pubkey=OPERATOR)
    indexer.add_many(log.records + log.entries[:-1])
    assert score_card(indexer, E).metrics["employer"]["reviews"] == 0
    indexer.add(log.entries[-1])
    assert score_card(indexer, E).metrics["employer"]["reviews"] == 1
    assert indexer.rejected_reviews == {}


def test_an_assigned_worker_counts_as_the_tasks_worker() -> None:
    """An assignment (claim mode apply) is a claim in the applicant's name: the paid task is
    the assignee's like a claimed one would be, and with the same metrics."""
    by_claim, by_assignment = LogBuilder(), LogBuilder()
    by_claim.paid_task(E, W1)
    task_id = by_assignment.create(E, 100_000_000)
    by_assignment.fund(task_id, 100_000_000)
    by_assignment.entry(task_id, {"type": "ApplicationFiled", "actor": W1, "worker_pubkey": W1})
    by_assignment.entry(task_id, {"type": "WorkerAssigned", "actor": E, "worker_pubkey": W1})
    by_assignment.proof(task_id, W1)
    by_assignment.approve(task_id, E)
    by_assignment.release(task_id)
    claimed, assigned = indexed(by_claim).roles[W1]["worker"], indexed(by_assignment).roles[W1]
    assert assigned["worker"].completed == 1
    counts = ("tasks", "funded", "completed", "volume_msat", "proof_n", "paid_n")
    assert [getattr(assigned["worker"], n) for n in counts] == [getattr(claimed, n) for n in counts]
