"""One task driven by random commands from random actors at random, non-decreasing times.

Each step decides a command and folds its events; a refusal must leave the task as it was. The
invariants are the lifecycle's promises: nobody is paid without a verified proof, money moves at
most once and one way, closed tasks stay closed (but for settling their deposits), the history
is the task, and the guardian can always finish a funded task, and every deposit, using SYSTEM
commands alone. Deposits are forfeited only by the depositor's own abandonment and paid out
only once forfeited and claimed. A dispute over a checked submission never ends in a refund by
the clock alone, and without an arbiter the employer cannot open one. The worker changes only
by a released or revoked claim, a released or revoked key never works on the task again and is
never paid, and only the claim mode's keys become the worker. A split's shares plus the
fee make the amount, each share is paid at most once (the worker's first), and a split whose
worker share was paid is never refunded. Without an arbiter a
submitted proof never ends in a refund nobody signed for, under every rejection policy; an
agreement takes both parties, and never cancels a hold a payout may be paying from.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from support.task_builders import (
    ARBITER,
    ARBITERS,
    EMPLOYER,
    PREIMAGE,
    STRANGER,
    SYSTEM,
    T0,
    WORKER,
    WORKER2,
    create_command,
    drive_to_settlement,
    sample_command,
)

from taskhold.errors import Refusal
from taskhold.tasks import Task, TaskState, decide, evolve, replay
from taskhold.tasks import commands as c
from taskhold.tasks import events as e
from taskhold.tasks.agreements import AGREEMENT_STATES, CANCELLED_BY_AGREEMENT
from taskhold.tasks.deposits import next_deposit_round
from taskhold.tasks.model import TERMINAL_STATES, DepositState

S = TaskState
ANYONE = st.sampled_from([EMPLOYER, WORKER, WORKER2, ARBITER, STRANGER, SYSTEM])
# Mostly seconds to minutes, sometimes hours: deadlines and windows pass in some runs, not all.
SECONDS = st.one_of(
    st.integers(min_value=0, max_value=120), st.integers(min_value=0, max_value=4_000)
)
ALL_COMMANDS = [
    c.RequestFunding,
    c.ConfirmFunding,
    c.ExpireFunding,
    c.Claim,
    c.SubmitProof,
    c.RefuseProof,
    c.Approve,
    c.Reject,
    c.OpenDispute,
    c.ResolveDispute,
    c.Cancel,
    c.UpdatePayoutRequest,
    c.Tick,
    c.HoldExpiring,
    c.RecordPayoutFailure,
    c.CompleteRelease,
    c.CompleteRefund,
    c.Apply,
    c.Assign,
    c.Unclaim,
    c.RevokeClaim,
    c.UpdateRefundRequest,
    c.RecordRefundShareFailure,
    c.RecordSharePaid,
    c.CompleteSplit,
    c.ProposeAgreement,
    c.AcceptAgreement,
    c.WithdrawAgreement,
]
SPLIT_WORKER_MSAT = st.sampled_from([-1, 0, 1, 49_500, 98_999, 99_000, 100_000])
"""Around the bounds of a split of 100,000 msat with a fee of 1,000 (valid: 1 to 98,999)."""
REASONS = st.sampled_from(["", "  ", "not what was asked"])

HEAD_START = [
    (c.RequestFunding, EMPLOYER),
    (c.ConfirmFunding, SYSTEM),
    (c.Claim, WORKER),
    (c.SubmitProof, WORKER),
    (c.Approve, EMPLOYER),
]

VERIFICATIONS = (
    e.SubmissionApproved,
    e.ReviewWindowElapsed,
    e.DisputeResolved,
    e.DisputeWindowElapsed,
    e.RejectionLapsed,
    e.AgreementAccepted,
)
OVERRULE_A_REJECTION = (e.DisputeResolved, e.DisputeWindowElapsed, e.RejectionLapsed)
"""Verifications that may follow a rejection: a ruling, or the policy's default when nobody
ruled. (An agreement the employer signed may too.)"""
MAX_WAITING_DEPOSITS = 3
MAX_DEPOSITS = 6
MAX_APPLICATIONS = 2


def _is_verification(event: e.Event, payout_msat: int) -> bool:
    if isinstance(event, e.DisputeResolved):
        return event.winner == "worker"
    if isinstance(event, e.AgreementAccepted):
        return event.worker_msat == payout_msat
    return isinstance(event, VERIFICATIONS)


def _plausible(task: Task) -> list[tuple[type[c.Command], str]]:
    """Commands, with the actor allowed to send them, that make sense in the task's state."""
    worker = task.worker_pubkey or WORKER
    if task.is_terminal:
        return []
    if task.refund_ordered:
        # Timers and the guardian keep firing while the refund is in flight.
        return [(c.CompleteRefund, SYSTEM), (c.Tick, SYSTEM), (c.HoldExpiring, SYSTEM)]
    timers = [(c.Tick, SYSTEM)]
    # Weighted towards progress; the other rules send the destructive and the absurd commands.
    by_state: dict[TaskState, list[tuple[type[c.Command], str]]] = {
        S.DRAFT: [(c.RequestFunding, EMPLOYER)],
        S.PENDING_FUNDING: [(c.ConfirmFunding, SYSTEM)] * 3 + [(c.ExpireFunding, SYSTEM)],
        S.FUNDED: [(c.Claim, WORKER), (c.Claim, WORKER2), (c.Apply, WORKER), (c.Assign, EMPLOYER)],
        S.CLAIMED: [(c.SubmitProof, worker)] * 3
        + [(c.RefuseProof, worker), (c.OpenDispute, worker), (c.OpenDispute, EMPLOYER), *timers]
        + [(c.Unclaim, worker), (c.RevokeClaim, EMPLOYER)]
        + [(c.ProposeAgreement, EMPLOYER), (c.AcceptAgreement, worker)],
        S.SUBMITTED: [
            (c.Approve, EMPLOYER),
            (c.Approve, EMPLOYER),
            (c.Reject, EMPLOYER),
            (c.OpenDispute, EMPLOYER),
            (c.OpenDispute, worker),
            (c.UpdatePayoutRequest, worker),
            (c.ProposeAgreement, worker),
            (c.AcceptAgreement, EMPLOYER),
            *timers,
        ],
        S.VERIFIED: [
            (c.CompleteRelease, SYSTEM),
            (c.RecordPayoutFailure, SYSTEM),
            (c.UpdatePayoutRequest, worker),
            (c.HoldExpiring, SYSTEM),
            *([(c.UpdateRefundRequest, EMPLOYER), (c.CompleteSplit, SYSTEM)] * task.is_split),
        ],
        S.DISPUTED: [(c.ResolveDispute, ARBITER)] * 2
        + [(c.HoldExpiring, SYSTEM), (c.ProposeAgreement, EMPLOYER), *timers],
    }
    return by_state[task.state]


