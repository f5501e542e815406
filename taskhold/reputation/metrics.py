"""The reputation indexer: what the public log proves about each pubkey, per role.

It consumes signed log entries (kind 3910) and review records (kind 3914) as the plain dicts
relays deliver, in any order. Entries are applied strictly in ``gseq`` order: one that arrives
early waits until the gap before it is filled, and one at or below the applied head is a
duplicate and ignored. Review records are applied in ``rseq`` order, and a review counts only
once its task's final entry has been applied. So one set of events gives one set of metrics,
whatever order it was delivered in; that is what lets anyone recompute a published score.

The operator key can rotate. Given the key the log starts with, the indexer follows the chain the
way the auditor does: the entry at each ``gseq`` must be signed by the key current there, and a
``KeyRotated`` entry signed by it makes its ``new_key`` current from the next ``gseq``. Events that
arrive early are kept as candidates for their number and sorted out when their turn comes, so an
entry by the next key may arrive before the rotation that introduces it. Receipts and records are
held to the rules of ``review_rules`` (receipt: the final entry's key; record: that key or a later
one); a record by a key the applied log has not been handed to yet waits, like a gap.

The indexer counts by the rules of one score version (``version``, default the newest): version
1 reads the ops it always read, so assertions published under it still recompute; version 2
also reads the deal's ops (rejections, lapsed rejections, revoked and released claims,
agreements and split rulings) and closes outcomes by its rules (see ``score``).

This module and ``score`` use the standard library only: the independent auditor calls
``score.recompute``, which must not lean on the writer's code nor on nostr-sdk. Signatures are
the caller's job (``verify`` below, or events the caller already checked).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .counters import Outcome, RoleMetrics
from .review_rules import BadReview, ClosedTask, check_review
from .review_rules import str_tag as _str_tag

__all__ = [
    "EMPLOYER",
    "LATEST_VERSION",
    "ROLES",
    "VERSIONS",
    "WORKER",
    "Indexer",
    "IndexerKinds",
    "Outcome",
    "RoleMetrics",
    "SequenceConflict",
]

EMPLOYER = "employer"
WORKER = "worker"
ROLES = (EMPLOYER, WORKER)

PAID, REFUNDED, CANCELLED, EXPIRED = "PAID", "REFUNDED", "CANCELLED", "EXPIRED"
KEY_ROTATED = "KeyRotated"
VERSIONS = ("1", "2")
"""Every score version the indexer can count by, oldest first."""
LATEST_VERSION = VERSIONS[-1]

Verify = Callable[[Mapping[str, Any]], bool]


class SequenceConflict(ValueError):
    """Two different events claim one ``gseq`` (or ``rseq``) still waiting to be applied."""


@dataclass(frozen=True, slots=True)
class IndexerKinds:
    entry: int = 3910
    receipt: int = 3913
    review_record: int = 3914


@dataclass(slots=True)
class _Open:
    """What the indexer remembers of a task until its final entry."""

    employer: str
    amount_msat: int
    created_at: int
    worker: str | None = None
    funded_at: int | None = None
    claimed_at: int | None = None
    proof_seen: bool = False
    verified_at: int | None = None
    employer_lost: bool = False
    worker_won: bool = False
    rejection_pending: bool = False
    """The employer rejected the proof and no ruling or lapse has answered it yet."""
    contested: bool = False
    """The employer rejected or disputed a submitted proof."""
    backed: bool = False
    """An arbiter ruled for the employer."""
    agreed_worker_msat: int | None = None
    """The worker's share of an agreement both parties signed (0: a cooperative cancel)."""
    split_msat: tuple[int, int] | None = None
    """An arbiter's split: (worker's share, employer's share)."""


