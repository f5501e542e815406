"""How tasks look on the wire. Nothing secret is in a Task: the preimage field is filled only by
the settlement, when it becomes public."""

from __future__ import annotations

from typing import Any

from taskhold.payments.sealed import shown
from taskhold.store.models import TransitionRow
from taskhold.tasks import Task
from taskhold.tasks.milestones import series_view
from taskhold.tasks.model import deposit_view, swap_view
from taskhold.tasks.next_actions import payout_on_chain_due

__all__ = ["task_view", "transition_view"]


def task_view(
    task: Task, log_head: str | None = None, *, swap_api: str | None = None
) -> dict[str, Any]:
    """The task on the wire; ``swap_api`` is the Boltz API the operator offers for an on-chain
    payout (``swap_api_url``), None where it offers none."""
    funding = None
    if task.payment_request is not None:
        funding = {
            "payment_request": task.payment_request,
            "payment_hash": task.payment_hash_hex,
            "amount_msat": task.amount_msat,
            "cltv_expiry_delta": task.cltv_expiry_delta,
            "expires_at": task.invoice_expires_at,
            "funding_round": task.funding_round,
            "accepted_htlc_expiry_height": task.accepted_htlc_expiry_height,
        }
    return {
        "task_id": task.task_id,
        "version": task.version,
        "log_head": log_head,
        "state": task.state.value,
        "title": task.title,
        "description": task.description,
        "acceptance": task.acceptance,
        "amount_msat": task.amount_msat,
        "fee_msat": task.fee_msat,
        "payout_msat": task.payout_msat,
        "deadline_at": task.deadline_at,
        "review_window_s": task.review_window_s,
        "dispute_window_s": task.dispute_window_s,
        "deadline_policy": task.deadline_policy,
        "employer_pubkey": task.employer_pubkey,
        "worker_pubkey": task.worker_pubkey,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "funding": funding,
        "proof": task.proof,
        "proof_event_id": task.proof_event_id,
        "payout_invoice": shown(task.payout_request),
        "submitted_at": task.submitted_at,
        "verified_at": task.verified_at,
        "rejection_reason": task.rejection_reason,
        "proofs_refused": task.proofs_refused,
        "dispute": (
            None
            if task.dispute_opened_by is None
            else {
                "opened_by": task.dispute_opened_by,
                "opened_at": task.dispute_opened_at,
                "window_ends_at": (
                    None
                    if task.dispute_opened_at is None
                    else task.dispute_opened_at + task.dispute_window_s
                ),
                "reason": task.dispute_reason,
                "resolution": task.dispute_resolution,
            }
        ),
        "refund_reason": task.refund_ordered_reason,
        "payout_failures": task.payout_failures,
        "last_payout_failure": task.last_payout_failure,
        "payout_payment_hash": task.payout_payment_hash_hex,
        "payout_fee_msat": task.payout_fee_msat,
        "preimage": task.preimage_hex,
        "hold_settled_at": task.hold_settled_at,
        "closed_at": task.closed_at,
        "deposit_pledged": task.deposit_pledged,
        "deposits": [
            {**view, "payout_invoice": shown(view["payout_invoice"])}
            for view in map(deposit_view, task.deposits)
        ],
        "claim_mode": task.claim_mode,
        "direct_worker": task.direct_worker,
        "claim_timeout_s": task.claim_timeout_s,
        "claimed_at": task.claimed_at,
        "applicants_count": len(task.applicants),
        "applicants": list(task.applicants),
        "barred_workers": list(task.barred_workers),
        "split": _split_view(task),
        "rejection_policy": task.rejection_policy,
        "agreement": _agreement_view(task),
        "agreed_worker_msat": task.agreed_worker_msat,
        "series": series_view(task),
        "renewal_needed": task.renewal_needed,
        "renewal": _renewal_view(task),
        "visibility": task.visibility,
        "details_hash": task.details_hash,
        "details_sealed": task.details_sealed,
        "proof_hash": task.proof_hash,
        "proof_sealed": task.proof_sealed,
        "swaps": [swap_view(swap) for swap in task.swaps],
        "payout_fallback": _payout_fallback(task, swap_api),
    }


def _payout_fallback(task: Task, swap_api: str | None) -> dict[str, Any] | None:
    """The on-chain payout offered while the Lightning payout cannot reach the worker (the
    ``payout_on_chain`` wait): public like the rest of the task, it carries no secret."""
    if swap_api is None or not payout_on_chain_due(task):
        return None
    return {
        "on_chain": True,
        "swap_api": swap_api,
        "payout_msat": task.payout_msat,
        "reason": task.last_payout_failure,
    }


def _renewal_view(task: Task) -> dict[str, Any] | None:
    """The open renewal: the next round's hold invoice the employer is asked to pay."""
    if task.renewal_payment_request is None:
        return None
    return {
        "funding_round": task.renewal_round,
        "payment_request": task.renewal_payment_request,
        "payment_hash": task.renewal_payment_hash_hex,
        "amount_msat": task.amount_msat,
        "cltv_expiry_delta": task.renewal_cltv_expiry_delta,
        "expires_at": task.renewal_expires_at,
    }


def _split_view(task: Task) -> dict[str, Any] | None:
    """A split's shares, its employer's invoice and what is paid (hashes only)."""
    if task.split_worker_msat is None:
        return None
    return {
        "basis": task.split_basis,
        "worker_msat": task.split_worker_msat,
        "employer_msat": task.split_employer_msat,
        "refund_invoice": shown(task.refund_request),
        "refund_failures": task.refund_failures,
        "last_refund_failure": task.last_refund_failure,
        "refund_payment_hash": task.refund_payment_hash_hex,
        "refund_fee_msat": task.refund_fee_msat,
    }


def _agreement_view(task: Task) -> dict[str, Any] | None:
    if task.agreement_proposed_by is None or task.agreement_worker_msat is None:
        return None
    return {
        "proposed_by": task.agreement_proposed_by,
        "worker_msat": task.agreement_worker_msat,
        "note": task.agreement_note or "",
        "proposed_at": task.agreement_proposed_at,
    }


def transition_view(row: TransitionRow) -> dict[str, Any]:
    return {
        "version": row.version,
        "event_type": row.event_type,
        "actor": row.actor,
        "at": row.at,
        "state_after": row.state_after,
        "event": row.event,
        "request": row.request,
    }
