"""The reputation score: a deterministic, versioned function of what the indexer counted.

Version ``1``, for one pubkey, over both roles together:

* every closed task with a counterparty is one *outcome*: success (4/4) or failure (0/4), see
  ``metrics``; a review counts as an outcome worth half a task with success ``(rating - 1)/4``;
* an outcome weighs ``volume * decay * damping`` in fixed point (``Q`` = 2^20 is 1.0):
  - volume: ``bit_length(amount in sat) / 14``, so a 10 000 sat task weighs about 1, a million
    sat one 1.43: volume counts, logarithmically, so pumping it buys little;
  - decay: halves every 90 days of age, linear in between; age is the time from the outcome's
    final entry to the newest entry covered (``created_at`` of ``gseq_to``), never the clock;
  - damping: ``1/sqrt(n)`` for each of ``n`` outcomes shared with one counterparty, so ten tasks
    with one partner count like three with strangers (a sybil ring buys little);
* the score is the Wilson lower bound (z = 1.96) of the weighted success rate, in per mille
  (0 to 1000): few outcomes or failures keep it low; nothing at all is 0.

Version ``2`` (``SCORE_VERSION``) keeps all of that and counts the deal honestly. It publishes
five more metrics (``counters.DEAL_COUNTERS``): an employer's ``rejections``, its
``rejections_overturned`` (an arbiter ruled for the worker, or the rejection lapsed unbacked:
``RejectionLapsed``, or ``DisputeWindowElapsed`` after it) and its ``refunds_after_proof``; a
worker's ``revocations`` and ``unclaims``. Outcomes of a closed task with a worker, in quarters:

* paid in full: employer 4, worker 4; but the employer 0 if it lost a dispute or a rejection of
  its own was overturned (rejecting good work is a failure, not a success);
* refunded before any proof: employer 4, worker 0 (as in version 1);
* refunded after a proof: never a success for the employer. When the employer had rejected
  or disputed the proof and no arbiter ruled for it, it is the employer's failure (0) and no
  outcome for the worker: the employer's unbacked word is evidence against nobody else.
  Otherwise (an arbiter backed it, or a payout failed) it is no outcome for the employer, since
  the worker can cause those and a stranger must not be able to lower an employer's score with
  ops it signs itself, and the worker's 0 unless it won a dispute (as in version 1);
* an arbiter's split (``SplitDecided``) paid: worker ``round(4 W / (W + E))``, employer the
  rest of the 4: the ruling measures how far each side was right;
* an agreement both parties signed (``AgreementAccepted``) paid: employer 4, worker
  ``round(4 W / amount)``. A cooperative cancel (``W`` = 0) is no outcome for either side, and
  is not a refund after a proof: the worker's signature says the deal ended by consent, and
  counting it would make an employer refuse a cancel and reject instead. An agreement or split
  that unwound to a refund (a share could not be paid) is no outcome for either side.

A claim the task's employer revoked after the claim timeout (``ClaimRevoked``) is a failure of
the worker at a full task's weight, with the employer as counterparty (so damping bounds what
one employer can do); an unclaim (``ClaimReleased``) is a failure at half a task's weight:
leaving early frees the task, squatting until revoked blocks it, so squatting costs twice as
much. Only the employer's own ``SubmissionRejected`` counts as its rejection, and only a
revocation by the task's employer of the worker holding the claim counts against that worker;
an abandoned claim also leaves the worker's volume and both sides' counterparties, so claiming
and dropping tasks (or revoking one's own sock puppet) makes no record look busier or more
varied, and gives the employer no outcome at all.

Integers only, so every machine produces the same bytes. Changing any constant or rule here is
a new version; assertions of every version in ``SCORE_VERSIONS`` still recompute by their own
rules. :func:`recompute` replays the log and checks published assertions (kind 30382) against
it; the auditor calls it, so this module uses the standard library and ``metrics`` only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .metrics import (
    LATEST_VERSION,
    ROLES,
    VERSIONS,
    Indexer,
    IndexerKinds,
    Outcome,
    RoleMetrics,
    SequenceConflict,
)
from .review_rules import receipt_problems, str_tag

__all__ = [
    "SCORE_VERSION",
    "SCORE_VERSIONS",
    "Mismatch",
    "ReceiptProblem",
    "RecomputeReport",
    "ScoreCard",
    "SequenceConflict",
    "assertion_tags",
    "check_receipts",
    "recompute",
    "score_card",
    "score_outcomes",
    "wilson_lower_bound_permille",
]

SCORE_VERSION = LATEST_VERSION
"""The version a running taskhold publishes."""
SCORE_VERSIONS = VERSIONS
"""Every version :func:`recompute` checks, each by its own rules."""
Q = 1 << 20
REFERENCE_BITS = 14
HALF_LIFE_S = 90 * 86_400
REVIEW_DIVISOR = 2
Z2_NUM, Z2_DEN = 38_416, 10_000
"""z² = 1.96² as a fraction."""


def volume_weight_q(amount_msat: int) -> int:
    return max(1, (amount_msat // 1000).bit_length()) * Q // REFERENCE_BITS


def decay_q(age_s: int) -> int:
    if age_s <= 0:
        return Q
    halvings, rest = divmod(age_s, HALF_LIFE_S)
    if halvings >= 40:
        return 0
    value = Q >> halvings
    return value - value * rest // (2 * HALF_LIFE_S)


def damping_q(shared: int) -> int:
    return math.isqrt(Q * Q // shared)


def wilson_lower_bound_permille(successes_q: int, trials_q: int) -> int:
    """Wilson lower bound of ``successes/trials`` (both in units of ``Q``), per mille, floored."""
    if trials_q <= 0:
        return 0
    z2_q = Z2_NUM * Q // Z2_DEN
    spread_q = successes_q * (trials_q - successes_q) // trials_q + z2_q // 4
    root_q = math.isqrt(Z2_NUM * spread_q * Q // Z2_DEN)
    numerator = successes_q + z2_q // 2 - root_q
    return max(0, 1000 * numerator // (trials_q + z2_q))


def score_outcomes(outcomes: Sequence[Outcome], now: int) -> tuple[int, int]:
    """(weighted successes, weighted trials) in units of ``Q``."""
    shared = Counter(outcome.counterparty for outcome in outcomes)
    damping = {counterparty: damping_q(n) for counterparty, n in shared.items()}
    successes = trials = 0
    for outcome in outcomes:
        weight = volume_weight_q(outcome.amount_msat) * decay_q(now - outcome.at) // Q
        weight = weight * damping[outcome.counterparty] // Q
        if outcome.review:
            weight //= REVIEW_DIVISOR
        weight //= outcome.divisor
        trials += weight
        successes += weight * outcome.success_quarters // 4
    return successes, trials


@dataclass(frozen=True, slots=True)
class ScoreCard:
    """One pubkey's score and metrics as of ``gseq_to`` (and review record ``rseq_to``)."""

    subject: str
    score: int
    role_scores: dict[str, int]
    metrics: dict[str, dict[str, int | None]]
    gseq_from: int
    gseq_to: int
    rseq_to: int
    version: str = SCORE_VERSION

    @property
    def rank(self) -> int:
        """NIP-85's ``rank``: 0 to 100."""
        return self.score // 10

    def to_json(self) -> dict[str, Any]:
        return {
            "pubkey": self.subject,
            "version": self.version,
            "score": self.score,
            "rank": self.rank,
            "roles": {
                role: {"score": self.role_scores[role], **self.metrics[role]} for role in ROLES
            },
            "gseq_from": self.gseq_from,
            "gseq_to": self.gseq_to,
            "rseq_to": self.rseq_to,
        }