class Indexer:
    """Per pubkey and role metrics over the applied prefix of the log.

    ``operator_pubkey``: the key the log starts with; None takes the author of entry 0 (for a
    caller whose entries are the operator's by construction, such as the service reading its own
    database). An entry counts only if signed by the operator key current at its ``gseq``
    (following ``KeyRotated`` entries), a record only if signed by a key of that chain, and the
    review rules hold receipts and records to the keys of their task's final entry. ``verify``:
    when given, review records, the reviews they embed and the receipts inside are checked with
    it; log entries are taken as the caller verified them.
    """

    def __init__(
        self,
        *,
        operator_pubkey: str | None = None,
        kinds: IndexerKinds | None = None,
        verify: Verify | None = None,
        version: str = LATEST_VERSION,
    ) -> None:
        if version not in VERSIONS:
            raise ValueError(f"no score version {version!r}; known: {', '.join(VERSIONS)}")
        self.version = version
        self._deal = version != "1"
        """Count the deal (version 2 on): see the module doc and ``score``."""
        self._handlers = _DEAL_HANDLERS if self._deal else _ENTRY_HANDLERS
        self.operator_pubkey = operator_pubkey
        self.kinds = kinds or IndexerKinds()
        self._verify = verify
        self.head_gseq = -1
        self.head_created_at = 0
        self.head_rseq = -1
        self.roles: dict[str, dict[str, RoleMetrics]] = {}
        self.rejected_reviews: dict[int, str] = {}
        """rseq -> why the review record does not count."""
        self._chain: list[str] = [] if operator_pubkey is None else [operator_pubkey]
        """The operator keys in the order the applied log was handed to them."""
        self._chain_keys: set[str] = set(self._chain)
        self._entry: Mapping[str, Any] = {}
        """The entry being applied (its id and author go into a closed task)."""
        self._pending_entries: dict[int, dict[str, Mapping[str, Any]]] = {}
        self._pending_records: dict[int, dict[str, Mapping[str, Any]]] = {}
        """Events that arrived early, by number, then by id: the candidates for that number."""
        self._open: dict[str, _Open] = {}
        self._final: dict[str, ClosedTask | None] = {}
        """Closed tasks: what a review of one needs, or None if it cannot be reviewed."""
        self._waiting_reviews: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
        self._reviewed: set[tuple[str, str]] = set()
        self._touched: set[str] = set()
        self._names: dict[str, str] = {}

    # feeding ---------------------------------------------------------------------------------

    def add(self, event: Mapping[str, Any]) -> None:
        """Take one log entry or review record, in whatever order it arrives."""
        kind = event.get("kind")
        if kind == self.kinds.entry:
            self._queue(event, "gseq", self._pending_entries, self.head_gseq)
            self._drain_entries()
        elif kind == self.kinds.review_record:
            self._queue(event, "rseq", self._pending_records, self.head_rseq)
            self._drain_records()

    def add_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        for event in events:
            self.add(event)

    @property
    def waiting(self) -> int:
        """Entries and records held back until the gap before them is filled."""
        return len(self._pending_entries) + len(self._pending_records)

    @property
    def operator_keys(self) -> tuple[str, ...]:
        """The operator keys of the applied log, oldest first."""
        return tuple(self._chain)

    @property
    def operator_key(self) -> str | None:
        """The key that signs the entry after the applied head (None before any entry when no
        starting key was given)."""
        return self._chain[-1] if self._chain else None

    def _queue(
        self,
        event: Mapping[str, Any],
        name: str,
        pending: dict[int, dict[str, Mapping[str, Any]]],
        head: int,
    ) -> None:
        number = _int_tag(event, name)
        if number is None or number <= head:
            return
        event_id = str(event.get("id"))
        candidates = pending.get(number)
        if candidates is None:
            pending[number] = {event_id: event}
            return
        if event_id in candidates:
            return
        author = event.get("pubkey")
        if author in self._chain_keys and any(
            seen.get("pubkey") == author for seen in candidates.values()
        ):
            raise SequenceConflict(f"two events claim {name} {number}")
        candidates[event_id] = event  # by another key: sorted out when its turn comes

    def _drain_entries(self) -> None:
        while (candidates := self._pending_entries.get(self.head_gseq + 1)) is not None:
            del self._pending_entries[self.head_gseq + 1]
            if not self._chain:  # no starting key given: entry 0 names it
                if len(candidates) > 1:
                    raise SequenceConflict("two events claim gseq 0")
                self._adopt(str(next(iter(candidates.values())).get("pubkey")))
            current = self._chain[-1]
            signed = [e for e in candidates.values() if e.get("pubkey") == current]
            if len(signed) > 1:
                raise SequenceConflict(f"two events claim gseq {self.head_gseq + 1}")
            if not signed:
                return  # none by the key current here: not part of the log, still a gap
            event = signed[0]
            self.head_gseq += 1
            self.head_created_at = max(self.head_created_at, int(event["created_at"]))
            self._apply_entry(event)

    def _drain_records(self) -> None:
        while (candidates := self._pending_records.get(self.head_rseq + 1)) is not None:
            known = [r for r in candidates.values() if r.get("pubkey") in self._chain_keys]
            if len(known) > 1:
                raise SequenceConflict(f"two events claim rseq {self.head_rseq + 1}")
            if not known:
                return  # by a key the applied log was not handed to (yet): a gap
            record = known[0]
            del self._pending_records[self.head_rseq + 1]
            self.head_rseq += 1
            self._take_record(self.head_rseq, record)

    def _adopt(self, key: str) -> None:
        self._chain.append(key)
        self._chain_keys.add(key)
        self._drain_records()  # records by this key may have been waiting for it

    # reading ---------------------------------------------------------------------------------

    def role(self, pubkey: str, role: str) -> RoleMetrics | None:
        return self.roles.get(pubkey, {}).get(role)

    def has_record(self, pubkey: str) -> bool:
        return pubkey in self.roles

    def subjects(self) -> list[str]:
        return sorted(self.roles)

    def closed(self, task_id: str) -> ClosedTask | None:
        """The applied log's final entry of a task closed PAID or REFUNDED with a worker."""
        return self._final.get(task_id)

    def take_touched(self) -> set[str]:
        """Pubkeys whose metrics changed since the last call."""
        touched, self._touched = self._touched, set()
        return touched

    # log entries -----------------------------------------------------------------------------

    def _metrics(self, pubkey: str, role: str) -> RoleMetrics:
        self._touched.add(pubkey)
        by_role = self.roles.get(pubkey)
        if by_role is None:
            by_role = self.roles[pubkey] = {}
        metrics = by_role.get(role)
        if metrics is None:
            metrics = by_role[role] = RoleMetrics()
        return metrics

    def _name(self, pubkey: str) -> str:
        """One string object per pubkey: a million entries name a few thousand people."""
        return self._names.setdefault(pubkey, sys.intern(pubkey))

    def _apply_entry(self, entry: Mapping[str, Any]) -> None:
        try:
            event = json.loads(entry["content"])["event"]
            op = event["type"]
            task_id = _str_tag(entry, "task") or ""
        except (KeyError, TypeError, ValueError):
            return  # not an entry of this format: nothing to count
        if op == KEY_ROTATED:
            self._rotated(entry, event)
            return
        self._entry = entry
        at = int(entry["created_at"])
        if op == "TaskCreated":
            employer = self._name(str(event["actor"]))
            self._open[task_id] = _Open(employer, int(event["amount_msat"]), at)
            self._metrics(employer, EMPLOYER).tasks += 1
            return
        task = self._open.get(task_id)
        if task is None:
            return
        handler = self._handlers.get(op)
        if handler is not None:
            handler(self, task_id, task, event, at)

    def _rotated(self, entry: Mapping[str, Any], event: Any) -> None:
        """Hand the log to the key a well-formed ``KeyRotated`` entry names (public-log.md);
        records by that key may now be taken."""
        current = self._chain[-1]
        new_key = _str_tag(entry, "new_key")
        if (
            new_key is None
            or len(new_key) != 64
            or any(c not in "0123456789abcdef" for c in new_key)
            or new_key == current
            or entry.get("pubkey") != current
            or _str_tag(entry, "old_key") != current
            or not isinstance(event, dict)
            or event.get("new_key") != new_key
        ):
            return  # not a hand-over: the next entry must still be signed by ``current``
        self._adopt(new_key)

    def _funding_accepted(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        task.funded_at = at
        employer = self._metrics(task.employer, EMPLOYER)
        employer.funded += 1
        employer.volume_msat += int(event.get("amount_paid_msat", task.amount_msat))
        employer.fund_s_total += at - task.created_at
        employer.fund_n += 1

    def _claimed(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        worker_name = self._name(str(event["worker_pubkey"]))
        task.worker, task.claimed_at = worker_name, at
        worker = self._metrics(worker_name, WORKER)
        worker.tasks += 1
        worker.funded += 1
        worker.volume_msat += task.amount_msat
        employer = self._metrics(task.employer, EMPLOYER)
        employer.counterparties[worker_name] = employer.counterparties.get(worker_name, 0) + 1
        worker.counterparties[task.employer] = worker.counterparties.get(task.employer, 0) + 1

    def _proof(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        if task.proof_seen or task.worker is None or task.claimed_at is None:
            return
        task.proof_seen = True
        worker = self._metrics(task.worker, WORKER)
        worker.proof_s_total += at - task.claimed_at
        worker.proof_n += 1

    def _proof_refused(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        if task.worker is not None:
            self._metrics(task.worker, WORKER).proofs_refused += 1

    def _verified(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        task.verified_at = at

    def _dispute_opened(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        actor = str(event.get("actor"))
        if actor == task.employer:
            task.contested = task.contested or task.proof_seen
            self._metrics(task.employer, EMPLOYER).disputes_opened += 1
        elif task.worker is not None and actor == task.worker:
            self._metrics(task.worker, WORKER).disputes_opened += 1

    def _dispute_resolved(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        if task.worker is None:
            return
        winner = event.get("winner")
        if self._deal and winner not in ("worker", "employer"):
            task.rejection_pending = False  # a split: ``SplitDecided`` carries the shares
            return
        employer = self._metrics(task.employer, EMPLOYER)
        worker = self._metrics(task.worker, WORKER)
        if winner == "worker":
            task.worker_won = task.employer_lost = True
            task.verified_at = at
            worker.disputes_won += 1
            employer.disputes_lost += 1
            if self._deal and task.rejection_pending:
                task.rejection_pending = False
                employer.rejections_overturned += 1
        else:
            task.backed, task.rejection_pending = True, False
            employer.disputes_won += 1
            worker.disputes_lost += 1

    def _release_completed(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        if task.verified_at is not None:
            for pubkey, role in ((task.employer, EMPLOYER), (task.worker, WORKER)):
                if pubkey is not None:
                    metrics = self._metrics(pubkey, role)
                    metrics.paid_s_total += at - task.verified_at
                    metrics.paid_n += 1
        self._close(task_id, task, PAID, at)

    def _refund_completed(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        self._close(task_id, task, REFUNDED if task.funded_at is not None else CANCELLED, at)

    def _cancelled(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        self._close(task_id, task, CANCELLED, at)

    def _expired(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        self._close(task_id, task, EXPIRED, at)

    def _close(self, task_id: str, task: _Open, final: str, at: int) -> None:
        del self._open[task_id]
        self._final[task_id] = None
        counter = {PAID: "completed", REFUNDED: "refunded", CANCELLED: "cancelled"}.get(
            final, "expired"
        )
        employer = self._metrics(task.employer, EMPLOYER)
        setattr(employer, counter, getattr(employer, counter) + 1)
        worker = None if task.worker is None else self._metrics(task.worker, WORKER)
        if worker is not None and final in (PAID, REFUNDED):
            setattr(worker, counter, getattr(worker, counter) + 1)
        if task.worker is None or worker is None or final not in (PAID, REFUNDED):
            self._reject_waiting(task_id, "the task did not end PAID or REFUNDED with a worker")
            return
        employer_q: int | None
        worker_q: int | None
        if self._deal:
            employer_q, worker_q = _deal_quarters(task, final)
            if final == REFUNDED and task.proof_seen and task.agreed_worker_msat is None:
                employer.refunds_after_proof += 1
        else:
            employer_q = 0 if task.employer_lost else 4
            worker_q = 4 if final == PAID else None if task.worker_won else 0
        if employer_q is not None:
            employer.outcomes.append(Outcome(task.worker, at, task.amount_msat, employer_q, False))
        if worker_q is not None:
            worker.outcomes.append(Outcome(task.employer, at, task.amount_msat, worker_q, False))
        self._final[task_id] = ClosedTask(
            task.employer,
            task.worker,
            at,
            task.amount_msat,
            str(self._entry.get("id")),
            str(self._entry.get("pubkey")),
            len(self._chain) - 1,
        )
        for rseq, record in self._waiting_reviews.pop(task_id, []):
            self._apply_review(rseq, record)

    # the deal (version 2 on) -------------------------------------------------------------------

    def _rejected(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        """Only the employer's own rejection of a claimed task counts against it."""
        if task.worker is None or event.get("actor") != task.employer:
            return
        task.rejection_pending = task.contested = True
        self._metrics(task.employer, EMPLOYER).rejections += 1

    def _rejection_lapsed(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        """No arbiter backed the rejection in time and the submission went to the worker: the
        rejection is overturned, once however many entries say so."""
        task.verified_at = at
        if task.rejection_pending:
            task.rejection_pending = False
            task.employer_lost = True
            self._metrics(task.employer, EMPLOYER).rejections_overturned += 1

    def _claim_revoked(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        """Counts only when the task's employer revoked the worker holding the claim (before
        any proof): nobody else's op can put a revocation on a worker's record."""
        if event.get("actor") == task.employer:
            self._claim_ended(task, event, at, "revocations", 1)

    def _claim_released(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        """The worker's own unclaim: a failure at half a task's weight (see ``score``)."""
        if event.get("actor") == task.worker:
            self._claim_ended(task, event, at, "unclaims", 2)

    def _claim_ended(self, task: _Open, event: Any, at: int, counter: str, divisor: int) -> None:
        """Count the abandoned claim and undo what the claim added to the volume and the
        counterparties: claiming and dropping tasks (or revoking one's own sock puppet) must
        not make a record look busier or more varied."""
        worker_name = task.worker
        if worker_name is None or task.proof_seen or event.get("worker_pubkey") != worker_name:
            return
        worker = self._metrics(worker_name, WORKER)
        employer = self._metrics(task.employer, EMPLOYER)
        setattr(worker, counter, getattr(worker, counter) + 1)
        worker.volume_msat -= task.amount_msat
        _forget(employer.counterparties, worker_name)
        _forget(worker.counterparties, task.employer)
        worker.outcomes.append(Outcome(task.employer, at, task.amount_msat, 0, False, divisor))
        task.worker = task.claimed_at = None

    def _agreement(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        worker_msat = _msat(event, "worker_msat")
        if worker_msat is not None and task.worker is not None:
            task.agreed_worker_msat = worker_msat
            task.rejection_pending = False

    def _split(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        worker_msat, employer_msat = _msat(event, "worker_msat"), _msat(event, "employer_msat")
        if worker_msat is not None and employer_msat is not None and task.worker is not None:
            task.split_msat = (worker_msat, employer_msat)
            task.rejection_pending = False
            task.verified_at = at

    def _window_elapsed(self, task_id: str, task: _Open, event: Any, at: int) -> None:
        """``DisputeWindowElapsed`` verifies the submission; after a rejection nobody backed,
        that is the rejection lapsing."""
        self._rejection_lapsed(task_id, task, event, at)

    # reviews ---------------------------------------------------------------------------------

    def _take_record(self, rseq: int, record: Mapping[str, Any]) -> None:
        task_id = _str_tag(record, "task")
        if task_id is None:
            self.rejected_reviews[rseq] = "the record has no task tag"
            return
        if task_id not in self._final:
            self._waiting_reviews.setdefault(task_id, []).append((rseq, record))
        elif self._final[task_id] is None:
            self.rejected_reviews[rseq] = "the task did not end PAID or REFUNDED with a worker"
        else:
            self._apply_review(rseq, record)

    def _reject_waiting(self, task_id: str, reason: str) -> None:
        for rseq, _record in self._waiting_reviews.pop(task_id, []):
            self.rejected_reviews[rseq] = reason

    def _apply_review(self, rseq: int, record: Mapping[str, Any]) -> None:
        task_id = str(_str_tag(record, "task"))
        closed = self._final[task_id]
        assert closed is not None
        try:
            facts = check_review(
                record,
                task_id,
                closed,
                receipt_kind=self.kinds.receipt,
                record_signers=self._chain[closed.era :],
                verify=self._verify,
            )
            if (task_id, facts.reviewer) in self._reviewed:
                raise BadReview("this reviewer already reviewed this task")
        except BadReview as exc:
            self.rejected_reviews[rseq] = str(exc)
            return
        self._reviewed.add((task_id, facts.reviewer))
        metrics = self._metrics(facts.subject, facts.subject_role)
        metrics.reviews += 1
        metrics.rating_total += facts.rating
        metrics.outcomes.append(
            Outcome(
                self._name(facts.reviewer), closed.at, closed.amount_msat, facts.rating - 1, True
            )
        )


_ENTRY_HANDLERS: dict[str, Callable[[Indexer, str, _Open, Any, int], None]] = {
    "FundingAccepted": Indexer._funding_accepted,
    "TaskClaimed": Indexer._claimed,
    "ProofSubmitted": Indexer._proof,
    "ProofRefused": Indexer._proof_refused,
    "SubmissionApproved": Indexer._verified,
    "ReviewWindowElapsed": Indexer._verified,
    "DisputeWindowElapsed": Indexer._verified,
    "DisputeOpened": Indexer._dispute_opened,
    "DisputeResolved": Indexer._dispute_resolved,
    "ReleaseCompleted": Indexer._release_completed,
    "RefundCompleted": Indexer._refund_completed,
    "TaskCancelled": Indexer._cancelled,
    "FundingExpired": Indexer._expired,
    "WorkerAssigned": Indexer._claimed,  # an assignment is a claim in the applicant's name
}
"""Version 1: the ops it has always read."""

_DEAL_HANDLERS = {
    **_ENTRY_HANDLERS,
    "DisputeWindowElapsed": Indexer._window_elapsed,
    "SubmissionRejected": Indexer._rejected,
    "RejectionLapsed": Indexer._rejection_lapsed,
    "ClaimRevoked": Indexer._claim_revoked,
    "ClaimReleased": Indexer._claim_released,
    "AgreementAccepted": Indexer._agreement,
    "SplitDecided": Indexer._split,
    "SplitCompleted": Indexer._release_completed,  # both shares paid, then the hold settled
}
"""Version 2: the deal's ops too."""


def _deal_quarters(task: _Open, final: str) -> tuple[int | None, int | None]:
    """(employer, worker) success in quarters of a closed task by version 2's rules; None is
    no outcome. The table is in ``score``'s docstring."""
    if task.agreed_worker_msat is not None:  # both parties signed it
        if final != PAID or task.agreed_worker_msat <= 0:
            return None, None  # a cooperative cancel, or an agreement that unwound
        return 4, _quarters(task.agreed_worker_msat, task.amount_msat)
    if task.split_msat is not None:
        if final != PAID:
            return None, None  # the split unwound to a refund: nobody's doing
        split_q = _quarters(task.split_msat[0], sum(task.split_msat))
        return 4 - split_q, split_q
    worker_q = 4 if final == PAID else None if task.worker_won else 0
    if task.employer_lost:
        return 0, worker_q
    if final == REFUNDED and task.proof_seen and task.contested and not task.backed:
        return 0, None  # the employer's unbacked word: against it, never against the worker
    if final == REFUNDED and task.proof_seen:
        return None, worker_q
    return 4, worker_q


def _quarters(share_msat: int, total_msat: int) -> int:
    """``share/total`` in quarters, rounded half up, within 0..4."""
    if total_msat <= 0:
        return 0
    return max(0, min(4, (4 * share_msat + total_msat // 2) // total_msat))


def _msat(event: Any, name: str) -> int | None:
    value = event.get(name) if isinstance(event, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _forget(counterparties: dict[str, int], pubkey: str) -> None:
    left = counterparties.get(pubkey, 0) - 1
    if left > 0:
        counterparties[pubkey] = left
    else:
        counterparties.pop(pubkey, None)


def _int_tag(event: Mapping[str, Any], name: str) -> int | None:
    value = _str_tag(event, name)
    if value is None or not value.isdigit():
        return None
    return int(value)
