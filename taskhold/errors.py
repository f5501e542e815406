"""The two branches of taskhold's errors, and the catalogue of codes a user can see.

:class:`Refusal` is what a user sees: a stable ``code`` from :class:`RefusalCode`, an HTTP status
and a sentence a person can act on. The API turns every refusal into a problem+json response in
one handler. Anything else that escapes is an internal :class:`Fault` (or a bug) and becomes a 500
without leaking details.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = [
    "Conflict",
    "Fault",
    "Forbidden",
    "Invalid",
    "NotFound",
    "Refusal",
    "RefusalCode",
    "TooLarge",
    "problem_body",
]


class RefusalCode(StrEnum):
    """Every ``code`` a problem+json answer can carry. Clients match on these values, so a value
    never changes once published; ``when`` says when it is used (``docs/refusal-codes.md`` is
    generated from it)."""

    when: str

    def __new__(cls, value: str, when: str) -> RefusalCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.when = when
        return member

    # The signed envelope of a write
    MALFORMED_EVENT = "malformed_event", "the request is not a well-formed NIP-01 event"
    BAD_SIGNATURE = "bad_signature", "the event's id or signature does not verify (401)"
    WRONG_KIND = "wrong_kind", "the event kind is not the one this operation takes"
    WRONG_OP = "wrong_op", "the event lacks exactly one op tag naming this endpoint's operation"
    WRONG_TASK = "wrong_task", "the event's task tag does not name exactly this task"
    STALE_REQUEST = "stale_request", "created_at is outside the server's request window"
    MALFORMED_CONTENT = "malformed_content", "the event content is not one unambiguous JSON object"
    INVALID_CONTENT = "invalid_content", "a content field is missing, unknown or of the wrong type"
    TOO_LARGE = "too_large", "the content or tags exceed the configured size limit (413)"
    POW_REQUIRED = "pow_required", "the signer's reputation asks for NIP-13 proof of work (403)"
    RATE_LIMITED = "rate_limited", "too many requests from this IP or pubkey (429)"
    # The operator's policy
    BLOCKED_JURISDICTION = (
        "blocked_jurisdiction",
        "the client's address is in a country or range the operator's terms block (451)",
    )
    BLOCKED_KEY = (
        "blocked_key",
        "the operator blocked the signing key; only its payout and refund exits are taken (403)",
    )
    # Idempotency and replay
    IDEMPOTENCY_KEY_MISSING = "idempotency_key_missing", "a write came without Idempotency-Key"
    IDEMPOTENCY_KEY_MISMATCH = (
        "idempotency_key_mismatch",
        "the Idempotency-Key header differs from the key tag signed in the event",
    )
    IDEMPOTENCY_KEY_REUSED = (
        "idempotency_key_reused",
        "the Idempotency-Key was already used for a different signed request",
    )
    REPLAYED_REQUEST = "replayed_request", "this signed event was already used (409)"
    WRITE_CONFLICT = "write_conflict", "another writer changed the task first, retries exhausted"
    # Creating a task
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range", "amount_msat is outside the operator's bounds"
    BAD_ACCEPTANCE_SPEC = "bad_acceptance_spec", "the acceptance spec is not valid"
    UNSUPPORTED_PATTERN = (
        "unsupported_pattern",
        "an acceptance regex uses syntax RE2 cannot match in linear time",
    )
    DEADLINE_IN_PAST = "deadline_in_past", "the task's deadline is not in the future"
    HOLD_TOO_LONG = (
        "hold_too_long",
        "deadline plus review and dispute windows need a longer hold than the CLTV cap",
    )
    TASK_TOO_LONG = (
        "task_too_long",
        "deadline plus review and dispute windows exceed max_task_duration_s, even renewed",
    )
    TASK_EXISTS = "task_exists", "a task with this id already exists"
    # The task state machine
    NO_SUCH_TASK = "no_such_task", "a command names a task that does not exist yet (409)"
    TASK_CLOSED = "task_closed", "the task is in a final state and takes no more changes"
    REFUND_UNDER_WAY = "refund_under_way", "a refund was ordered; only its completion may follow"
    WRONG_ROLE = "wrong_role", "the signer's role in the task may not do this"
    WRONG_STATE = "wrong_state", "the task's state does not allow this operation now"
    NO_ARBITER = "no_arbiter", "a dispute needs an arbiter and this taskhold has none"
    REASON_REQUIRED = "reason_required", "a reject, dispute or cancel came without a reason"
    DEPOSIT_REQUIRED = (
        "deposit_required",
        "a task created with a deposit asks for funding before the deposit is locked",
    )
    UNDERPAID = "underpaid", "the held amount is less than the task amount or the deposit"
    DEADLINE_PASSED = "deadline_passed", "the task's deadline has passed for a claim or proof"
    BAD_REVIEW_WINDOW = "bad_review_window", "a claim tried to lengthen the review window"
    NO_PROBLEMS = "no_problems", "a refused proof was recorded without any problem"
    TOO_MANY_REFUSED_PROOFS = (
        "too_many_refused_proofs",
        "the task reached refused_proofs_max_per_task",
    )
    REVIEW_WINDOW_CLOSED = "review_window_closed", "the employer's review window has ended"
    REVIEW_PENDING = "review_pending", "the worker may not dispute a submission under review"
    DISPUTE_WINDOW_CLOSED = "dispute_window_closed", "the task's dispute window has ended"
    INVALID_WINNER = "invalid_winner", "a resolution's winner is neither worker nor employer"
    NO_PROOF = "no_proof", "the task has no proof (and so no payout invoice) yet"
    BAD_PREIMAGE = "bad_preimage", "a preimage does not hash to the hold invoice's payment hash"
    NO_REFUND_ORDERED = "no_refund_ordered", "a refund completes on a task with none ordered"
    # Claim modes and claim discipline
    APPLY_ONLY = "apply_only", "the task takes applications (op apply) and assigns its worker"
    NOT_APPLY_MODE = "not_apply_mode", "only a task in claim mode apply takes applications"
    DIRECT_WORKER_ONLY = "direct_worker_only", "the task names its one worker; no other key"
    BARRED_WORKER = "barred_worker", "the key unclaimed or was revoked from this task before"
    ALREADY_APPLIED = "already_applied", "the key already has an application on this task"
    TOO_MANY_APPLICATIONS = "too_many_applications", "the task reached applications_max_per_task"
    NOT_AN_APPLICANT = "not_an_applicant", "an assignment names a key that did not apply"
    CLAIM_TIMEOUT_RUNNING = (
        "claim_timeout_running",
        "the claim timeout has not passed (or the task has none), so the claim stands",
    )
    NOTHING_TO_DISPUTE = (
        "nothing_to_dispute",
        "a worker disputes a rejection; a claim with nothing rejected cannot be disputed",
    )
    PROOF_ON_RECORD = (
        "proof_on_record",
        "the worker submitted a proof: the claim can no longer be released or revoked",
    )
    BAD_CLAIM_MODE = "bad_claim_mode", "claim_mode or direct_worker do not fit together"
    BAD_CLAIM_TIMEOUT = (
        "bad_claim_timeout",
        "claim_timeout_s is not positive or ends after the task's deadline",
    )
    # Agreements between employer and worker
    NO_PROPOSAL = "no_proposal", "there is no standing agreement proposal to accept or withdraw"
    OWN_PROPOSAL = "own_proposal", "only the other party may accept a proposal (403)"
    NOT_YOUR_PROPOSAL = "not_your_proposal", "only the party who proposed may withdraw it (403)"
    PROPOSAL_CHANGED = (
        "proposal_changed",
        "the accepted worker_msat is not the standing proposal's (it changed meanwhile)",
    )
    BAD_AGREEMENT_AMOUNT = (
        "bad_agreement_amount",
        "an agreement's worker_msat is below 0 or above the task's payout",
    )
    # Proofs
    MISSING_HEAD = "missing_head", "a proof carries no prev tag with the task's log_head"
    STALE_HEAD = "stale_head", "the task changed since the proof was signed (its prev tag)"
    PROOF_REJECTED = "proof_rejected", "the proof fails the acceptance spec; lists every problem"
    # Deposits
    DEPOSITS_DISABLED = "deposits_disabled", "this taskhold runs without the reputation policy"
    DEPOSIT_NOT_NEEDED = "deposit_not_needed", "the signer's record asks for no proof of work"
    DEPOSIT_EXISTS = "deposit_exists", "the signer already has a deposit on this task"
    NO_SUCH_DEPOSIT = "no_such_deposit", "no deposit matches the payment hash or pubkey"
    NO_PAYOUT_INVOICE = "no_payout_invoice", "a forfeited deposit's beneficiary sent no invoice"
    WRONG_ROUND = "wrong_round", "a deposit command names another deposit round"
    TOO_MANY_DEPOSITS = "too_many_deposits", "the task reached its deposit limits"
    TOO_MANY_OPEN_INVOICES = (
        "too_many_open_invoices",
        "the key has max_open_invoices_per_key unpaid invoices (429)",
    )
    INSUFFICIENT_CAPACITY = (
        "insufficient_capacity",
        "the escrow node cannot take another hold now, or the key reached its share (503)",
    )
    # Invoices and payouts
    BAD_INVOICE = "bad_invoice", "the text is not a BOLT11 invoice usable here"
    WRONG_NETWORK = "wrong_network", "the payout invoice is for another network"
    WRONG_AMOUNT = "wrong_amount", "the payout invoice is not for exactly the payout"
    INVOICE_EXPIRING = "invoice_expiring", "the payout invoice expires before payout_min_validity_s"
    HASH_REUSED = "hash_reused", "the payout invoice reuses one of taskhold's hold-invoice hashes"
    PAYOUT_HASH_REUSED = "payout_hash_reused", "another payout already uses or paid this hash"
    PAYOUT_TO_ESCROW_NODE = (
        "payout_to_escrow_node",
        "the payout invoice is an invoice of the escrow node itself",
    )
    PAYOUT_CLTV_TOO_LONG = (
        "payout_cltv_too_long",
        "the payout invoice's final CLTV does not fit in what the hold leaves",
    )
    PAYMENT_FAILED = "payment_failed", "a simulator wallet's payment failed (simulator routes)"
    # Split outcomes
    INVALID_SPLIT = (
        "invalid_split",
        "a split's worker share is not above 0 and below the amount minus the fee",
    )
    NOT_A_SPLIT = "not_a_split", "the operation is for a split outcome and the task was not split"
    SHARE_ALREADY_PAID = (
        "share_already_paid",
        "this share of the split is paid; its invoice can no longer change",
    )
    # Milestones
    BAD_MILESTONES = (
        "bad_milestones",
        "the milestones list is empty, too long, or its deadlines do not strictly increase",
    )
    SERIES_WORKER_ONLY = (
        "series_worker_only",
        "a later milestone goes to the series' worker, whom taskhold assigns; nobody claims it",
    )
    MILESTONE_FUNDED_BY_SERIES = (
        "milestone_funded_by_series",
        "taskhold issues a milestone's hold invoice by the series' funding mode, not op fund",
    )
    # Reviews and reputation
    REVIEWS_DISABLED = "reviews_disabled", "this taskhold takes no reviews"
    TASK_NOT_CLOSED = "task_not_closed", "reviews open once the task is PAID or REFUNDED"
    ALREADY_REVIEWED = "already_reviewed", "the signer already reviewed this task"
    NO_WORKER = "no_worker", "the task had no worker, so there is nobody to review"
    NOT_A_PARTY = "not_a_party", "only the task's employer and worker may review it"
    INVALID_RECEIPT = "invalid_receipt", "the review's receipt does not check out"
    INVALID_PUBKEY = "invalid_pubkey", "a pubkey in the path is not 64 lower-case hex characters"
    REPUTATION_DISABLED = "reputation_disabled", "this taskhold runs no reputation indexer (404)"
    # The operator's own tools
    KIND_NOT_ALLOWED = "kind_not_allowed", "the operator key may not sign this event kind"
    LOG_EVENT_TOO_LARGE = (
        "log_event_too_large",
        "the change would need a public log event larger than relays accept (413)",
    )
    LOG_REJECTED = "log_rejected", "a rebuild found the public log failing a check"
    INTAKE_PAUSED = (
        "intake_paused",
        "the operator paused intake: create and fund are refused for now (503, Retry-After)",
    )
    # Swap reports: the facts of a Boltz swap a party ran for the task
    BAD_SWAP_REPORT = (
        "bad_swap_report",
        "a swap report's txid is not 64 lower-case hex, its swap id is not a short token, or its"
        " swap API is not an https URL (http only on loopback)",
    )
    SWAP_FACT_CONFLICT = (
        "swap_fact_conflict",
        "a swap's recorded txid cannot change, and a swap is either claimed or refunded",
    )
    TOO_MANY_SWAPS = "too_many_swaps", "the task already records the most swap ids for this role"
    # Worker-signed payout terms
    PAYOUT_TERMS_MISMATCH = (
        "payout_terms_mismatch",
        "the signed payout_hash or payout_msat is not the payout invoice's hash or amount",
    )
    # Private tasks: sealed details and proofs, public commitments
    PRIVATE_TASK_MALFORMED = (
        "private_task_malformed",
        "visibility and content disagree: a private task needs details_hash and details_sealed"
        " and no clear description; a public one carries neither",
    )
    SEALED_COPY_MISSING = (
        "sealed_copy_missing",
        "a party who must read the sealed content (employer, operator, an arbiter, the named"
        " worker) has no sealed copy",
    )
    SEALED_CONTENT_INVALID = (
        "sealed_content_invalid",
        "the operator's sealed copy does not open, or is not a well-formed payload",
    )
    COMMITMENT_MISMATCH = (
        "commitment_mismatch",
        "the sealed payload does not hash to the commitment signed with it",
    )
    DETAILS_UNAVAILABLE = (
        "details_unavailable",
        "a private task's details cannot be sealed for its new worker: no operator key this"
        " taskhold holds opens a copy (409)",
    )
    # Defaults of the refusal classes, and the API's own handlers
    INVALID_REQUEST = "invalid_request", "the HTTP request does not fit the API's schema"
    INVALID_VALUE = "invalid_value", "a value breaks a rule (default of Invalid)"
    FORBIDDEN = "forbidden", "the signer may not do this (default of Forbidden)"
    NOT_FOUND = "not_found", "no such task, or no such path (404)"
    CONFLICT = "conflict", "the task's state does not allow this now (default of Conflict)"
    METHOD_NOT_ALLOWED = "method_not_allowed", "the path exists but not with this HTTP method"
    HTTP_ERROR = "http_error", "any other HTTP-level error"
    # Internal faults: not refusals, but their answers carry a code too
    LIGHTNING_UNAVAILABLE = "lightning_unavailable", "the Lightning node could not act now (503)"
    DATABASE_UNAVAILABLE = "database_unavailable", "the database could not be reached now (503)"
    INTERNAL_ERROR = "internal_error", "taskhold failed internally; nothing was changed (500)"


TITLES = {
    400: "Bad request",
    401: "Signature does not verify",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    422: "Invalid request",
    429: "Too many requests",
    451: "Unavailable for legal reasons",
    500: "Internal error",
    503: "Service unavailable",
}


def problem_body(status: int, code: RefusalCode, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem document: the one shape every refusal and fault answer has."""
    return {
        "type": f"https://taskhold.invalid/problems/{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "code": code.value,
        "detail": detail,
        **extra,
    }


