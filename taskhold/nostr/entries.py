"""The shape of taskhold's public log: entry tags, content and the open-task listing.

Pure functions over plain data, shared by the writer (inside the DB transaction) and the
rebuild. The independent auditor (``taskhold.audit``) re-implements the checks it needs from the
format described in ``docs/public-log.md`` instead of importing this module.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = [
    "LOG_FORMAT_VERSION",
    "canonical_json",
    "entry_content",
    "entry_tags",
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
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
    return _round_tags(event)


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
            ]
        case "DepositReturned":
            return [["invoice_state", event["invoice_state"]]]
    return []


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
    ]
    if task.get("visibility") == "private":
        tags += [["visibility", "private"], ["details_hash", task["details_hash"]]]
    content = task["description"]
    return content, tags
