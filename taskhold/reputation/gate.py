"""What the write path asks of reputation: proof of work from strangers, review windows and
reviews.

Proof of work (NIP-13) is asked of pubkeys whose score is below ``pow_free_score``, more the
lower the score (``ReputationPolicy.pow_bits_for``). It is checked right after the signature, so
it costs the server one id inspection and nothing is written; the refusal says how many bits are
needed, and the event must commit to at least that target in its ``["nonce", n, target]`` tag.
"""

from __future__ import annotations

from types import MappingProxyType

from taskhold.api.auth import SignedRequest
from taskhold.errors import Forbidden
from taskhold.nostr.pow import committed_target, pow_bits

from .policy import ReputationPolicy
from .reviews import ReviewDesk
from .service import ReputationService

__all__ = ["PowRequired", "ReputationWrites"]


class PowRequired(Forbidden):
    code = "pow_required"

    def __init__(self, required_bits: int, score: int, found_bits: int, target: int) -> None:
        super().__init__(
            f"this pubkey's reputation score is {score}/1000, so writes need NIP-13 proof of "
            f"work of difficulty {required_bits}: an event id with at least {required_bits} "
            f'leading zero bits and a ["nonce", <n>, "{required_bits}"] tag (this event has '
            f"{found_bits} bits and commits to {target})"
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
        if found < required or target < required:
            raise PowRequired(required, score, found, target)

    def review_window(self, employer_pubkey: str, default_s: int) -> int:
        """The default review window for a task this employer creates now.

        No I/O: it is called inside the write's transaction, on the indexer as ``admit`` left it.
        """
        score = self.service.card_now(employer_pubkey).score
        return self.policy.review_window_for(score, None, default_s)
