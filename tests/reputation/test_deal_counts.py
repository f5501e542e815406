"""Score version 2 counts the deal: an employer's rejections, overturned rejections and refunds
after a proof, a worker's revoked and released claims, agreements and split rulings; each counted
only from ops the counted party (or its counterparty, for a revocation) signed."""

from __future__ import annotations

import pytest
from support.log_builder import OPERATOR, LogBuilder, pubkey

from taskhold.reputation.counters import DEAL_COUNTERS
from taskhold.reputation.metrics import Indexer
from taskhold.reputation.policy import ReputationPolicy
from taskhold.reputation.score import SCORE_VERSION, score_card

E, W, W2 = pubkey("employer"), pubkey("worker"), pubkey("worker-2")
STRANGER = pubkey("stranger")


def indexed(log: LogBuilder, version: str = SCORE_VERSION) -> Indexer:
    indexer = Indexer(operator_pubkey=OPERATOR, version=version)
    indexer.add_many(log.entries + log.records)
    return indexer


def metrics(indexer: Indexer, who: str, role: str) -> dict[str, int | None]:
    return score_card(indexer, who).metrics[role]


def outcomes(indexer: Indexer, who: str, role: str) -> list[tuple[str, int, int]]:
    """(counterparty, success quarters, divisor) of each outcome."""
    counted = indexer.role(who, role)
    return (
        []
        if counted is None
        else [(o.counterparty, o.success_quarters, o.divisor) for o in counted.outcomes]
    )


def deal(indexer: Indexer, who: str, role: str) -> dict[str, int | None]:
    found = metrics(indexer, who, role)
    return {name: found[name] for name in DEAL_COUNTERS}


def counts(**given: int) -> dict[str, int]:
    return {name: given.get(name, 0) for name in DEAL_COUNTERS}


# the employer ---------------------------------------------------------------------------------


def test_a_rejection_the_arbiter_overturns_is_counted_and_is_a_failure() -> None:
    log = LogBuilder()
    task = log.submitted_task(E, W)
    log.reject(task, E)
    log.dispute(task, W)
    log.resolve(task, "worker")
    log.release(task)
    indexer = indexed(log)
    assert deal(indexer, E, "employer") == counts(rejections=1, rejections_overturned=1)
    assert metrics(indexer, E, "employer")["disputes_lost"] == 1
    assert outcomes(indexer, E, "employer") == [(W, 0, 1)]
    assert outcomes(indexer, W, "worker") == [(E, 4, 1)]


@pytest.mark.parametrize(
    "lapses",
    [
        ["RejectionLapsed"],
        ["DisputeWindowElapsed"],
        ["RejectionLapsed", "RejectionLapsed", "DisputeWindowElapsed"],
    ],
)
def test_a_rejection_that_lapsed_unbacked_is_overturned_once(lapses: list[str]) -> None:
    log = LogBuilder()
    task = log.submitted_task(E, W)
    log.reject(task, E)
    for op in lapses:
        log.entry(task, {"type": op, "actor": "system"})
    log.release(task)
    indexer = indexed(log)
    assert deal(indexer, E, "employer") == counts(rejections=1, rejections_overturned=1)
    assert outcomes(indexer, E, "employer") == [(W, 0, 1)]
    assert metrics(indexer, E, "employer")["verified_to_paid_s"] == 60


def test_a_dispute_window_that_ran_out_without_a_rejection_overturns_nothing() -> None:
    log = LogBuilder()
    task = log.submitted_task(E, W)
    log.entry(task, {"type": "DisputeOpened", "actor": W, "reason": "late"})
    log.entry(task, {"type": "DisputeWindowElapsed", "actor": "system"})
    log.release(task)
    indexer = indexed(log)
    assert deal(indexer, E, "employer") == counts()
    assert outcomes(indexer, E, "employer") == [(W, 4, 1)]


@pytest.mark.parametrize("actor", [STRANGER, W, "system"], ids=["stranger", "worker", "system"])
def test_only_the_employers_own_rejection_counts_against_it(actor: str) -> None:
    log = LogBuilder()
    task = log.submitted_task(E, W)
    log.reject(task, actor)
    log.rejection_lapsed(task)
    log.release(task)
    indexer = indexed(log)
    assert deal(indexer, E, "employer") == counts()
    assert outcomes(indexer, E, "employer") == [(W, 4, 1)]


def test_a_rejection_the_arbiter_backed_ends_in_a_refund_that_is_no_success() -> None:
    log = LogBuilder()
    task = log.submitted_task(E, W)
    log.reject(task, E)
    log.dispute(task, W)
    log.resolve(task, "employer")
    log.refund(task, "the arbiter ruled for the employer")
    indexer = indexed(log)
    assert deal(indexer, E, "employer") == counts(rejections=1, refunds_after_proof=1)
    assert outcomes(indexer, E, "employer") == []  # backed, so no failure; never a success
    assert outcomes(indexer, W, "worker") == [(E, 0, 1)]
    version_1 = indexed(log, "1")
    assert outcomes(version_1, E, "employer") == [(W, 4, 1)]  # what version 1 called a success