def score_card(indexer: Indexer, subject: str) -> ScoreCard:
    """The subject's card at the indexer's applied head (an empty record scores 0)."""
    now = indexer.head_created_at
    role_scores: dict[str, int] = {}
    metrics: dict[str, dict[str, int | None]] = {}
    total_s = total_n = 0
    for role in ROLES:
        counted = indexer.role(subject, role) or RoleMetrics()
        successes, trials = score_outcomes(counted.outcomes, now)
        total_s, total_n = total_s + successes, total_n + trials
        role_scores[role] = wilson_lower_bound_permille(successes, trials)
        metrics[role] = counted.as_dict(deal_counters=indexer.version != "1")
    return ScoreCard(
        subject=subject,
        score=wilson_lower_bound_permille(total_s, total_n),
        role_scores=role_scores,
        metrics=metrics,
        gseq_from=0,
        gseq_to=indexer.head_gseq,
        rseq_to=indexer.head_rseq,
        version=indexer.version,
    )


def assertion_tags(card: ScoreCard, operator_pubkey: str) -> list[list[str]]:
    """The tags of the subject's NIP-85 assertion (kind 30382), in their one fixed order."""
    tags = [
        ["d", card.subject],
        ["p", card.subject],
        ["v", card.version],
        ["rank", str(card.rank)],
        ["score", str(card.score)],
        ["operator", operator_pubkey],
        ["gseq_from", str(card.gseq_from)],
        ["gseq_to", str(card.gseq_to)],
        ["rseq_to", str(card.rseq_to)],
    ]
    for role in ROLES:
        tags.append([f"{role}_score", str(card.role_scores[role])])
        for name, value in card.metrics[role].items():
            if value is not None:
                tags.append([f"{role}_{name}", str(value)])
    return tags


