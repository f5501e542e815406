"""The indexer across an operator key rotation, over scripted logs: entries follow the chain of
keys from the starting one, a receipt counts only when signed by the key of its task's final
entry, a record only when signed by that key or a later one, in any delivery order."""

from __future__ import annotations

import random

import pytest
from support.log_builder import OPERATOR, LogBuilder, pubkey

from taskhold.reputation.metrics import Indexer
from taskhold.reputation.score import check_receipts, score_card

E, W1, W2 = pubkey("employer"), pubkey("worker-1"), pubkey("worker-2")
NEW = pubkey("operator, second key")
STRANGER = pubkey("not an operator key")


def rotated() -> tuple[LogBuilder, dict[str, int]]:
    """T1 paid under the first key, a rotation, T2 paid under the second key; then reviews
    (all records signed after the rotation, by the new key unless said otherwise)."""
    log = LogBuilder()
    t1 = log.paid_task(E, W1)
    log.rotate(NEW)
    t2 = log.paid_task(E, W2)
    rseq = {}
    log.review_record(t1, W1, "worker", E, 5)  # receipt by the old key, as issued
    rseq["old receipt"] = 0
    log.review_record(t2, W2, "worker", E, 1, receipt_by=OPERATOR)  # T2 closed under NEW
    rseq["receipt by a retired key"] = 1
    log.review_record(t1, E, "employer", W1, 2, receipt_by=STRANGER)
    rseq["receipt by a stranger"] = 2
    log.review_record(t2, E, "employer", W2, 4, record_by=OPERATOR)
    rseq["record by a key retired before the close"] = 3
    log.review_record(t2, E, "employer", W2, 3)  # the same review, properly recorded
    rseq["new receipt"] = 4
    return log, rseq


def test_reviews_follow_the_key_that_signed_the_final_entry() -> None:
    log, rseq = rotated()
    indexer = Indexer(operator_pubkey=OPERATOR)
    indexer.add_many(log.entries + log.records)
    assert indexer.operator_keys == (OPERATOR, NEW) and indexer.operator_key == NEW
    assert indexer.head_gseq == len(log.entries) - 1 and indexer.head_rseq == 4
    assert sorted(indexer.rejected_reviews) == sorted(
        rseq[name]
        for name in (
            "receipt by a retired key",
            "receipt by a stranger",
            "record by a key retired before the close",
        )
    )
    for name in ("receipt by a retired key", "receipt by a stranger"):
        assert (
            "not signed by the operator key that signed the task's final entry"
            in (indexer.rejected_reviews[rseq[name]])
        )
    assert (
        "nor by a key the log was handed to after it"
        in (indexer.rejected_reviews[rseq["record by a key retired before the close"]])
    )
    employer = score_card(indexer, E).metrics["employer"]
    assert (employer["reviews"], employer["rating_avg_milli"]) == (1, 5000)
    assert score_card(indexer, W2).metrics["worker"]["reviews"] == 1  # the rseq 4 review
    assert score_card(indexer, W1).metrics["worker"]["reviews"] == 0


def test_a_single_key_indexer_would_drop_everything_after_the_rotation() -> None:
    """Only the chain makes the second half count: the new key's entries are not the old one's."""
    log, _ = rotated()
    stuck = Indexer(operator_pubkey=NEW)
    stuck.add_many(log.entries + log.records)
    assert stuck.head_gseq == -1
    trusted = Indexer(operator_pubkey=None)  # the service's mode: the database vouches
    trusted.add_many(log.entries + log.records)
    chained = Indexer(operator_pubkey=OPERATOR)
    chained.add_many(log.entries + log.records)
    assert {s: score_card(trusted, s) for s in trusted.subjects()} == {
        s: score_card(chained, s) for s in chained.subjects()
    }
    assert trusted.operator_keys == chained.operator_keys == (OPERATOR, NEW)


@pytest.mark.parametrize("seed", range(6))
def test_any_delivery_order_gives_the_same_result_across_the_rotation(seed: int) -> None:
    """Records by the new key may come before the rotation entry, entries by the new key before
    the entry that hands the log over, and stale copies signed by the old key anywhere."""
    log, _ = rotated()
    in_order = Indexer(operator_pubkey=OPERATOR)
    in_order.add_many(log.entries + log.records)
    expected = {s: score_card(in_order, s) for s in in_order.subjects()}
    after = next(i for i, e in enumerate(log.entries) if e["pubkey"] == NEW)
    stale = [
        {**entry, "id": "5" * 63 + str(n), "pubkey": OPERATOR}
        for n, entry in enumerate(log.entries[after : after + 3])
    ]
    events = [*log.entries, *log.records, *stale]
    random.Random(seed).shuffle(events)
    indexer = Indexer(operator_pubkey=OPERATOR)
    indexer.add_many(events)
    assert indexer.waiting == 0
    assert indexer.rejected_reviews == in_order.rejected_reviews
    assert {s: score_card(indexer, s) for s in indexer.subjects()} == expected


def test_a_record_by_a_key_not_yet_handed_to_waits_like_a_gap() -> None:
    log, _ = rotated()
    rotation = next(e for e in log.entries if e["tags"][0] == ["op", "KeyRotated"])
    before = [e for e in log.entries if e["created_at"] < rotation["created_at"]]
    indexer = Indexer(operator_pubkey=OPERATOR)
    indexer.add_many(before + log.records)
    assert indexer.head_rseq == -1 and indexer.waiting == len(log.records)
    indexer.add_many(log.entries)
    assert indexer.head_rseq == len(log.records) - 1 and indexer.waiting == 0


def test_standalone_receipts_are_checked_against_the_final_entry_and_its_key() -> None:
    log, _ = rotated()
    indexer = Indexer(operator_pubkey=OPERATOR)
    indexer.add_many(log.entries)
    t1, t2 = (e["tags"][0][1] for e in log.entries if e["tags"][1] == ["op", "ReleaseCompleted"])
    closed = indexer.closed(t1)
    assert closed is not None and closed.signer == OPERATOR and closed.era == 0
    later = indexer.closed(t2)
    assert later is not None and later.signer == NEW and later.era == 1

    def receipt(task_id: str, signer: str, final: str, name: str) -> dict[str, object]:
        return {
            "id": pubkey(name),
            "pubkey": signer,
            "kind": 3913,
            "tags": [["task", task_id], ["p", E], ["role", "employer"], ["subject", W1],
                     ["e", final]],
        }  # fmt: skip

    assert closed.entry_id != later.entry_id
    good = receipt(t1, OPERATOR, closed.entry_id, "good")
    by_new_key = receipt(t1, NEW, closed.entry_id, "re-signed after the rotation")
    moved = receipt(t1, OPERATOR, later.entry_id, "names another closing")
    problems = check_receipts(log.entries, [good, by_new_key, moved], operator_pubkey=OPERATOR)
    assert [(p.event_id, p.task_id) for p in problems] == [
        (by_new_key["id"], t1),
        (moved["id"], t1),
    ]
    assert "signed the task's final entry" in problems[0].reason
    assert "does not name the task's final entry" in problems[1].reason
