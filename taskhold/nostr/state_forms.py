"""The forms a log entry's ``state`` tag may hash: today's task state, or the state as a writer
from before some of its fields existed saw it.

The writer hashes the whole task (``entries.state_hash``), so each field the task gains changes
the hash of every later state; entries already signed keep the hash of the state without it.
A rebuild replays those entries with today's reducer, which fills the new fields in (a dispute's
``dispute_opened_at``, the count of refused proofs), so it checks the entry's tag against the
replayed state with the later fields left out as well (claim modes: a task from before them
folds to an open task without a claim timeout). Only whole groups of fields that came
with one change are left out, in every combination (the changes were made side by side). The
writer is unchanged, and the independent auditor does not recompute state hashes.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from .entries import state_hash

__all__ = ["LATER_FIELDS", "matches_state"]

LATER_FIELDS: tuple[tuple[frozenset[str], frozenset[str]], ...] = (
    (frozenset({"proofs_refused", "dispute_opened_at"}), frozenset()),
    (frozenset({"hold_settled_at"}), frozenset({"hold_settled_at"})),
    (  # the fair deal: claim modes, splits, agreements and the rejection policy
        frozenset(
            {
                "claim_mode",
                "direct_worker",
                "claim_timeout_s",
                "applicants",
                "barred_workers",
                "split_worker_msat",
                "split_employer_msat",
                "split_basis",
                "refund_request",
                "refund_failures",
                "last_refund_failure",
                "refund_payment_hash_hex",
                "refund_fee_msat",
                "rejection_policy",
                "agreement_proposed_by",
                "agreement_worker_msat",
                "agreement_note",
                "agreement_proposed_at",
                "agreed_worker_msat",
            }
        ),
        frozenset(),
    ),
    (  # milestone series
        frozenset({"series_id", "milestone_index", "milestone_count", "funding_mode"}),
        frozenset(),
    ),
    (  # funding rounds: a hold renewed past the CLTV cap
        frozenset(
            {
                "renewal_needed",
                "renewal_round",
                "last_renewal_round",
                "renewal_payment_hash_hex",
                "renewal_payment_request",
                "renewal_cltv_expiry_delta",
                "renewal_expires_at",
                "retiring_round",
                "retiring_payment_hash_hex",
            }
        ),
        frozenset(),
    ),
    (  # private tasks: sealed details and their commitment
        frozenset({"visibility", "details_hash", "details_sealed", "proof_hash", "proof_sealed"}),
        frozenset(),
    ),
    (frozenset({"swaps"}), frozenset()),  # swap reports: the Boltz swaps of issue #14
)
"""Fields added to a task (and to each of its deposits) after entries were written, by change."""


def matches_state(task_data: dict[str, Any], digest: str | None) -> bool:
    """Whether ``digest`` hashes ``task_data`` as the writer of today or of an earlier log
    format did."""
    if digest is None:
        return False
    if state_hash(task_data) == digest:
        return True
    return any(state_hash(_without(task_data, form)) == digest for form in _earlier_forms())


def _earlier_forms() -> list[tuple[frozenset[str], frozenset[str]]]:
    """Each non-empty combination of ``LATER_FIELDS``, merged: what one earlier writer lacked."""
    forms = []
    for size in range(1, len(LATER_FIELDS) + 1):
        for groups in combinations(LATER_FIELDS, size):
            task_fields = frozenset().union(*(g[0] for g in groups))
            deposit_fields = frozenset().union(*(g[1] for g in groups))
            forms.append((task_fields, deposit_fields))
    return forms


def _without(
    task_data: dict[str, Any], form: tuple[frozenset[str], frozenset[str]]
) -> dict[str, Any]:
    task_fields, deposit_fields = form
    data = {name: value for name, value in task_data.items() if name not in task_fields}
    data["deposits"] = [
        {name: value for name, value in deposit.items() if name not in deposit_fields}
        for deposit in task_data.get("deposits", ())
    ]
    return data
