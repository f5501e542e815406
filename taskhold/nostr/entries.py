"""The shape of taskhold's public log: entry tags, content and the open-task listing.

Pure functions over plain data, shared by the writer (inside the DB transaction) and the
rebuild. The independent auditor (``taskhold.audit``) re-implements the checks it needs from the
format described in ``docs/public-log.md`` instead of importing this module.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskhold.tasks.model import Task

__all__ = [
    "LISTING_CLOSED",
    "LISTING_OPEN",
    "LOG_FORMAT_VERSION",
    "canonical_json",
    "entry_content",
    "entry_participants",
    "entry_tags",
    "is_claimable",
    "listing_event",
    "payment_tags",
    "state_hash",
    "tag_value",
]

LOG_FORMAT_VERSION = 1


def tag_value(event: dict[str, Any], name: str) -> str | None:
    """The first value of the ``name`` tag; None when absent. Safe on unverified events."""
    for tag in event.get("tags") or ():
        if isinstance(tag, list) and len(tag) >= 2 and tag[0] == name:
            return str(tag[1])
    return None


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators, UTF-8: the one encoding hashes are taken over."""
    return _CANONICAL.encode(value)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""What ``json.dumps`` with these options builds on each call (and then encodes with), built
once: the same text, without building it some 30 times per entry a rebuild replays."""


def state_hash(task_data: dict[str, Any]) -> str:
    """sha256 of the task's canonical state after a transition."""
    return hashlib.sha256(canonical_json(task_data).encode()).hexdigest()


def payment_tags(event: dict[str, Any]) -> list[list[str]]:
    """What the Lightning side of a transition proves, as tags an auditor can filter on."""
    match event["type"]:
        case "FundingRequested":
            return [
                ["payment_hash", event["payment_hash_hex"]],
                ["bolt11", event["payment_request"]],
                ["cltv_expiry", str(event["cltv_expiry_delta"])],
            ]
        case "FundingAccepted":
            return [
                ["expiry_height", str(event["accepted_htlc_expiry_height"])],
                ["amount_msat", str(event["amount_paid_msat"])],
            ]
        case "ReleaseCompleted":
            return [
                ["preimage", event["preimage_hex"]],
                ["payout_hash", event["payout_payment_hash_hex"]],
                ["payout_fee_msat", str(event["payout_fee_msat"])],
                *_payout_proof_tags(event),
            ]
        case "HoldSettledUnderLivePayout":
            return [
                ["preimage", event["preimage_hex"]],
                ["payout_hash", event["payout_payment_hash_hex"]],
            ]
        case "RefundCompleted":
            return [["invoice_state", event["invoice_state"]]]
        case "SplitDecided":
            return [
                ["worker_msat", str(event["worker_msat"])],
                ["employer_msat", str(event["employer_msat"])],
                ["fee_msat", str(event["fee_msat"])],
                ["basis", event["basis"]],
            ]
        case "SplitSharePaid":
            return [
                ["share", event["share"]],
                ["share_hash", event["payment_hash_hex"]],
                ["share_preimage", event["payment_preimage_hex"]],
                ["share_fee_msat", str(event["fee_msat"])],
            ]
        case "SplitCompleted":
            return [
                ["preimage", event["preimage_hex"]],
                ["worker_hash", event["worker_payment_hash_hex"]],
                ["employer_hash", event["employer_payment_hash_hex"]],
            ]
    if event["type"].startswith("Deposit"):
        return [["depositor", event["depositor"]], *_deposit_tags(event)]
    if event["type"] == "SwapReported":
        return _swap_tags(event)
    return _round_tags(event)


_SWAP_FACTS = ("lockup_txid", "claim_txid", "refund_txid")


def _swap_tags(event: dict[str, Any]) -> list[list[str]]:
    """A reported Boltz swap's facts: its role and id, and the txids this report gives."""
    tags = [["swap_role", event["role"]], ["swap_id", event["swap_id"]]]
    return tags + [[name, event[name]] for name in _SWAP_FACTS if event.get(name) is not None]


def _payout_proof_tags(event: dict[str, Any]) -> list[list[str]]:
    """The payout's preimage (``sha256`` of it is the hash its payee signed); entries from
    before the proof have none."""
    proof = event.get("payout_preimage_hex")
    return [] if proof is None else [["payout_preimage", proof]]


def _round_tags(event: dict[str, Any]) -> list[list[str]]:
    """A funding round's Lightning facts: ``payment_hash`` names the round that becomes the
    task's (``Renewed``); an opened or cancelled round is named apart from it."""
    match event["type"]:
        case "RenewalOpened":
            return [
                ["round", str(event["funding_round"])],
                ["renewal_hash", event["payment_hash_hex"]],
                ["bolt11", event["payment_request"]],
                ["cltv_expiry", str(event["cltv_expiry_delta"])],
            ]
        case "Renewed":
            return [
                ["round", str(event["funding_round"])],
                ["payment_hash", event["payment_hash_hex"]],
                ["expiry_height", str(event["accepted_htlc_expiry_height"])],
                ["amount_msat", str(event["amount_paid_msat"])],
                ["previous_hash", event["previous_payment_hash_hex"]],
            ]
        case "RoundCancelled":
            return [
                ["round", str(event["funding_round"])],
                ["cancelled_hash", event["payment_hash_hex"]],
            ]
    return []