def test_a_refund_after_a_rejection_nobody_backed_is_a_failure_of_the_employer() -> None:
    log = LogBuilder()
    task = log.submitted_task(E, W)
    log.reject(task, E)
    log.refund(task, "rejected")
    indexer = indexed(log)
    assert deal(indexer, E, "employer") == counts(rejections=1, refunds_after_proof=1)
    assert outcomes(indexer, E, "employer") == [(W, 0, 1)]
    assert outcomes(indexer, W, "worker") == []  # the employer's word alone: not against W
    assert outcomes(indexed(log, "1"), W, "worker") == [(E, 0, 1)]


def test_a_refund_after_a_proof_the_employer_never_contested_does_not_count_against_it() -> None:
    """A payout that kept failing: the worker can cause it, so it must not lower the
    employer's score (and it is no success either)."""
    log = LogBuilder()
    task = log.submitted_task(E, W)
    log.approve(task, E)
    log.entry(task, {"type": "PayoutFailed", "actor": "system", "reason": "no route"})
    log.refund(task, "hold invoice within 12 blocks of expiry and the payout failed")
    indexer = indexed(log)
    assert deal(indexer, E, "employer") == counts(refunds_after_proof=1)
    assert outcomes(indexer, E, "employer") == []
    assert outcomes(indexer, W, "worker") == [(E, 0, 1)]


def test_a_refund_before_any_proof_is_still_the_employers_success() -> None:
    log = LogBuilder()
    task = log.create(E)
    log.fund(task)
    log.claim(task, W)
    log.refund(task, "deadline passed without proof")
    indexer = indexed(log)
    assert deal(indexer, E, "employer") == counts()
    assert outcomes(indexer, E, "employer") == [(W, 4, 1)]
    assert outcomes(indexer, W, "worker") == [(E, 0, 1)]


# agreements and splits ------------------------------------------------------------------------


def test_a_cooperative_cancel_is_no_refund_after_proof_and_no_outcome() -> None:
    log = LogBuilder()
    task = log.submitted_task(E, W)
    log.agree(task, 0)
    log.refund(task, "cancelled by agreement")
    indexer = indexed(log)
    assert deal(indexer, E, "employer") == counts()
    assert metrics(indexer, E, "employer")["refunded"] == 1
    assert outcomes(indexer, E, "employer") == outcomes(indexer, W, "worker") == []


@pytest.mark.parametrize(
    ("worker_msat", "employer_msat", "worker_q"),
    [(60_000_000, 40_000_000, 2), (70_000_000, 30_000_000, 3), (90_000_000, 10_000_000, 4)],
)
def test_an_arbiters_split_gives_each_side_its_share_in_quarters(
    worker_msat: int, employer_msat: int, worker_q: int
) -> None:
    log = LogBuilder()
    task = log.submitted_task(E, W)
    log.reject(task, E)
    log.dispute(task, W)
    log.resolve(task, "split")
    log.split(task, worker_msat, employer_msat)
    log.release(task)
    indexer = indexed(log)
    assert outcomes(indexer, W, "worker") == [(E, worker_q, 1)]
    assert outcomes(indexer, E, "employer") == [(W, 4 - worker_q, 1)]
    assert deal(indexer, E, "employer") == counts(rejections=1)  # partly right: not overturned
    employer = metrics(indexer, E, "employer")
    assert (employer["disputes_won"], employer["disputes_lost"]) == (0, 0)


def test_a_paid_agreement_is_the_employers_success_and_the_workers_share() -> None:
    log = LogBuilder()
    task = log.submitted_task(E, W)
    log.agree(task, 60_000_000)
    log.release(task)
    indexer = indexed(log)
    assert outcomes(indexer, E, "employer") == [(W, 4, 1)]
    assert outcomes(indexer, W, "worker") == [(E, 2, 1)]


def test_an_agreement_or_split_that_unwound_to_a_refund_is_no_outcome() -> None:
    log = LogBuilder()
    agreed = log.submitted_task(E, W)
    log.agree(agreed, 60_000_000)
    log.refund(agreed, "a share could not be paid")
    split = log.submitted_task(E, W2)
    log.split(split, 60_000_000, 40_000_000)
    log.refund(split, "a share could not be paid")
    indexer = indexed(log)
    assert outcomes(indexer, E, "employer") == []
    assert outcomes(indexer, W, "worker") == outcomes(indexer, W2, "worker") == []


# the worker -----------------------------------------------------------------------------------