def _orders_refund(event: e.Event) -> bool:
    if isinstance(event, e.DisputeResolved):
        return event.winner == "employer"
    return isinstance(event, e.RefundOrdered)


class TaskLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.task: Task | None = None
        self.history: list[e.Event] = []
        self.now = T0
        self.closed: Task | None = None
        self.arbiters = ARBITERS

    @initialize(
        deadline_s=st.integers(min_value=1, max_value=40_000),
        review_window_s=st.integers(min_value=0, max_value=3_000),
        dispute_window_s=st.integers(min_value=0, max_value=3_000),
        head_start=st.integers(min_value=0, max_value=len(HEAD_START)),
        with_deposits=st.booleans(),
        with_arbiter=st.booleans(),
        claim_mode=st.sampled_from(["open", "open", "apply", "direct"]),
        claim_timeout_s=st.one_of(st.none(), st.integers(min_value=1, max_value=2_000)),
        rejection_policy=st.sampled_from([None, "release_unless_ruled", "arbiter"]),
    )
    def create(
        self,
        deadline_s: int,
        review_window_s: int,
        dispute_window_s: int,
        head_start: int,
        with_deposits: bool,
        with_arbiter: bool,
        claim_mode: str,
        claim_timeout_s: int | None,
        rejection_policy: str | None,
    ) -> None:
        """A new task, sometimes already a few happy steps in (swarm testing often disables
        the guided rules, and a run that never leaves DRAFT tests little), on a taskhold with
        or without an arbiter."""
        self.arbiters = ARBITERS if with_arbiter else frozenset()
        command = create_command(
            at=T0,
            deadline_at=T0 + deadline_s,
            review_window_s=review_window_s,
            dispute_window_s=dispute_window_s,
            claim_mode=claim_mode,
            direct_worker=WORKER2 if claim_mode == "direct" else None,
            claim_timeout_s=None if claim_timeout_s is None else min(claim_timeout_s, deadline_s),
            rejection_policy=rejection_policy,
        )
        self.history = decide(None, command, self.arbiters)
        self.task = replay(self.history)
        if with_deposits:  # the employer's, locked before funding
            self._lock_deposit(EMPLOYER)
        for step, (cls, actor) in enumerate(HEAD_START[:head_start]):
            if with_deposits and step == 2:  # funded: two would-be workers lock theirs
                self._lock_deposit(WORKER)
                self._lock_deposit(WORKER2)
            self._send(sample_command(cls, actor, self.now))

    def _deposit_request(self, actor: str, at: int) -> c.RequestDeposit:
        assert self.task is not None
        deposit_round = next_deposit_round(self.task, actor)
        return c.RequestDeposit(
            actor=actor,
            at=at,
            round=deposit_round,
            amount_msat=5_000,
            payment_hash_hex=_deposit_hash(actor, deposit_round),
            payment_request="lnbcrt50n1deposit",
            cltv_expiry_delta=200,
            invoice_expires_at=at + 3_600,
            max_open_per_task=MAX_WAITING_DEPOSITS,
            max_per_task=MAX_DEPOSITS,
        )

    def _lock_deposit(self, actor: str) -> None:
        self._send(self._deposit_request(actor, self.now))
        assert self.task is not None
        deposit = self.task.deposit_of(actor)
        assert deposit is not None
        self._send(
            c.ConfirmDeposit(
                actor=SYSTEM,
                at=self.now,
                payment_hash_hex=deposit.payment_hash_hex,
                expiry_height=900,
                amount_paid_msat=deposit.amount_msat,
            )
        )

    # --- driving -------------------------------------------------------------------------

    def _send(self, command: c.Command) -> None:
        before = self.task
        assert before is not None
        snapshot = copy.deepcopy(before)  # its dicts (acceptance, proof) are mutable
        try:
            events = decide(before, command, self.arbiters)
        except Refusal:
            assert before == snapshot, "a refusal changed the task"
            return
        # Only the system's replays decide to nothing; a participant is answered or refused.
        assert events or command.actor == SYSTEM, f"{command} was silently ignored"
        task = before
        for event in events:
            task = evolve(task, event)  # a decided event must always fold
        assert before == snapshot, "decide or evolve mutated the task they were given"
        self.task = task
        self.history.extend(events)
        if command.actor == SYSTEM and not isinstance(
            command,
            c.RecordPayoutFailure | c.RecordDepositPayoutFailure | c.RecordRefundShareFailure,
        ):
            # The engine replays system commands after a crash; the second time is a no-op.
            # (Each payout failure is a new fact, so RecordPayoutFailure is not replayed.)
            assert decide(task, command, self.arbiters) == [], f"{command} is not idempotent"
        self._check_review_window_is_binding(before, command, events)

    def _at(self, seconds: int) -> int:
        self.now += seconds
        return self.now

    @rule(cls=st.sampled_from(ALL_COMMANDS), actor=ANYONE, dt=SECONDS)
    def anyone_sends_anything(self, cls: type[c.Command], actor: str, dt: int) -> None:
        self._send(sample_command(cls, actor, self._at(dt)))

    @rule(
        cls=st.sampled_from([c.Reject, c.OpenDispute, c.ResolveDispute]),
        actor=st.one_of(st.sampled_from([EMPLOYER, ARBITER, WORKER, WORKER2]), ANYONE),
        text=REASONS,
        winner=st.sampled_from(["worker", "employer", "nobody"]),
        dt=SECONDS,
    )
    def contest(self, cls: type[c.Command], actor: str, text: str, winner: str, dt: int) -> None:
        """Rejections, disputes and rulings with blank or real reasons and any winner."""
        at = self._at(dt)
        command: c.Command
        if cls is c.ResolveDispute:
            command = c.ResolveDispute(actor=actor, at=at, winner=winner, note=text)
        elif cls is c.Reject:
            command = c.Reject(actor=actor, at=at, reason=text)
        else:
            command = c.OpenDispute(actor=actor, at=at, reason=text)
        self._send(command)

    @rule(
        kind=st.sampled_from(["approve", "resolve", "claim"]),
        actor=st.sampled_from([EMPLOYER, WORKER, WORKER2, ARBITER, STRANGER]),
        dt=st.integers(min_value=0, max_value=60),
    )
    def someone_verifies_or_takes_over(self, kind: str, actor: str, dt: int) -> None:
        """Any participant tries to verify the work or to become its worker, soon after the
        last step (while review windows are still open)."""
        at = self._at(dt)
        command: c.Command = {
            "approve": c.Approve(actor=actor, at=at),
            "resolve": c.ResolveDispute(actor=actor, at=at, winner="worker", note="it is done"),
            "claim": c.Claim(actor=actor, at=at),
        }[kind]
        self._send(command)

    @rule(
        side=st.sampled_from(["employer", "worker"]),
        first=st.sampled_from(["nothing", "proof", "proof and rejection"]),
        dt=st.integers(min_value=0, max_value=60),
    )
    def dispute_soon(self, side: str, first: str, dt: int) -> None:
        """Disputes opened early and often, some over a proof and some over a rejection: the
        rules that keep a dispute from paying off (its timer and default, no_arbiter,
        review_pending, the deposit rules) need walks that reach them."""
        assert self.task is not None
        worker = self.task.worker_pubkey or WORKER
        if first != "nothing" and self.task.state is S.CLAIMED:
            self._send(sample_command(c.SubmitProof, worker, self._at(0)))
            if first == "proof and rejection":
                self._send(sample_command(c.Reject, EMPLOYER, self._at(0)))
        actor = EMPLOYER if side == "employer" else worker
        self._send(c.OpenDispute(actor=actor, at=self._at(dt), reason="we disagree"))

    @rule(
        kind=st.sampled_from(["propose", "propose", "accept", "accept", "withdraw"]),
        actor=st.sampled_from([EMPLOYER, WORKER, WORKER2, ARBITER, STRANGER]),
        amount=st.sampled_from(["nothing", "everything", "a share", "too much", "as proposed"]),
        dt=st.integers(min_value=0, max_value=60),
    )
    def agree(self, kind: str, actor: str, amount: str, dt: int) -> None:
        """Agreements proposed, accepted and withdrawn by anyone, for any amount, including
        accepts that do not repeat the standing proposal."""
        assert self.task is not None
        payout = self.task.payout_msat
        worker_msat = {
            "nothing": 0,
            "everything": payout,
            "a share": payout // 2,
            "too much": payout + 1,
            "as proposed": self.task.agreement_worker_msat or 0,
        }[amount]
        at = self._at(dt)
        command: c.Command
        if kind == "propose":
            command = c.ProposeAgreement(actor=actor, at=at, worker_msat=worker_msat, note="n")
        elif kind == "accept":
            command = c.AcceptAgreement(actor=actor, at=at, worker_msat=worker_msat)
        else:
            command = c.WithdrawAgreement(actor=actor, at=at)
        self._send(command)

    @rule(actor=st.one_of(st.just(SYSTEM), ANYONE), paid_msat=st.sampled_from([0, 99_999]))
    def underpaid_funding(self, actor: str, paid_msat: int) -> None:
        command = c.ConfirmFunding(
            actor=actor, at=self.now, accepted_htlc_expiry_height=900, amount_paid_msat=paid_msat
        )
        self._send(command)

    @rule(dt=st.integers(min_value=0, max_value=20_000))
    def time_passes(self, dt: int) -> None:
        self._at(dt)

    def _advance(self, data: st.DataObject, dt: int) -> None:
        """A command the right actor could send now: keeps runs going past the first refusals."""
        assert self.task is not None
        options = _plausible(self.task)
        if not options:
            return
        cls, actor = data.draw(st.sampled_from(options), label="plausible")
        command: c.Command
        if cls is c.ResolveDispute:
            winner = data.draw(st.sampled_from(["worker", "employer", "split"]), label="winner")
            worker_msat = data.draw(SPLIT_WORKER_MSAT, label="worker_msat")
            worker_msat = worker_msat if winner == "split" else None
            command = c.ResolveDispute(
                actor=actor, at=self._at(dt), winner=winner, note="ruled", worker_msat=worker_msat
            )
        else:
            command = sample_command(cls, actor, self._at(dt))
        self._send(command)

    @rule(
        actor=st.one_of(st.just(ARBITER), ANYONE),
        worker_msat=st.one_of(SPLIT_WORKER_MSAT, st.none()),
        dt=st.integers(min_value=0, max_value=60),
    )
    def split_ruling(self, actor: str, worker_msat: int | None, dt: int) -> None:
        """Rulings that split the amount, with shares at and past their bounds, most of them
        on a dispute opened just before (disputes are rare in a random walk)."""
        assert self.task is not None
        if self.task.state in (S.CLAIMED, S.SUBMITTED):
            opener = self.task.worker_pubkey if self.task.state is S.CLAIMED else EMPLOYER
            self._send(c.OpenDispute(actor=opener or WORKER, at=self._at(0), reason="disagree"))
        command = c.ResolveDispute(
            actor=actor, at=self._at(dt), winner="split", note="shared", worker_msat=worker_msat
        )
        self._send(command)

    @rule(
        step=st.sampled_from(["worker", "employer", "complete", "fail", "invoice", "in order"]),
        paid_hash=st.sampled_from(["55", "77", "99"]),
        actor=st.one_of(st.just(SYSTEM), st.just(SYSTEM), ANYONE),
    )
    def split_money(self, step: str, paid_hash: str, actor: str) -> None:
        """The engine's steps paying a split, in any order, by anyone, more than once."""
        at = self._at(0)
        command: c.Command
        if step == "in order":  # what the engine does: each share, then the settle
            for share in ("worker", "employer", "complete"):
                self.split_money(share, paid_hash if share == "worker" else "77", SYSTEM)
            return
        if step in ("worker", "employer"):
            command = c.RecordSharePaid(
                actor=actor,
                at=at,
                share=step,
                payment_hash_hex=paid_hash * 32,
                payment_preimage_hex="66" * 32,
                fee_msat=1,
            )
        elif step == "complete":
            command = c.CompleteSplit(actor=actor, at=at, preimage_hex=PREIMAGE)
        elif step == "fail":
            command = c.RecordRefundShareFailure(actor=actor, at=at, reason="no route")
        else:
            employer = EMPLOYER if actor == SYSTEM else actor
            command = c.UpdateRefundRequest(actor=employer, at=at, refund_request="lnbcrt1e")
        self._send(command)

    # Rules are drawn uniformly; three names for the guided step give it about half the draws.
    advance = rule(data=st.data(), dt=SECONDS)(_advance)
    advance_again = rule(data=st.data(), dt=SECONDS)(_advance)
    advance_once_more = rule(data=st.data(), dt=SECONDS)(_advance)

    @rule(
        data=st.data(),
        kind=st.sampled_from(
            [
                "request",
                "request",
                "confirm",
                "confirm",
                "cancelled",
                "expiring",
                "payout",
                "payout",
                "failure",
                "returned",
                "paid",
                "paid",
            ]
        ),
        actor=ANYONE,
        dt=SECONDS,
    )
    def deposit_step(self, data: st.DataObject, kind: str, actor: str, dt: int) -> None:
        """Deposits asked for by anyone, and the node's answers about any of them."""
        assert self.task is not None
        at = self._at(dt)
        if kind == "request":
            likely = {S.DRAFT: [EMPLOYER], S.FUNDED: [WORKER, WORKER2]}.get(self.task.state)
            if likely and data.draw(st.booleans(), label="likely depositor"):
                actor = data.draw(st.sampled_from(likely), label="depositor")
            self._send(self._deposit_request(actor, at))
            return
        if not self.task.deposits:
            return
        wanted = {"confirm": DepositState.OPEN, "payout": DepositState.FORFEIT}.get(
            kind, DepositState.FORFEIT if kind in ("paid", "failure") else None
        )
        pool = [d for d in self.task.deposits if d.state is wanted] or list(self.task.deposits)
        deposit = data.draw(st.sampled_from(pool), label="deposit")
        hash_hex = deposit.payment_hash_hex
        command: c.Command
        match kind:
            case "confirm":
                paid = data.draw(st.sampled_from([5_000, 4_999]), label="paid")
                command = c.ConfirmDeposit(
                    actor=SYSTEM,
                    at=at,
                    payment_hash_hex=hash_hex,
                    expiry_height=900,
                    amount_paid_msat=paid,
                )
            case "cancelled":
                command = c.DepositInvoiceCancelled(actor=SYSTEM, at=at, payment_hash_hex=hash_hex)
            case "expiring":
                command = c.DepositExpiring(
                    actor=SYSTEM, at=at, payment_hash_hex=hash_hex, blocks_left=3
                )
            case "payout":
                if deposit.beneficiary and data.draw(st.booleans(), label="the beneficiary"):
                    actor = deposit.beneficiary
                command = c.RequestDepositPayout(
                    actor=actor, at=at, depositor=deposit.depositor, payout_request="lnbcrt1x"
                )
            case "failure":
                command = c.RecordDepositPayoutFailure(
                    actor=SYSTEM, at=at, payment_hash_hex=hash_hex, reason="no route"
                )
            case "returned":
                command = c.CompleteDepositReturn(
                    actor=SYSTEM, at=at, payment_hash_hex=hash_hex, invoice_state="CANCELED"
                )
            case _:
                command = c.CompleteDepositPayout(
                    actor=SYSTEM,
                    at=at,
                    payment_hash_hex=hash_hex,
                    preimage_hex=_deposit_preimage(deposit.depositor, deposit.round),
                    payout_payment_hash_hex="33" * 32,
                    payout_fee_msat=0,
                )
        self._send(command)

    @rule(
        kind=st.sampled_from(["apply", "apply", "assign", "assign", "unclaim", "revoke"]),
        actor=st.one_of(st.sampled_from([EMPLOYER, WORKER, WORKER2, STRANGER]), ANYONE),
        pick=st.sampled_from([WORKER, WORKER2, STRANGER, EMPLOYER]),
        late=st.booleans(),
        rejected_first=st.booleans(),
        stray=st.booleans(),
        dt=st.integers(min_value=0, max_value=60),
    )
    def claim_discipline(
        self,
        kind: str,
        actor: str,
        pick: str,
        late: bool,
        rejected_first: bool,
        stray: bool,
        dt: int,
    ) -> None:
        """Applications, assignments, unclaims and revocations by anyone, revocations often
        just at the claim timeout and some after a rejected proof: the rules that keep a
        squatter off and a worker's proof safe need walks that reach them."""
        assert self.task is not None
        if rejected_first and self.task.state is S.CLAIMED and self.task.proof is None:
            assert self.task.worker_pubkey is not None
            self._send(sample_command(c.SubmitProof, self.task.worker_pubkey, self._at(0)))
            self._send(sample_command(c.Reject, EMPLOYER, self._at(0)))
        task, at = self.task, self._at(dt)
        if not stray:  # the party the rule is for; a stray actor tests the refusals
            worker = task.worker_pubkey or WORKER
            actor = {"assign": EMPLOYER, "revoke": EMPLOYER, "unclaim": worker}.get(kind, pick)
        if late and task.claimed_at is not None and task.claim_timeout_s is not None:
            at = self.now = max(at, task.claimed_at + task.claim_timeout_s)
        command: c.Command = {
            "apply": c.Apply(actor=actor, at=at, note="me", max_applications=MAX_APPLICATIONS),
            "assign": c.Assign(actor=actor, at=at, worker_pubkey=pick),
            "unclaim": c.Unclaim(actor=actor, at=at),
            "revoke": c.RevokeClaim(actor=actor, at=at, reason="too slow"),
        }[kind]
        self._send(command)

    # --- invariants ------------------------------------------------------------------------

    def _check_review_window_is_binding(
        self, before: Task, command: c.Command, events: list[e.Event]
    ) -> None:
        """Contesting a submission is decided by the clock, not by whether Tick ran yet."""
        if before.state is not S.SUBMITTED or before.submitted_at is None:
            return
        if any(isinstance(ev, e.SubmissionRejected | e.DisputeOpened) for ev in events):
            assert command.at < before.submitted_at + before.review_window_s

    @invariant()
    def paid_only_after_a_verified_proof(self) -> None:
        """PAID needs a proof, then a verification of it with no rejection in between.

        The arbiter may overrule a rejection: that is the dispute path DESIGN.md opens for a
        worker who objects, so ``DisputeResolved(winner="worker")`` needs only an earlier proof.
        """
        if self.task is None or self.task.state is not S.PAID:
            return
        if self.task.is_split:  # the arbiter's judgement of the work, with or without a proof
            rulings = [ev for ev in self.history if isinstance(ev, e.SplitDecided)]
            assert len(rulings) == 1 and rulings[0].actor in self.arbiters
            return
        release = next(i for i, ev in enumerate(self.history) if isinstance(ev, e.ReleaseCompleted))
        payout = self.task.payout_msat
        verifications = [i for i in range(release) if _is_verification(self.history[i], payout)]
        assert verifications, "released without any verification"
        verified = verifications[-1]
        proofs = [i for i in range(verified) if isinstance(self.history[i], e.ProofSubmitted)]
        assert proofs, "verified without any proof"
        if isinstance(self.history[verified], OVERRULE_A_REJECTION):
            return
        if isinstance(self.history[verified], e.AgreementAccepted):
            return  # the employer signed it, as proposer or as acceptor
        between = self.history[proofs[-1] + 1 : verified]
        assert not any(isinstance(ev, e.SubmissionRejected) for ev in between)

    @invariant()
    def money_moves_at_most_once_and_one_way(self) -> None:
        releases = [
            i
            for i, ev in enumerate(self.history)
            if isinstance(ev, e.ReleaseCompleted | e.SplitCompleted)
        ]
        refunds = [i for i, ev in enumerate(self.history) if isinstance(ev, e.RefundCompleted)]
        assert len(releases) <= 1
        assert len(refunds) <= 1
        assert not (releases and refunds)
        refund_decisions = [i for i, ev in enumerate(self.history) if _orders_refund(ev)]
        assert len(refund_decisions) <= 1, "a refund was decided twice"
        if releases:
            assert not refund_decisions, "settled although a refund was decided"

    @invariant()
    def shares_plus_fee_equal_the_amount(self) -> None:
        task = self.task
        if task is None:
            return
        for ev in self.history:
            if isinstance(ev, e.SplitDecided):
                assert ev.worker_msat > 0 and ev.employer_msat > 0
                assert ev.worker_msat + ev.employer_msat + ev.fee_msat == task.amount_msat
        if task.is_split:
            assert task.split_employer_msat is not None
            assert task.payout_msat + task.split_employer_msat + task.fee_msat == task.amount_msat

    @invariant()
    def each_share_is_paid_at_most_once(self) -> None:
        """Each share once, the worker's first, only on a split, and a split completes with
        both; one whose worker share landed is never refunded (the operator paid it)."""
        paid = [ev for ev in self.history if isinstance(ev, e.SplitSharePaid)]
        shares = [ev.share for ev in paid]
        assert shares in ([], ["worker"], ["worker", "employer"]), shares
        split_at = [i for i, ev in enumerate(self.history) if isinstance(ev, e.SplitDecided)]
        assert len(split_at) <= 1
        if paid:
            assert split_at and split_at[0] < self.history.index(paid[0])
        completed = [ev for ev in self.history if isinstance(ev, e.SplitCompleted)]
        if completed:
            assert shares == ["worker", "employer"]
            assert completed[0].worker_payment_hash_hex == paid[0].payment_hash_hex
            assert completed[0].employer_payment_hash_hex == paid[1].payment_hash_hex
        if shares:
            assert not any(isinstance(ev, e.RefundOrdered) for ev in self.history[
                self.history.index(paid[0]):
            ]), "refunded after the worker's share was paid"  # fmt: skip

    @invariant()
    def closed_tasks_stay_closed(self) -> None:
        """Once closed, only its deposits may still be settled up; nothing else changes, and
        no deposit is left simply held (it is being returned, or was forfeited)."""
        if self.task is None:
            return
        if self.closed is not None:
            assert _without_deposits(self.task) == _without_deposits(self.closed)
        elif self.task.state in TERMINAL_STATES:
            self.closed = self.task
        if self.task.is_terminal:
            for deposit in self.task.deposits:
                assert deposit.state not in (DepositState.OPEN, DepositState.HELD), deposit

    @invariant()
    def deposits_are_forfeited_only_by_abandonment_and_paid_only_when_claimed(self) -> None:
        if self.task is None:
            return
        for i, ev in enumerate(self.history):
            if isinstance(ev, e.DepositForfeited):
                same_step = [x for x in self.history[: i + 1] if x.at == ev.at]
                task_before = replay(self.history[:i])
                assert task_before is not None
                deposit = task_before.deposit_of(ev.depositor)
                assert deposit is not None and deposit.state is DepositState.HELD
                taken_back = [
                    j
                    for j, x in enumerate(self.history[: i + 1])
                    if x.at == ev.at and isinstance(x, e.ClaimRevoked | e.ClaimReleased)
                ]
                if deposit.role == "worker" and taken_back:
                    # a claim taken back after its timeout, without a proof
                    claim = replay(self.history[: taken_back[-1]])
                    assert claim is not None and ev.depositor == claim.worker_pubkey
                    assert claim.proof is None, "forfeited although a proof was sent"
                    assert claim.claimed_at is not None and claim.claim_timeout_s is not None
                    assert ev.at >= claim.claimed_at + claim.claim_timeout_s
                    assert ev.beneficiary == claim.employer_pubkey
                elif deposit.role == "worker":
                    assert ev.depositor == task_before.worker_pubkey
                    assert task_before.proof is None, "forfeited although a proof was sent"
                    assert task_before.proofs_refused == 0, "forfeited although proofs were sent"
                    if task_before.state is S.DISPUTED:
                        assert task_before.dispute_opened_by == ev.depositor
                    assert any(_orders_refund(x) for x in same_step)
                    assert ev.beneficiary == task_before.employer_pubkey
                else:
                    assert any(isinstance(x, e.ReviewWindowElapsed) for x in same_step)
                    assert ev.beneficiary == task_before.worker_pubkey
            if isinstance(ev, e.DepositPaidOut):
                earlier = self.history[:i]
                forfeits = [x for x in earlier if isinstance(x, e.DepositForfeited)]
                claims = [x for x in earlier if isinstance(x, e.DepositPayoutRequested)]
                assert any(x.depositor == ev.depositor for x in forfeits)
                assert any(x.depositor == ev.depositor for x in claims)
        for deposit in self.task.deposits:
            if deposit.state is DepositState.PAID_OUT:
                assert deposit.beneficiary is not None and deposit.payout_request is not None

    @invariant()
    def spam_is_bounded(self) -> None:
        """Deposits waiting for a claim and recorded refused proofs stay under their caps."""
        if self.task is None:
            return
        newest = {d.depositor: d for d in self.task.deposits}.values()
        waiting = [d for d in newest if d.state in (DepositState.OPEN, DepositState.HELD)]
        assert len(waiting) <= MAX_WAITING_DEPOSITS
        assert len(self.task.deposits) <= MAX_DEPOSITS
        assert self.task.proofs_refused <= sample_command(c.RefuseProof, WORKER, T0).max_refused

    @invariant()
    def disputes_are_no_free_refund(self) -> None:
        """A dispute over a checked submission ends by a ruling or by its release, never by a
        refund the clock decided; without an arbiter only the worker opens disputes."""
        for i, ev in enumerate(self.history):
            if not isinstance(ev, e.DisputeOpened):
                continue
            task_before = replay(self.history[:i])
            assert task_before is not None
            if not self.arbiters:
                assert ev.actor == task_before.worker_pubkey, "disputed with nobody to decide"
            if task_before.proof is None:
                continue
            ends = (e.DisputeResolved, e.SplitDecided, e.DisputeWindowElapsed, e.RefundOrdered)
            end = next((x for x in self.history[i + 1 :] if isinstance(x, ends)), None)
            if isinstance(end, e.RefundOrdered):
                assert end.reason == CANCELLED_BY_AGREEMENT, "a checked submission was refunded"
        task = self.task
        if task is not None and task.state is S.DISPUTED and not task.refund_ordered:
            assert task.dispute_opened_at is not None
            lapse = c.Tick(actor=SYSTEM, at=task.dispute_opened_at + task.dispute_window_s)
            ended = decide(task, lapse, self.arbiters)
            assert [type(x) for x in ended][:1] == (
                [e.DisputeWindowElapsed] if task.proof is not None else [e.RefundOrdered]
            )

    @invariant()
    def no_silent_refund_of_a_submitted_proof(self) -> None:
        """Without an arbiter, whatever the rejection policy, a task with a checked proof is
        refunded only by an agreement the worker signed, or because its payout failed."""
        if self.arbiters:
            return
        for i, ev in enumerate(self.history):
            if not isinstance(ev, e.RefundOrdered):
                continue
            task_before = replay(self.history[:i])
            assert task_before is not None
            if task_before.proof is None:
                continue
            if ev.reason == CANCELLED_BY_AGREEMENT:
                assert isinstance(self.history[i - 1], e.AgreementAccepted)
                continue
            assert task_before.state is S.VERIFIED, f"silent refund: {ev.reason}"
            assert task_before.payout_failures > 0, f"silent refund: {ev.reason}"

    @invariant()
    def agreements_take_both_parties_and_no_payout_in_flight(self) -> None:
        """An agreement is the employer's and the worker's, one proposing and the other
        accepting; it is never accepted once the task was verified (a payout may be under way
        then), and a cancel by agreement leaves the task with nothing but the refund to do."""
        if self.task is None:
            return
        for i, ev in enumerate(self.history):
            if not isinstance(ev, e.AgreementAccepted):
                continue
            task_before = replay(self.history[:i])
            assert task_before is not None
            assert {ev.actor, ev.proposed_by} == {
                task_before.employer_pubkey,
                task_before.worker_pubkey,
            }
            assert task_before.state in AGREEMENT_STATES
            assert task_before.agreement_worker_msat == ev.worker_msat
            if ev.worker_msat not in (0, task_before.payout_msat):
                # anything between is a split, decided in the same step on the agreed amount
                decided = self.history[i + 1] if i + 1 < len(self.history) else None
                assert isinstance(decided, e.SplitDecided), "a partial agreement decided nothing"
                assert (decided.basis, decided.worker_msat) == ("agreement", ev.worker_msat)
        if self.task.agreement_proposed_by is not None:
            assert self.task.state in AGREEMENT_STATES and not self.task.refund_ordered
            assert self.task.agreement_proposed_by in (
                self.task.employer_pubkey,
                self.task.worker_pubkey,
            )

    @invariant()
    def the_guardian_can_always_finish_every_deposit(self) -> None:
        """SYSTEM commands alone end every deposit: an unpaid invoice lapses, a held or
        forfeited one is returned before its HTLC expires."""
        task = self.task
        if task is None:
            return
        for deposit in task.deposits:
            if not deposit.is_live:
                continue
            hash_hex, at = deposit.payment_hash_hex, self.now + 1
            steps: list[c.Command] = [
                c.DepositExpiring(actor=SYSTEM, at=at, payment_hash_hex=hash_hex, blocks_left=3),
                c.CompleteDepositReturn(
                    actor=SYSTEM, at=at, payment_hash_hex=hash_hex, invoice_state="CANCELED"
                ),
                c.DepositInvoiceCancelled(actor=SYSTEM, at=at, payment_hash_hex=hash_hex),
            ]
            finished = task
            for step in steps:
                for event in decide(finished, step, self.arbiters):
                    finished = evolve(finished, event)
            ended = finished.deposit_by_hash(hash_hex)
            assert ended is not None and ended.state is DepositState.RETURNED, ended

    @invariant()
    def the_history_is_the_task(self) -> None:
        if self.task is None:
            return
        assert self.task.version == len(self.history)
        assert replay(self.history) == self.task

    @invariant()
    def the_guardian_can_always_finish_a_funded_task(self) -> None:
        task = self.task
        if task is None or task.funded_at is None or task.is_terminal:
            return
        # refund_unless_verified: an unanswered submission counts as verified; a verified task
        # whose payout already failed is refunded rather than held past the HTLC's expiry.
        # An unresolved dispute over a checked submission ends the same way.
        # So does a rejected proof nobody disputed where the task's policy releases it
        # (drive_to_settlement decides with an arbiter configured).
        rejection_lapses = task.rejection_policy == "release_unless_ruled"
        owed = task.worker_share_paid or (
            not task.refund_ordered
            and (
                (task.release_pending and task.payout_failures == 0 and not task.is_split)
                or task.state is S.SUBMITTED
                or (task.state is S.DISPUTED and task.proof is not None)
                or (task.state is S.CLAIMED and task.proof is not None and rejection_lapses)
            )
        )
        finished = drive_to_settlement(task, self.now + 1)
        assert finished.state is (S.PAID if owed else S.REFUNDED)
        # A payout that keeps failing must not strand the HTLC either: it is refunded (but a
        # split whose worker share landed: settled, the employer's share owed until paid).
        finished = drive_to_settlement(task, self.now + 1, payout_fails=True)
        assert finished.state is (S.PAID if task.worker_share_paid else S.REFUNDED)

    @invariant()
    def only_the_employer_or_an_arbiter_verifies(self) -> None:
        """A submission is verified by the employer's approval, an arbiter's ruling or the
        review window running out (a system event); never by the worker or a stranger."""
        if self.task is None:
            return
        employer = self.task.employer_pubkey
        for ev in self.history:
            if isinstance(ev, e.SubmissionApproved):
                assert ev.actor == employer, f"approved by {ev.actor}"
            elif isinstance(ev, e.DisputeResolved):
                assert ev.actor in ARBITERS, f"dispute resolved by {ev.actor}"
            elif isinstance(ev, e.ReviewWindowElapsed | e.RejectionLapsed):
                assert ev.actor == SYSTEM
        if self.task.verified_by is not None:
            assert self.task.verified_by in {employer, SYSTEM} | ARBITERS

    @invariant()
    def the_worker_changes_only_by_a_released_or_revoked_claim(self) -> None:
        """Between a claim (or assignment) and its release or revocation the worker stays
        put; once released or revoked, a key never works on the task again."""
        if self.task is None:
            return
        worker: str | None = None
        gone: set[str] = set()
        for ev in self.history:
            if isinstance(ev, e.TaskClaimed | e.WorkerAssigned):
                assert worker is None, "claimed over a standing claim"
                assert ev.worker_pubkey not in gone, "a released or revoked key came back"
                worker = ev.worker_pubkey
            elif isinstance(ev, e.ClaimReleased | e.ClaimRevoked):
                assert ev.worker_pubkey == worker
                gone.add(worker)
                worker = None
        assert self.task.worker_pubkey == worker
        assert set(self.task.barred_workers) == gone
        # Checked after every step, so a worker unset and set again is caught too.
        first = getattr(self, "first_worker", None)
        if first is not None and self.task.worker_pubkey != first:
            assert first in gone, "the worker changed without giving the task back"
        self.first_worker = self.task.worker_pubkey

    @invariant()
    def only_the_claim_modes_keys_become_the_worker(self) -> None:
        task = self.task
        if task is None:
            return
        for ev in self.history:
            if isinstance(ev, e.TaskClaimed):
                assert task.claim_mode != "apply", "claimed an apply task"
                if task.claim_mode == "direct":
                    assert ev.worker_pubkey == task.direct_worker
            elif isinstance(ev, e.WorkerAssigned):
                assert task.claim_mode == "apply" and ev.actor == task.employer_pubkey
                assert ev.worker_pubkey in task.applicants
        assert len(task.applicants) == len(set(task.applicants)) <= MAX_APPLICATIONS

    @invariant()
    def a_revoked_claimant_is_never_paid(self) -> None:
        """Nothing a revoked or released key sent is ever paid: the task's worker at release
        sent the released proof, no revocation touched a worker with a proof on record, and no
        forfeited deposit goes to them."""
        if self.task is None:
            return
        gone: set[str] = set()
        for i, ev in enumerate(self.history):
            if isinstance(ev, e.ClaimReleased | e.ClaimRevoked):
                task_before = replay(self.history[:i])
                assert task_before is not None and task_before.proof is None
                if isinstance(ev, e.ClaimRevoked):
                    assert ev.actor == task_before.employer_pubkey
                    assert task_before.claim_timeout_s is not None
                    assert task_before.claimed_at is not None
                    assert ev.at >= task_before.claimed_at + task_before.claim_timeout_s
                else:
                    assert ev.actor == ev.worker_pubkey
                gone.add(ev.worker_pubkey)
            if isinstance(ev, e.ProofSubmitted):
                assert ev.actor not in gone
            if isinstance(ev, e.ReleaseCompleted | e.HoldSettledUnderLivePayout):
                task_before = replay(self.history[:i])
                assert task_before is not None
                assert task_before.worker_pubkey not in gone, "a revoked claimant was paid"
            if isinstance(ev, e.DepositForfeited):
                assert ev.beneficiary not in gone

    @invariant()
    def unfunded_tasks_never_settle(self) -> None:
        if self.task is None:
            return
        funded = any(isinstance(ev, e.FundingAccepted) for ev in self.history)
        assert funded == (self.task.funded_at is not None)
        if not funded:
            assert self.task.state not in (S.PAID, S.REFUNDED)