def _deposit_tags(event: dict[str, Any]) -> list[list[str]]:
    """A deposit's Lightning facts; ``deposit_hash`` keeps it apart from the task's funding."""
    match event["type"]:
        case "DepositRequested":
            return [
                ["deposit_hash", event["payment_hash_hex"]],
                ["bolt11", event["payment_request"]],
                ["amount_msat", str(event["amount_msat"])],
                ["cltv_expiry", str(event["cltv_expiry_delta"])],
            ]
        case "DepositLocked":
            return [
                ["expiry_height", str(event["expiry_height"])],
                ["amount_msat", str(event["amount_paid_msat"])],
            ]
        case "DepositForfeited":
            return [["beneficiary", event["beneficiary"]]]
        case "DepositSettledUnderLivePayout":
            return [
                ["preimage", event["preimage_hex"]],
                ["payout_hash", event["payout_payment_hash_hex"]],
            ]
        case "DepositPaidOut":
            return [
                ["preimage", event["preimage_hex"]],
                ["payout_hash", event["payout_payment_hash_hex"]],
                ["payout_fee_msat", str(event["payout_fee_msat"])],
                *_payout_proof_tags(event),
            ]
        case "DepositReturned":
            return [["invoice_state", event["invoice_state"]]]
    return []


_NAMED_KEYS = ("worker_pubkey", "depositor", "direct_worker")
"""Event fields that name a key the transition is about, though the task may not hold it."""


def entry_participants(
    task: Task, event: dict[str, Any], request: dict[str, Any] | None
) -> list[str]:
    """The ``p`` tags of an entry: the employer first, then the worker once there is one, then
    every other key the transition concerns (the worker a release or revocation removes, an
    applicant, a depositor, the signer of the request), so a ``#p`` filter shows each party
    every entry about them."""
    keys = [task.employer_pubkey, task.worker_pubkey]
    keys += [event.get(name) for name in _NAMED_KEYS]
    if request is not None:
        keys.append(request.get("pubkey"))
    return list(dict.fromkeys(key for key in keys if isinstance(key, str) and key))


def entry_tags(
    *,
    listing_coordinate: str,
    op: str,
    task_id: str,
    seq: int,
    prev_id: str | None,
    gseq: int,
    gprev_id: str | None,
    state_digest: str,
    request: dict[str, Any] | None,
    participants: list[str],
    event: dict[str, Any],
) -> list[list[str]]:
    tags = [
        ["a", listing_coordinate],
        ["task", task_id],
        ["op", op],
        ["seq", str(seq)],
        ["gseq", str(gseq)],
        ["o", str(gseq)],
        ["state", state_digest],
    ]
    if prev_id is not None:
        tags.append(["prev", prev_id])
    if gprev_id is not None:
        tags.append(["gprev", gprev_id])
    if request is not None:
        tags.append(["e", str(request["id"]), "", str(request["pubkey"])])
    tags.extend(["p", pubkey] for pubkey in participants)
    tags.extend(payment_tags(event))
    return tags


def entry_content(event: dict[str, Any], request: dict[str, Any] | None) -> str:
    """The transition and the participant's signed request, whole, so the entry stands alone."""
    return canonical_json({"v": LOG_FORMAT_VERSION, "event": event, "request": request})


LISTING_OPEN = "open"
"""The listing's indexed ``s`` tag while anyone may claim the task or apply for it."""
LISTING_CLOSED = "closed"
"""The listing's ``s`` tag otherwise (not funded yet, taken, refunding, over, or direct)."""


def is_claimable(task: dict[str, Any]) -> bool:
    """Whether the board shows the task as open: funded, no worker, no refund ordered, and a
    claim mode that lets a stranger claim (``open``) or apply (``apply``)."""
    return (
        task["state"] == "FUNDED"
        and task.get("worker_pubkey") is None
        and task.get("refund_ordered_reason") is None
        and task.get("claim_mode", "open") in ("open", "apply")
    )


def listing_event(task: dict[str, Any], operator_pubkey: str) -> tuple[str, list[list[str]]]:
    """NIP-99 style listing (kind 30402, ``d`` = task id) with the task's current state."""
    tags = [
        ["d", task["task_id"]],
        ["title", task["title"]],
        ["summary", task["description"][:280]],
        ["price", str(task["amount_msat"] // 1000), "SAT"],
        ["status", task["state"].lower()],
        ["t", "taskhold"],
        ["p", task["employer_pubkey"]],
        ["deadline", str(task["deadline_at"])],
        ["s", LISTING_OPEN if is_claimable(task) else LISTING_CLOSED],
    ]
    if task.get("visibility") == "private":
        tags += [["visibility", "private"], ["details_hash", task["details_hash"]]]
    content = task["description"]
    return content, tags