# recomputation -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A published assertion that the log does not reproduce."""

    event_id: str
    subject: str
    field: str
    published: str | None
    recomputed: str | None


@dataclass(frozen=True, slots=True)
class RecomputeReport:
    checked: int
    mismatches: tuple[Mismatch, ...]

    @property
    def clean(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True, slots=True)
class _Claim:
    event: Mapping[str, Any]
    subject: str
    gseq_to: int
    rseq_to: int
    version: str


def recompute(
    entries: Iterable[Mapping[str, Any]],
    assertions: Iterable[Mapping[str, Any]],
    *,
    review_records: Iterable[Mapping[str, Any]] = (),
    operator_pubkey: str | None = None,
    reputation_pubkey: str | None = None,
    kinds: IndexerKinds | None = None,
    assertion_kind: int = 30382,
    verify: Callable[[Mapping[str, Any]], bool] | None = None,
) -> RecomputeReport:
    """Replay the log and report every assertion whose tags it does not reproduce exactly.

    ``entries`` are the operator's kind-3910 entries and ``review_records`` its kind-3914
    records, in any order, as verified by the caller. Each assertion is recomputed over the
    entries up to its ``gseq_to`` and the records up to its ``rseq_to``. ``verify``, when given,
    checks each assertion's signature (and the reviews inside records); one that fails is a
    mismatch on ``sig``. Assertions by another key than ``reputation_pubkey`` (when given) and
    of other kinds are skipped.

    Each assertion is recomputed by the rules of the version its ``v`` tag names (one of
    ``SCORE_VERSIONS``), so assertions published before a version bump still verify; an
    unknown version is a mismatch on ``v``.

    ``operator_pubkey`` is the key the log starts with; the indexer follows ``KeyRotated``
    entries from it, so entries and records by later keys of the chain count, and an
    assertion's ``operator`` tag must name the key current after its ``gseq_to`` (the one that
    signs the next entry, which is the key a running taskhold publishes with).
    """
    claims: list[_Claim] = []
    mismatches: list[Mismatch] = []
    for event in assertions:
        if event.get("kind") != assertion_kind:
            continue
        if reputation_pubkey is not None and event.get("pubkey") != reputation_pubkey:
            continue
        claim, problem = _claim(event, verify)
        if problem is not None:
            mismatches.append(problem)
        elif claim is not None:
            claims.append(claim)
    log = _sorted_by(entries, "gseq")
    records = _sorted_by(review_records, "rseq")
    for version in SCORE_VERSIONS:
        mine = [claim for claim in claims if claim.version == version]
        mismatches.extend(
            _replay(mine, log, records, version, operator_pubkey, kinds, verify) if mine else ()
        )
    return RecomputeReport(checked=len(claims), mismatches=tuple(mismatches))


def _replay(
    claims: list[_Claim],
    log: list[tuple[int, Mapping[str, Any]]],
    records: list[tuple[int, Mapping[str, Any]]],
    version: str,
    operator_pubkey: str | None,
    kinds: IndexerKinds | None,
    verify: Callable[[Mapping[str, Any]], bool] | None,
) -> list[Mismatch]:
    """The mismatches of one version's claims, over one indexer of that version fed forward
    (a fresh one when a claim's ``rseq_to`` lies behind the head already applied)."""
    mismatches: list[Mismatch] = []
    indexer: Indexer | None = None
    fed_entries = fed_records = 0
    for claim in sorted(claims, key=lambda c: (c.gseq_to, c.rseq_to, str(c.event.get("id")))):
        if indexer is None or claim.rseq_to < indexer.head_rseq:
            indexer = Indexer(
                operator_pubkey=operator_pubkey, kinds=kinds, verify=verify, version=version
            )
            fed_entries = fed_records = 0
        while fed_entries < len(log) and log[fed_entries][0] <= claim.gseq_to:
            indexer.add(log[fed_entries][1])
            fed_entries += 1
        while fed_records < len(records) and records[fed_records][0] <= claim.rseq_to:
            indexer.add(records[fed_records][1])
            fed_records += 1
        event_id = str(claim.event.get("id"))
        if indexer.head_gseq != claim.gseq_to or indexer.head_rseq != claim.rseq_to:
            mismatches.append(
                Mismatch(
                    event_id,
                    claim.subject,
                    "range",
                    f"gseq_to {claim.gseq_to}, rseq_to {claim.rseq_to}",
                    f"the log available ends at gseq {indexer.head_gseq}, rseq {indexer.head_rseq}",
                )
            )
            continue
        operator = indexer.operator_key if operator_pubkey is not None else None
        expected = assertion_tags(score_card(indexer, claim.subject), operator or "")
        mismatches.extend(_compare(claim, expected, operator_pubkey is None))
    return mismatches