def test_a_revoked_claim_counts_against_the_worker_and_leaves_its_volume() -> None:
    log = LogBuilder()
    task = log.create(E)
    log.fund(task)
    log.claim(task, W)
    log.revoke(task, E, W)
    log.claim(task, W2)
    log.proof(task, W2)
    log.approve(task, E)
    log.release(task)
    indexer = indexed(log)
    assert deal(indexer, W, "worker") == counts(revocations=1)
    revoked = metrics(indexer, W, "worker")
    assert (revoked["tasks"], revoked["volume_msat"], revoked["counterparties"]) == (1, 0, 0)
    assert outcomes(indexer, W, "worker") == [(E, 0, 1)]
    assert outcomes(indexer, W2, "worker") == [(E, 4, 1)]
    assert metrics(indexer, W2, "worker")["time_to_first_proof_s"] == 60
    employer = metrics(indexer, E, "employer")
    assert (employer["counterparties"], employer["completed"]) == (1, 1)
    assert outcomes(indexer, E, "employer") == [(W2, 4, 1)]


@pytest.mark.parametrize(
    "revocation",
    [
        pytest.param((STRANGER, W), id="by-a-stranger"),
        pytest.param((W2, W), id="by-another-worker"),
        pytest.param((W, W), id="by-the-worker"),
        pytest.param((E, W2), id="of-someone-not-holding-the-claim"),
    ],
)
def test_a_revocation_counts_only_by_the_employer_of_the_worker_holding_the_claim(
    revocation: tuple[str, str],
) -> None:
    log = LogBuilder()
    task = log.create(E)
    log.fund(task)
    log.claim(task, W)
    log.revoke(task, *revocation)
    log.proof(task, W)
    log.approve(task, E)
    log.release(task)
    indexer = indexed(log)
    assert deal(indexer, W, "worker") == deal(indexer, W2, "worker") == counts()
    assert outcomes(indexer, W, "worker") == [(E, 4, 1)]


def test_a_revocation_after_a_proof_is_not_counted() -> None:
    log = LogBuilder()
    task = log.submitted_task(E, W)
    log.revoke(task, E, W)
    log.approve(task, E)
    log.release(task)
    indexer = indexed(log)
    assert deal(indexer, W, "worker") == counts()
    assert outcomes(indexer, W, "worker") == [(E, 4, 1)]


def test_an_unclaim_counts_at_half_weight_and_only_by_the_worker() -> None:
    log = LogBuilder()
    task = log.create(E)
    log.fund(task)
    log.claim(task, W)
    log.unclaim(task, W, actor=E)  # the employer cannot unclaim for the worker
    log.unclaim(task, W)
    log.unclaim(task, W)  # the claim is gone: nothing more to release
    indexer = indexed(log)
    assert deal(indexer, W, "worker") == counts(unclaims=1)
    assert outcomes(indexer, W, "worker") == [(E, 0, 2)]
    assert metrics(indexer, E, "employer")["counterparties"] == 0


# the scores, thinking like the other side ----------------------------------------------------


def test_an_employer_who_rejects_and_refunds_scores_below_one_who_pays() -> None:
    log = LogBuilder()
    payer, rejecter = pubkey("payer"), pubkey("rejecter")
    for i in range(6):
        log.paid_task(payer, pubkey(f"paid-worker-{i}"))
        task = log.submitted_task(rejecter, pubkey(f"rejected-worker-{i}"))
        log.reject(task, rejecter)
        log.refund(task, "rejected")
    version_1, version_2 = indexed(log, "1"), indexed(log)
    assert score_card(version_1, rejecter).score == score_card(version_1, payer).score  # the bug
    assert score_card(version_2, rejecter).score == 0
    assert score_card(version_2, payer).score == score_card(version_1, payer).score > 500
    assert deal(version_2, rejecter, "employer") == counts(rejections=6, refunds_after_proof=6)


def test_a_squatter_scores_below_a_worker_who_unclaims_who_scores_below_a_reliable_one() -> None:
    log = LogBuilder()
    squatter, leaver, reliable = pubkey("squatter"), pubkey("leaver"), pubkey("reliable")
    for worker in (squatter, leaver, reliable):
        for i in range(6):
            log.paid_task(pubkey(f"client-{worker}-{i}"), worker)
    for i in range(6):
        for worker in (squatter, leaver):
            employer = pubkey(f"victim-{worker}-{i}")
            task = log.create(employer)
            log.fund(task)
            log.claim(task, worker)
            if worker == squatter:
                log.revoke(task, employer, worker)
            else:
                log.unclaim(task, worker)
    indexer = indexed(log)
    scores = [score_card(indexer, w).score for w in (squatter, leaver, reliable)]
    assert scores[0] < scores[1] < scores[2]
    assert deal(indexer, squatter, "worker") == counts(revocations=6)
    assert deal(indexer, leaver, "worker") == counts(unclaims=6)
    version_1 = indexed(log, "1")
    assert len({score_card(version_1, w).score for w in (squatter, leaver, reliable)}) == 1


