"""What the write path asks of reputation: proof of work or a deposit from strangers, review
windows and reviews.

Proof of work (NIP-13) is asked of pubkeys whose score is below ``pow_free_score``, more the
lower the score (``ReputationPolicy.pow_bits_for``). It is checked right after the signature, so
it costs the server one id inspection and nothing is written; the refusal says how many bits are
needed, and the event must commit to at least that target in its ``["nonce", n, target]`` tag.

A deposit (``taskhold.tasks.deposits``) stands in for the proof of work on one task: asking for
one (op ``deposit``) needs none, a create that pledges one (``"deposit": true``) needs none, and
once the deposit is held its depositor's writes on that task need none. The beneficiary of a
forfeited deposit needs none to send the invoice that pays them.
"""

from __future__ import annotations

from types import MappingProxyType

from taskhold.envelope import SignedRequest
from taskhold.errors import Forbidden, RefusalCode
from taskhold.nostr.pow import committed_target, pow_bits
from taskhold.tasks.model import DepositState, Task

from .policy import ReputationPolicy
from .reviews import ReviewDesk
from .service import ReputationService

__all__ = ["PowRequired", "ReputationWrites"]


class PowRequired(Forbidden):
    code = RefusalCode.POW_REQUIRED

    def __init__(self, required_bits: int, score: int, found_bits: int, target: int) -> None:
        super().__init__(
            f"this pubkey's reputation score is {score}/1000, so writes need NIP-13 proof of "
            f"work of difficulty {required_bits}: an event id with at least {required_bits} "
            f'leading zero bits and a ["nonce", <n>, "{required_bits}"] tag (this event has '
            f"{found_bits} bits and commits to {target}); or lock a deposit on the task instead:"
            f' op "deposit" before claiming, or create with "deposit": true and lock it before'
            f" funding"
        )
        self.extra = MappingProxyType({"required_bits": required_bits, "score": score})


class ReputationWrites:
    def __init__(
        self, service: ReputationService, policy: ReputationPolicy, reviews: ReviewDesk
    ) -> None:
        self.service = service
        self.policy = policy
        self.reviews = reviews

    async def admit(self, request: SignedRequest) -> None:
        """Refuse a write whose author must show more proof of work than it did.

        Runs before the write's transaction, so this is where the indexer is brought up to date
        (``reputation_max_staleness_s``) for the decisions made inside it.
        """
        await self.service.fresh()
        if self.policy.pow_max_bits <= 0:
            return
        score = self.service.card_now(request.pubkey).score
        required = self.policy.pow_bits_for(score)
        if required == 0:
            return
        found, target = pow_bits(request.event_id), committed_target(request.raw)
        if found >= required and target >= required:
            return
        if await self._deposit_stands_in(request):
            return
        raise PowRequired(required, score, found, target)

    async def _deposit_stands_in(self, request: SignedRequest) -> bool:
        """Whether a deposit excuses this write from proof of work (see the module doc)."""
        if request.op == "deposit":
            return True
        if request.op == "create":
            return request.content.get("deposit") is True
        if request.task_id is None:
            return False
        async with self.service.store.transaction() as tx:
            task = await tx.load_task(request.task_id)
        return task is not None and _deposit_covers(task, request)

    def deposit_msat(self, pubkey: str, task_amount_msat: int) -> int:
        """The deposit ``pubkey`` would lock on a task of this amount now; 0 if none is needed."""
        score = self.service.card_now(pubkey).score
        return self.policy.deposit_msat_for(score, task_amount_msat)

    def review_window(self, employer_pubkey: str, worker_pubkey: str, default_s: int) -> int:
        """The review window fixed when ``worker_pubkey`` claims: the lower score decides.

        No I/O: it is called inside the write's transaction, on the indexer as ``admit`` left it.
        """
        employer = self.service.card_now(employer_pubkey).score
        worker = self.service.card_now(worker_pubkey).score
        return self.policy.review_window_for(employer, worker, default_s)


def _deposit_covers(task: Task, request: SignedRequest) -> bool:
    if request.op == "deposit-payout":
        return any(
            d.state is DepositState.FORFEIT and d.beneficiary == request.pubkey
            for d in task.deposits
        )
    deposit = task.deposit_of(request.pubkey)
    if deposit is None or deposit.expiry_height is None:  # never held
        return False
    return deposit.state in (DepositState.HELD, DepositState.RETURNING, DepositState.RETURNED)