class Refusal(Exception):
    """A request taskhold refuses on purpose. Nothing was written."""

    status: int = 400
    code: RefusalCode = RefusalCode.INVALID_REQUEST
    extra: Mapping[str, Any] = MappingProxyType({})
    """Further problem+json members, e.g. ``required_bits`` for ``pow_required``."""
    headers: Mapping[str, str] = MappingProxyType({})
    """HTTP headers of the refusal, e.g. ``Retry-After`` for 429."""

    def __init__(
        self, detail: str, *, code: RefusalCode | None = None, status: int | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def problem(self) -> dict[str, Any]:
        """This refusal as the problem+json body its answer carries."""
        return problem_body(self.status, self.code, self.detail, **self.extra)


class Invalid(Refusal):
    """The request is well-formed JSON but its values break a rule (422)."""

    status = 422
    code = RefusalCode.INVALID_VALUE


class Forbidden(Refusal):
    """The signer is not allowed to do this (403)."""

    status = 403
    code = RefusalCode.FORBIDDEN


class NotFound(Refusal):
    """No such task (404)."""

    status = 404
    code = RefusalCode.NOT_FOUND


class Conflict(Refusal):
    """The task's state does not allow this now, or someone else won a race (409)."""

    status = 409
    code = RefusalCode.CONFLICT


class TooLarge(Refusal):
    """The request exceeds a configured limit (413)."""

    status = 413
    code = RefusalCode.TOO_LARGE


class Fault(Exception):
    """An internal failure taskhold cannot blame on the request (a node, the database)."""