def test_a_thousand_stranger_keys_cannot_move_someone_elses_score() -> None:
    """Strangers may claim and drop an employer's task and may sign any op they like; none of
    it is a rejection by that employer or a revocation by a worker's employer."""

    def history(attack: bool) -> LogBuilder:
        log = LogBuilder()
        if attack:
            bait = log.create(E)
            log.fund(bait)
            held = log.create(pubkey("other-employer"))
            log.fund(held)
            log.claim(held, W)
            for i in range(1000):
                stranger = pubkey(f"sybil-{i}")
                log.claim(bait, stranger, dt=0)
                log.unclaim(bait, stranger)
                log.revoke(held, stranger, W)
                log.unclaim(held, W, actor=stranger)
                log.reject(held, stranger)
        for i in range(5):
            log.paid_task(E, pubkey(f"w{i}"))
            log.paid_task(pubkey(f"e{i}"), W)
        return log

    clean, attacked = indexed(history(False)), indexed(history(True))
    for who, role in ((E, "employer"), (W, "worker")):
        assert score_card(attacked, who).score == score_card(clean, who).score > 0
        assert deal(attacked, who, role) == counts()
    assert metrics(attacked, E, "employer")["counterparties"] == 5


def test_revoking_ones_own_sock_puppets_changes_nothing_for_the_employer() -> None:
    def history(puppets: int) -> LogBuilder:
        log = LogBuilder()
        for i in range(puppets):
            task = log.create(E)
            log.fund(task)
            puppet = pubkey(f"puppet-{i}")
            log.claim(task, puppet)
            log.revoke(task, E, puppet)
            log.claim(task, pubkey(f"w{i}"))
            log.proof(task, pubkey(f"w{i}"))
            log.approve(task, E)
            log.release(task)
        return log

    plain = LogBuilder()
    for i in range(5):
        plain.paid_task(E, pubkey(f"w{i}"))
    with_puppets = indexed(history(5))
    employer = metrics(with_puppets, E, "employer")
    assert employer["counterparties"] == 5
    assert employer["effective_counterparties_milli"] == 5000
    assert outcomes(with_puppets, E, "employer") == outcomes(indexed(plain), E, "employer")


# versions ---------------------------------------------------------------------------------------


def test_version_1_ignores_the_deals_ops_and_publishes_none_of_its_counters() -> None:
    log = LogBuilder()
    task = log.create(E)
    log.fund(task)
    log.claim(task, W)
    log.revoke(task, E, W)
    indexer = indexed(log, "1")
    card = score_card(indexer, W)
    assert card.version == "1"
    assert not set(DEAL_COUNTERS) & set(card.metrics["worker"])
    assert card.metrics["worker"]["volume_msat"] == 100_000_000
    assert outcomes(indexer, W, "worker") == []


def test_an_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="no score version"):
        Indexer(version="3")


def test_policies_follow_the_honest_counts_for_both_parties() -> None:
    """The review window is shortened only when both records are good, and proof of work is
    asked of a low score: an employer who rejects and refunds, or a squatter, loses both
    privileges that version 1 gave them."""
    log = LogBuilder()
    payer, rejecter = pubkey("payer"), pubkey("rejecter")
    reliable, squatter = pubkey("reliable"), pubkey("squatter")
    for i in range(12):
        log.paid_task(payer, pubkey(f"paid-worker-{i}"))
        log.paid_task(pubkey(f"client-reliable-{i}"), reliable)
        log.paid_task(pubkey(f"client-squatter-{i}"), squatter)
        task = log.submitted_task(rejecter, pubkey(f"rejected-worker-{i}"))
        log.reject(task, rejecter)
        log.refund(task, "rejected")
        victim = pubkey(f"victim-{i}")
        task = log.create(victim)
        log.fund(task)
        log.claim(task, squatter)
        log.revoke(task, victim, squatter)
    policy = ReputationPolicy(pow_max_bits=12)
    default_s = 86_400
    for version, shortened in (("1", {"payer", "rejecter"}), ("2", {"payer"})):
        indexer = indexed(log, version)
        score = {who: score_card(indexer, who).score for who in (payer, rejecter, reliable)}
        windows = {
            name: policy.review_window_for(score[who], score[reliable], default_s)
            for name, who in (("payer", payer), ("rejecter", rejecter))
        }
        assert {name for name, window in windows.items() if window < default_s} == shortened
        squatter_score = score_card(indexer, squatter).score
        assert (policy.pow_bits_for(squatter_score) > 0) is (version == "2")
        assert (policy.pow_bits_for(score[rejecter]) > 0) is (version == "2")
        worker_window = policy.review_window_for(score[payer], squatter_score, default_s)
        assert (worker_window == default_s) is (version == "2")