def _deposit_preimage(depositor: str, deposit_round: int) -> str:
    return hashlib.sha256(f"{depositor}/{deposit_round}".encode()).hexdigest()


def _deposit_hash(depositor: str, deposit_round: int) -> str:
    preimage = bytes.fromhex(_deposit_preimage(depositor, deposit_round))
    return hashlib.sha256(preimage).hexdigest()


def _without_deposits(task: Task) -> Task:
    return dataclasses.replace(task, deposits=(), version=0, updated_at=0)


# About 5 s on one idle core; keep it well under 20 s on two busy ones.
TaskLifecycle.TestCase.settings = settings(max_examples=250, stateful_step_count=50, deadline=None)
TestTaskLifecycle = TaskLifecycle.TestCase


class SplitLifecycle(TaskLifecycle):
    """The same walk and invariants from a claimed or submitted task on a taskhold with an
    arbiter, so that splits and their payments (rare in the walk above) are reached often."""

    @initialize(
        deadline_s=st.integers(min_value=5_000, max_value=40_000),
        review_window_s=st.integers(min_value=300, max_value=3_000),
        dispute_window_s=st.integers(min_value=300, max_value=3_000),
        head_start=st.integers(min_value=3, max_value=4),
        with_deposits=st.booleans(),
        with_arbiter=st.just(True),
    )
    def create(
        self,
        deadline_s: int,
        review_window_s: int,
        dispute_window_s: int,
        head_start: int,
        with_deposits: bool,
        with_arbiter: bool,
    ) -> None:
        super().create(
            deadline_s,
            review_window_s,
            dispute_window_s,
            head_start,
            with_deposits,
            with_arbiter,
            claim_mode="open",
            claim_timeout_s=None,
            rejection_policy="release_unless_ruled",
        )


SplitLifecycle.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
TestSplitLifecycle = SplitLifecycle.TestCase