def _claim(
    event: Mapping[str, Any], verify: Callable[[Mapping[str, Any]], bool] | None
) -> tuple[_Claim | None, Mismatch | None]:
    event_id = str(event.get("id"))
    tags = _tag_map(event)
    subject = tags.get("d", "")
    if verify is not None and not verify(event):
        return None, Mismatch(event_id, subject, "sig", None, "the assertion does not verify")
    version = tags.get("v")
    if version not in SCORE_VERSIONS:
        return None, Mismatch(event_id, subject, "v", version, " or ".join(SCORE_VERSIONS))
    gseq_to, rseq_to = tags.get("gseq_to", ""), tags.get("rseq_to", "")
    if not subject or not _is_sequence(gseq_to) or not _is_sequence(rseq_to):
        return None, Mismatch(event_id, subject, "format", None, "d, gseq_to and rseq_to")
    return _Claim(event, subject, int(gseq_to), int(rseq_to), version), None


def _compare(claim: _Claim, expected: list[list[str]], any_operator: bool) -> list[Mismatch]:
    published = _tag_map(claim.event)
    wanted = {tag[0]: tag[1] for tag in expected}
    if any_operator and "operator" in published:
        wanted["operator"] = published["operator"]
    found = []
    for name in sorted(set(published) | set(wanted)):
        if published.get(name) != wanted.get(name):
            found.append(
                Mismatch(
                    str(claim.event.get("id")),
                    claim.subject,
                    name,
                    published.get(name),
                    wanted.get(name),
                )
            )
    return found


def _tag_map(event: Mapping[str, Any]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for tag in event.get("tags", ()):
        if isinstance(tag, list | tuple) and len(tag) > 1:
            tags.setdefault(str(tag[0]), str(tag[1]))
    return tags


def _is_sequence(text: str) -> bool:
    return text.isdigit() or text == "-1"


def _sorted_by(
    events: Iterable[Mapping[str, Any]], name: str
) -> list[tuple[int, Mapping[str, Any]]]:
    numbered = []
    for event in events:
        value = _tag_map(event).get(name, "")
        if value.isdigit():
            numbered.append((int(value), event))
    numbered.sort(key=lambda item: (item[0], str(item[1].get("id"))))
    return numbered


# receipts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiptProblem:
    """A published receipt (kind 3913) the log does not back."""

    event_id: str
    task_id: str
    reason: str


def check_receipts(
    entries: Iterable[Mapping[str, Any]],
    receipts: Iterable[Mapping[str, Any]],
    *,
    operator_pubkey: str,
    kinds: IndexerKinds | None = None,
    verify: Callable[[Mapping[str, Any]], bool] | None = None,
) -> list[ReceiptProblem]:
    """Every receipt that is not one the log allows: for a task the log closed PAID or REFUNDED
    with a worker, to one of its parties, naming the task's final entry and signed by the
    operator key that signed it (which, after a rotation, may be an older key of the chain).

    ``entries`` as for :func:`recompute`; ``receipts`` are the operator's kind-3913 events
    from every key of the chain. Raises SequenceConflict on an equivocated log."""
    indexer = Indexer(operator_pubkey=operator_pubkey, kinds=kinds)
    for _gseq, entry in _sorted_by(entries, "gseq"):
        indexer.add(entry)
    problems: list[ReceiptProblem] = []
    for receipt in receipts:
        if receipt.get("kind") != indexer.kinds.receipt:
            continue
        event_id, task_id = str(receipt.get("id")), str_tag(receipt, "task") or ""
        closed = indexer.closed(task_id)
        if verify is not None and not verify(receipt):
            reasons = ["it does not verify"]
        elif closed is None:
            reasons = ["its task did not close PAID or REFUNDED with a worker in the log"]
        else:
            reviewer = str_tag(receipt, "p") or ""
            reasons = receipt_problems(
                receipt, task_id, reviewer, closed, receipt_kind=indexer.kinds.receipt
            )
        if reasons:
            problems.append(ReceiptProblem(event_id, task_id, "; ".join(reasons)))
    return problems
