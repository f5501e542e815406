"""Private tasks and sealed proofs: the content travels sealed, the public log carries its
commitment.

The employer seals the details payload (``taskhold.nostr.confidential``) to every party who
must read it: themself, the operator, each configured arbiter and the named worker of a direct
task. At create the operator opens its own copy in memory, checks it is a well-formed payload
of the details whose hash is the signed ``details_hash``, and forgets it: the database and the
log keep only the hash and the ciphertexts. When a worker takes an open private task, the
operator opens its copy again and seals it for that worker; the copy goes into the claim's
event, so a rebuild from the log recovers it.

A proof may go sealed the same way (a private task's must): the worker seals it to the
employer, the operator and each arbiter; the operator opens its copy in memory, runs the
acceptance spec on it, and the log records ``proof_hash``, the copies and the verdict.

Only the operator's copy can be checked against the commitment, so the copies a task keeps for
the other readers are the operator's, sealed again from the payload it checked: a sender cannot
hand the other side or an arbiter a copy that says something other than what was committed.

A payout invoice may go sealed too (``payout_invoice_sealed``, ``refund_invoice_sealed``), to
the operator alone: the invoice names the payee's node. The operator opens it in memory to check
it like a clear one; the task keeps its sealed form (``taskhold.payments.sealed``), opened again
only to pay it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import StringConstraints

from taskhold.errors import Conflict, Invalid, RefusalCode
from taskhold.nostr import NostrKeys
from taskhold.nostr.confidential import (
    SealedContentError,
    commitment,
    open_sealed,
    payload_body,
    seal,
)
from taskhold.payments.sealed import sealed_form
from taskhold.tasks import Task

from .content import PUBKEY_PATTERN
from .pipeline import WriteContext

__all__ = [
    "HASH_PATTERN",
    "GivenInvoice",
    "OpenedProof",
    "Recipient",
    "SealedCopies",
    "SealedText",
    "check_private_details",
    "details_for_worker",
    "given_invoice",
    "open_sealed_proof",
]

HASH_PATTERN = "^[0-9a-f]{64}$"
Recipient = Annotated[str, StringConstraints(pattern=PUBKEY_PATTERN)]
SealedText = Annotated[str, StringConstraints(min_length=1, max_length=30_000)]
"""One sealed copy in request content: a NIP-44 v2 payload, base64."""

SealedCopies = dict[str, dict[str, str]]
"""Recipient pubkey -> ``{"sender": pubkey, "ciphertext": NIP-44 v2}``: as tasks keep them."""

DESCRIPTION_MAX = 10_000


def check_private_details(
    ctx: WriteContext,
    *,
    employer: str,
    visibility: str,
    description: str,
    details_hash: str | None,
    details_sealed: dict[str, str] | None,
    direct_worker: str | None,
) -> SealedCopies | None:
    """The sealed copies a create may record (None for a public task); refuses a private task
    whose copies are missing, do not open for the operator, or do not match ``details_hash``."""
    if visibility == "public":
        if details_hash is not None or details_sealed is not None:
            raise Invalid(
                "details_hash and details_sealed belong to a private task;"
                ' send "visibility": "private" or a clear description',
                code=RefusalCode.PRIVATE_TASK_MALFORMED,
            )
        return None
    if details_hash is None or details_sealed is None or description:
        raise Invalid(
            "a private task carries details_hash and details_sealed, and no clear description",
            code=RefusalCode.PRIVATE_TASK_MALFORMED,
        )
    operator = _operator_keys(ctx)
    needed = [employer, operator.pubkey_hex, *sorted(ctx.arbiters)]
    if direct_worker is not None:
        needed.append(direct_worker)
    _check_copies(
        "details_sealed",
        details_sealed,
        needed,
        "employer, operator, every arbiter and the direct worker",
    )
    payload = _open(operator, employer, details_sealed[operator.pubkey_hex])
    _check_details_body(payload)
    if commitment(payload) != details_hash:
        raise Invalid(
            "the sealed details do not hash to details_hash",
            code=RefusalCode.COMMITMENT_MISMATCH,
        )
    return _kept(operator, employer, payload, details_sealed)


def details_for_worker(ctx: WriteContext, task: Task, worker: str) -> SealedCopies | None:
    """A copy of a private task's details sealed by the operator for ``worker``; None for a
    public task or a worker who has a copy already. The operator's copy may be sealed to a key
    it rotated away from since. A worker is never let in blind: when no key the operator holds
    opens a copy, the claim or assignment is refused (409 ``details_unavailable``)."""
    if task.visibility != "private" or worker in task.details_sealed:
        return None
    operator = _operator_keys(ctx)
    for keys in (operator, *ctx.previous_operator_keys):
        own = task.details_sealed.get(keys.pubkey_hex)
        if own is None:
            continue
        try:
            payload = open_sealed(keys, own["sender"], own["ciphertext"])
        except SealedContentError:
            continue
        copies = seal(operator, [worker], payload)
        return {worker: {"sender": operator.pubkey_hex, "ciphertext": copies[worker]}}
    raise Conflict(
        "this private task's details cannot be sealed for you: no key this taskhold holds opens"
        " its copy (the operator key was rotated more than once since the task was created)",
        code=RefusalCode.DETAILS_UNAVAILABLE,
    )


@dataclass(frozen=True, slots=True)
class OpenedProof:
    """A sealed proof opened in memory: checked against the spec, then forgotten."""

    proof: dict[str, Any]
    proof_hash: str
    copies: SealedCopies


def open_sealed_proof(
    ctx: WriteContext,
    task: Task,
    *,
    worker: str,
    clear_proof: dict[str, Any],
    proof_hash: str | None,
    proof_sealed: dict[str, str] | None,
) -> OpenedProof | None:
    """The proof a worker sealed (body: the proof object) after checking its copies and its
    commitment as for a private task's details; None for a proof sent in the clear, which a
    private task refuses (it would publish what the task keeps private)."""
    if proof_sealed is None and proof_hash is None:
        if task.visibility == "private" and clear_proof:
            raise Invalid(
                "a private task's proof goes sealed (proof_hash and proof_sealed), not in the"
                " clear",
                code=RefusalCode.PRIVATE_TASK_MALFORMED,
            )
        return None
    if proof_sealed is None or proof_hash is None or clear_proof:
        raise Invalid(
            "a sealed proof carries proof_hash and proof_sealed, and no clear proof",
            code=RefusalCode.PRIVATE_TASK_MALFORMED,
        )
    operator = _operator_keys(ctx)
    needed = [task.employer_pubkey, operator.pubkey_hex, *sorted(ctx.arbiters)]
    _check_copies("proof_sealed", proof_sealed, needed, "employer, operator and every arbiter")
    payload = _open(operator, worker, proof_sealed[operator.pubkey_hex])
    proof = _body(payload)
    if not isinstance(proof, dict):
        raise Invalid(
            "the sealed proof's body must be the proof object",
            code=RefusalCode.SEALED_CONTENT_INVALID,
        )
    if commitment(payload) != proof_hash:
        raise Invalid(
            "the sealed proof does not hash to proof_hash", code=RefusalCode.COMMITMENT_MISMATCH
        )
    copies = _kept(operator, worker, payload, proof_sealed)
    return OpenedProof(proof=proof, proof_hash=proof_hash, copies=copies)


@dataclass(frozen=True, slots=True)
class GivenInvoice:
    """A payee's invoice as a request gave it: ``text`` is the invoice, opened in memory if it
    came sealed (then ``sealed`` is its sender, the operator key and the ciphertext)."""

    text: str
    sealed: tuple[str, str, str] | None = None

    def stored(self, payment_hash: str, payment_request: str) -> str:
        """What the task keeps once the invoice is checked: its sealed form (named by its
        checked ``payment_hash``), or the clear invoice as decoded."""
        if self.sealed is None:
            return payment_request
        return sealed_form(payment_hash, *self.sealed)


def given_invoice(
    ctx: WriteContext,
    task: Task,
    *,
    signer: str,
    field: str,
    clear: str | None,
    sealed: str | None,
) -> GivenInvoice:
    """The invoice in ``field`` or ``<field>_sealed`` (exactly one), the sealed one opened with
    the operator's key; one that does not open is refused, and so is a private task's invoice
    in the clear (it would publish the payee's node beside the deal the task keeps private)."""
    if (clear is None) == (sealed is None):
        raise Invalid(
            f"give {field} or {field}_sealed (the invoice sealed to the operator), exactly one",
            code=RefusalCode.INVALID_CONTENT,
        )
    if clear is not None and task.visibility == "private":
        raise Invalid(
            f"a private task's invoice goes sealed to the operator ({field}_sealed), not in the"
            " clear",
            code=RefusalCode.PRIVATE_TASK_MALFORMED,
        )
    if clear is not None:
        return GivenInvoice(clear)
    assert sealed is not None
    operator = _operator_keys(ctx)
    text = _open(operator, signer, sealed).strip()
    return GivenInvoice(text, (signer, operator.pubkey_hex, sealed))


def _operator_keys(ctx: WriteContext) -> NostrKeys:
    if ctx.operator_keys is None:
        raise Invalid(
            "this taskhold holds no operator key to open sealed content with",
            code=RefusalCode.SEALED_CONTENT_INVALID,
        )
    return ctx.operator_keys


def _check_copies(field: str, sealed: dict[str, str], needed: list[str], who: str) -> None:
    missing = [pubkey for pubkey in needed if pubkey not in sealed]
    if missing:
        raise Invalid(
            f"{field} has no copy for " + ", ".join(missing) + f" ({who} each need one)",
            code=RefusalCode.SEALED_COPY_MISSING,
        )


def _kept(operator: NostrKeys, sender: str, payload: str, sealed: dict[str, str]) -> SealedCopies:
    """The copies a task keeps. Only the operator's copy can be checked against the commitment,
    so the operator seals every other reader's copy again from the payload it checked: a sender
    cannot hand the other side (or an arbiter) a copy that says something else. The sender's own
    copy is kept as sent; it only ever reaches the sender."""
    kept = {
        reader: {"sender": sender, "ciphertext": sealed[reader]}
        for reader in (sender, operator.pubkey_hex)
        if reader in sealed
    }
    others = [reader for reader in sealed if reader not in kept]
    resealed = seal(operator, others, payload) if others else {}
    kept.update(
        {
            reader: {"sender": operator.pubkey_hex, "ciphertext": ciphertext}
            for reader, ciphertext in resealed.items()
        }
    )
    return kept


def _open(operator: NostrKeys, sender: str, ciphertext: str) -> str:
    try:
        return open_sealed(operator, sender, ciphertext)
    except SealedContentError as exc:
        raise Invalid(
            f"the operator's sealed copy: {exc}", code=RefusalCode.SEALED_CONTENT_INVALID
        ) from None


def _body(payload: str) -> Any:
    try:
        return payload_body(payload)
    except SealedContentError as exc:
        raise Invalid(str(exc), code=RefusalCode.SEALED_CONTENT_INVALID) from None


def _check_details_body(payload: str) -> None:
    """The details body is ``{"description": <text up to 10,000 characters>}``."""
    body = _body(payload)
    if not (
        isinstance(body, dict)
        and set(body) == {"description"}
        and isinstance(body["description"], str)
        and len(body["description"]) <= DESCRIPTION_MAX
    ):
        raise Invalid(
            'the sealed details body must be {"description": <text up to 10,000 characters>}',
            code=RefusalCode.SEALED_CONTENT_INVALID,
        )
