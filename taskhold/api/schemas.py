"""What the API's bodies look like, for ``/openapi.json``: the signed event a write carries, every
answer, and the problem+json of a refusal.

These models describe; they do not parse. A write's event is checked by the envelope check
(``verify_signed_request``) on the exact JSON the client signed, since the event is embedded
byte for byte in the public log and its refusals carry their own codes (``malformed_event``,
``bad_signature``…). Answers are rendered by ``views`` and the routes as they always were. Tests
keep both sides honest: the envelope check accepts exactly the shapes :class:`SignedEvent`
describes, and every answer the API gives validates against its model.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from taskhold.errors import RefusalCode

__all__ = [
    "DescribedAs",
    "Info",
    "InvoiceAnswer",
    "MineAnswer",
    "PayAnswer",
    "Problem",
    "Receipts",
    "Reputation",
    "Reviews",
    "Series",
    "SignedEvent",
    "TaskList",
    "TaskView",
    "Transitions",
    "WalletBalances",
    "WriteAnswer",
    "install_openapi",
    "problem_responses",
]

PROBLEM_JSON = "application/problem+json"
HEX64 = r"^[0-9a-f]{64}$"
NO_CONTROL = r"^[^\x00-\x1f]*$"
"""NIP-01 serialisers disagree on control characters, so events carry none (escape them in
JSON content)."""


class _Described(BaseModel):
    """An answer: every member is listed, so a member added to a view without its model
    fails the conformance test instead of going undocumented."""

    model_config = ConfigDict(extra="forbid")


class SignedEvent(BaseModel):
    """A NIP-01 event signed by the participant (BIP-340 Schnorr over its id): exactly these
    seven members. Its ``content`` is the request as a JSON object; its tags name the operation
    (``["op", …]``) and, except on create, the task (``["task", …]``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(pattern=HEX64, description="sha256 of the NIP-01 serialisation, lower hex")
    pubkey: str = Field(pattern=HEX64, description="the signer's x-only public key, lower hex")
    created_at: int = Field(
        ge=0, le=2**63 - 1, description="unix seconds; within request_window_s of the server"
    )
    kind: int = Field(ge=0, le=0xFFFF, description="3912 for requests, 3911 for proofs")
    tags: list[Annotated[list[Annotated[str, Field(pattern=NO_CONTROL)]], Field(min_length=1)]] = (
        Field(description='non-empty lists of strings, e.g. ["op", "claim"], ["task", "<task id>"]')
    )
    content: str = Field(pattern=NO_CONTROL, description="the request's fields as a JSON object")
    sig: str = Field(pattern=r"^[0-9a-f]{128}$", description="BIP-340 signature, lower hex")


class DescribedAs:
    """Annotated metadata: a value validated as its own type, documented as ``model``."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(self.model.__pydantic_core_schema__)


class Problem(BaseModel):
    """An RFC 9457 problem: every refusal and fault answers with one. Some codes add members
    (``problems`` and ``recorded`` for ``proof_rejected``, ``retry_after_s`` for
    ``rate_limited``, ``required_bits`` and ``score`` for ``pow_required``)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    code: RefusalCode
    detail: str


_PROBLEM_STATUSES = {
    400: "a write without a usable Idempotency-Key",
    401: "the event's id or signature does not verify",
    403: "the signer may not do this",
    404: "no such task",
    409: "the task's state does not allow this now, or the request was used before",
    413: "the request is larger than the configured limit",
    422: "the body, the event or its content breaks a rule",
    429: "too many requests; see Retry-After",
    451: "the client's country or address range is blocked by the operator's terms",
    503: "the Lightning node or the database could not act now, the escrow node has no room"
    " (insufficient_capacity), or the operator paused intake (intake_paused, create and fund);"
    " see Retry-After",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the problem+json answers it can give (FastAPI files the
    model under application/json; :func:`install_openapi` moves it to its media type)."""
    return {
        status: {"model": Problem, "description": _PROBLEM_STATUSES[status]} for status in statuses
    }


def install_openapi(app: FastAPI) -> None:
    """``/openapi.json`` with every 4xx/5xx body under ``application/problem+json``, the media
    type the problem handlers answer with."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for operation in _operations(document):
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if status[0] in "45" and "application/json" in content:
                        content[PROBLEM_JSON] = content.pop("application/json")
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [operation for path in document.get("paths", {}).values() for operation in path.values()]


WRITE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 451, 503)
READ_PROBLEMS = problem_responses(404, 422, 429, 451)
TERMS_PROBLEMS = problem_responses(429)
"""``/v1/info`` stays open to blocked places (``jurisdiction.OPEN_ROUTES``)."""


class Funding(_Described):
    payment_request: str
    payment_hash: str | None
    amount_msat: int
    cltv_expiry_delta: int | None
    expires_at: int | None
    funding_round: int
    accepted_htlc_expiry_height: int | None


class Renewal(_Described):
    """The next funding round's hold invoice (same amount, its own payment hash)."""

    funding_round: int
    payment_request: str
    payment_hash: str
    amount_msat: int
    cltv_expiry_delta: int | None
    expires_at: int | None


class Dispute(_Described):
    opened_by: str
    opened_at: int | None
    window_ends_at: int | None
    reason: str | None
    resolution: str | None


class DepositView(_Described):
    """A deposit; ``preimage`` is set only once it was paid out, when it is public."""

    depositor: str
    role: str
    round: int
    state: str
    amount_msat: int
    payment_request: str
    payment_hash: str
    cltv_expiry_delta: int
    expires_at: int
    accepted_htlc_expiry_height: int | None
    beneficiary: str | None
    reason: str | None
    payout_invoice: str | None
    """The payee's invoice; one given sealed shows as ``sealed:<payment hash>``."""
    payout_failures: int
    last_payout_failure: str | None
    payout_payment_hash: str | None
    preimage: str | None
    hold_settled_at: int | None
    requested_at: int
    closed_at: int | None


class SwapView(_Described):
    """A Boltz swap a party reported for the task: facts anyone can check on chain and at
    ``swap_api``."""

    role: str = Field(description="funding (the employer's submarine swap) or payout (reverse)")
    swap_id: str
    swap_api: str = Field(description="the Boltz API base URL the swap runs at")
    reporter: str
    lockup_txid: str | None
    claim_txid: str | None
    refund_txid: str | None
    first_reported_at: int
    last_reported_at: int


class PayoutFallback(_Described):
    """The Lightning payout could not reach the worker: an on-chain payout by reverse swap at
    ``swap_api`` is possible (send that swap's invoice as the payout invoice)."""

    on_chain: bool
    swap_api: str = Field(description="the Boltz API v2 base URL the operator offers")
    payout_msat: int = Field(description="what the swap's invoice must be for")
    reason: str | None = Field(description="the last payout failure")


class SplitView(_Described):
    """A split outcome: the worker's share goes to ``payout_invoice``, the employer's to
    ``refund_invoice``; the shares plus ``fee_msat`` make the amount."""

    basis: str
    worker_msat: int
    employer_msat: int
    refund_invoice: str | None
    """The payee's invoice; one given sealed shows as ``sealed:<payment hash>``."""
    refund_failures: int
    last_refund_failure: str | None
    refund_payment_hash: str | None
    refund_fee_msat: int | None


class Agreement(_Described):
    """A standing proposal to end the task by agreement; the other party accepts it by
    repeating ``worker_msat`` (0 cancels, the whole payout releases, anything between splits)."""

    proposed_by: str
    worker_msat: int
    note: str
    proposed_at: int


class Milestone(_Described):
    """One milestone of a series (a task of its own) as the series listing shows it."""

    task_id: str
    index: int
    title: str
    state: str
    amount_msat: int
    deadline_at: int
    worker_pubkey: str | None
    payment_request: str | None
    payment_hash: str | None
    preimage: str | None


class SeriesPlace(_Described):
    """Where a milestone stands in its series; ``milestones`` (its siblings' states) is filled
    when one task is read."""

    series_id: str
    index: int
    count: int
    funding_mode: str | None
    task_ids: list[str]
    milestones: list[Milestone] | None = None


class SealedCopy(_Described):
    """One party's copy of sealed content: NIP-44 v2, opened with the recipient's secret key
    and the sender's public key."""

    sender: str
    ciphertext: str


class TaskView(_Described):
    """A task. Nothing secret is in it: ``preimage`` is filled by the settlement, when it
    becomes public."""

    task_id: str
    version: int
    log_head: str | None
    state: str
    title: str
    description: str
    acceptance: dict[str, Any]
    amount_msat: int
    fee_msat: int
    payout_msat: int
    deadline_at: int
    review_window_s: int
    dispute_window_s: int
    deadline_policy: str
    employer_pubkey: str
    worker_pubkey: str | None
    created_at: int
    updated_at: int
    funding: Funding | None
    proof: dict[str, Any] | None
    proof_event_id: str | None
    payout_invoice: str | None
    """The payee's invoice; one given sealed shows as ``sealed:<payment hash>``."""
    submitted_at: int | None
    verified_at: int | None
    rejection_reason: str | None
    proofs_refused: int
    dispute: Dispute | None
    refund_reason: str | None
    payout_failures: int
    last_payout_failure: str | None
    payout_payment_hash: str | None
    payout_fee_msat: int | None
    preimage: str | None
    hold_settled_at: int | None
    closed_at: int | None
    deposit_pledged: bool
    deposits: list[DepositView]
    claim_mode: str = Field(description="open, apply or direct: who may become the worker")
    direct_worker: str | None
    claim_timeout_s: int | None = Field(
        description="seconds from a claim to its first proof; then the employer may revoke it"
    )
    claimed_at: int | None
    applicants_count: int
    applicants: list[str] = Field(description="keys that applied; their notes are in the log")
    barred_workers: list[str] = Field(description="keys that unclaimed or were revoked")
    split: SplitView | None
    rejection_policy: str | None = Field(
        description="what a rejection nobody disputed ends in; None on tasks created before it"
    )
    agreement: Agreement | None = Field(description="the standing proposal, if any")
    agreed_worker_msat: int | None
    series: SeriesPlace | None = Field(
        default=None, description="set on a milestone: where it stands in its series"
    )
    renewal_needed: bool = Field(
        default=False, description="the task outlasts one hold: the employer pays renewals"
    )
    renewal: Renewal | None = Field(
        default=None, description="the open renewal: pay it before the current hold ends"
    )
    visibility: str = Field(
        default="public",
        description="public (details in the clear) or private (details sealed to the parties)",
    )
    details_hash: str | None = Field(
        default=None, description="a private task's commitment: sha256 of its details payload"
    )
    details_sealed: dict[str, SealedCopy] = Field(
        default_factory=dict,
        description="a private task's sealed copies of its details, by recipient pubkey",
    )
    proof_hash: str | None = Field(
        default=None, description="a sealed proof's commitment: sha256 of its payload"
    )
    proof_sealed: dict[str, SealedCopy] = Field(
        default_factory=dict, description="the sealed proof's copies, by recipient pubkey"
    )
    swaps: list[SwapView] = Field(
        default_factory=list, description="the Boltz swaps the parties reported, oldest first"
    )
    payout_fallback: PayoutFallback | None = Field(
        default=None,
        description="set while the Lightning payout cannot reach the worker and the operator"
        " offers an on-chain payout by reverse swap",
    )


class Series(_Described):
    """A milestone series: its milestones in order."""

    series_id: str
    count: int
    funding_mode: str = Field(description="upfront or sequential")
    milestones: list[Milestone]


class Review(_Described):
    task_id: str
    reviewer: str
    subject: str
    rating: int
    comment: str
    rseq: int
    request_id: str
    record: dict[str, Any]
    created_at: int


class WriteAnswer(TaskView):
    """The task after the write; ``review`` answers op review, ``deposit`` op deposit."""

    review: Review | None = None
    deposit: DepositView | None = None
    milestones: list[Milestone] | None = None
    """Answers a create with ``milestones``: the series' milestones, in order."""


class TaskList(_Described):
    tasks: list[TaskView]
    next_before: int | None = Field(description="pass as before= for the next page")
    next_before_id: str | None = Field(
        description="pass as before_id= with before=, so tasks made in the same second as the"
        " page's last are not skipped"
    )


class Transition(_Described):
    version: int
    event_type: str
    actor: str
    at: int
    state_after: str
    event: dict[str, Any]
    request: SignedEvent | None = Field(description="the signed request; None for taskhold's own")


class Transitions(_Described):
    task_id: str
    transitions: list[Transition]


class Info(_Described):
    """The operator's terms; the same document is published as a signed event."""

    operator_pubkey: str
    lightning: str
    network: str
    fee_ppm: int
    fee_base_msat: int
    min_amount_msat: int
    max_amount_msat: int
    max_cltv_expiry_delta: int
    renewal: dict[str, Any] = Field(
        description="largest hold window per backend (blocks, seconds) and the renewal lead"
    )
    payouts: dict[str, Any]
    request_window_s: int
    default_review_window_s: int
    default_dispute_window_s: int
    deadline_policy: str
    dispute_default: str
    rejection_policy: str
    rejection_default: str
    arbiters: list[str]
    capacity: dict[str, Any] = Field(
        description="admission control: the share of the escrow node's HTLC slots and inbound"
        " liquidity one key may hold (max_key_share), the Retry-After of a refusal, the rule"
    )
    capacity_now: dict[str, Any] | None = Field(
        default=None,
        description="the escrow node's slots and liquidity now, and what open tasks claim of"
        " them (GET /v1/info only, not in the signed event); null while the node is down",
    )
    limits: dict[str, int]
    default_claim_timeout_s: int
    request_kind: int
    proof_kind: int
    reputation: dict[str, Any] | None
    relays: list[str] = Field(description="the relays the public log is published to")
    swap_api: str | None = Field(
        default=None,
        description="the Boltz API v2 base URL offered to workers for an on-chain payout by"
        " reverse swap when the Lightning payout cannot reach them; null offers none",
    )
    jurisdiction: dict[str, Any] = Field(
        description="the countries (ISO 3166-1 alpha-2) and CIDR ranges whose clients are"
        " answered 451 blocked_jurisdiction, and which routes stay open to them"
    )
    moderation: dict[str, Any] = Field(
        description="where the operator's signed moderation list is (its kind and d tag: the"
        " blocked keys and delisted tasks with their reasons) and what a block does"
    )
    kinds: dict[str, int] = Field(
        description="every kind taskhold publishes or embeds, by its kind_* setting without kind_"
    )
    subscribing: str = Field(description="where the relay filters for live updates are given")


class RoleMetrics(BaseModel):
    """A role's score and its metrics (see docs/reputation.md)."""

    model_config = ConfigDict(extra="allow")

    score: int


class Published(_Described):
    event_id: str
    version: int
    score: int
    gseq_to: int
    rseq_to: int | None
    created_at: int


class ReputationPolicyNow(_Described):
    pow_bits: int
    review_window_s: int


class Reputation(_Described):
    pubkey: str
    version: int
    score: int = Field(ge=0, le=1000)
    rank: int = Field(ge=0, le=100)
    roles: dict[str, RoleMetrics]
    gseq_from: int | None
    gseq_to: int | None
    rseq_to: int | None
    has_record: bool
    published: Published | None
    policy: ReputationPolicyNow


class Receipt(_Described):
    reviewer: str
    role: str
    receipt: SignedEvent


class Receipts(_Described):
    task_id: str
    receipts: list[Receipt]


class Reviews(_Described):
    task_id: str
    reviews: list[Review]


class PayAnswer(_Described):
    status: str
    payment_hash: str


class InvoiceAnswer(_Described):
    payment_request: str


class MineAnswer(_Described):
    height: int


class WalletBalances(_Described):
    height: int
    balances_msat: dict[str, int]
