"""The operator's terms: ``GET /v1/info`` and the same document as a signed Nostr event.

The info event (kind ``kind_checkpoint`` = 30078, ``d`` = ``taskhold-info``) is published
through the outbox when the server starts, signed by the operator key. Anyone can then hold the
operator to the fees, payout bounds, limits and reputation policies (proof of work, deposits,
review windows) it announced, and see when they changed. It also names the relays the log goes
to and every kind taskhold publishes, which is what a subscriber needs (``docs/subscribing.md``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from taskhold.escrow.admission import ADMISSION_RULE
from taskhold.escrow.admission import capacity_now as read_capacity
from taskhold.escrow.sizing import hold_window_blocks
from taskhold.lightning.base import LightningError
from taskhold.moderation import MODERATION_D, MODERATION_RULE
from taskhold.nostr.entries import canonical_json
from taskhold.payments.rules import payout_terms
from taskhold.publiclog.writer import sign_and_queue_once

from .jurisdiction import jurisdiction_terms
from .routes_reputation import reputation_info

if TYPE_CHECKING:
    from taskhold.services import Services
    from taskhold.settings import Settings

__all__ = [
    "INFO_D",
    "LIVE_MEMBERS",
    "REJECTION_DEFAULTS",
    "capacity_now",
    "capacity_terms",
    "info_document",
    "publish_info",
    "published_kinds",
    "renewal_terms",
]

INFO_D = "taskhold-info"

LIVE_MEMBERS = ("capacity_now",)
"""Members ``GET /v1/info`` adds to the signed document: figures as they stand, not terms."""

DISPUTE_DEFAULT = (
    "a dispute no arbiter resolved within dispute_window_s (or before the guardian acts) releases"
    " a submission that passed the automatic checks and refunds a task without one; without"
    " arbiters the employer may not dispute, and a worker never disputes a pending review"
)
"""How disputes end, stated with the operator's terms (the rules: ``taskhold.tasks.machine``)."""

REJECTION_DEFAULTS = {
    "release_unless_ruled": (
        "a rejection takes the reward back only through an arbiter's ruling: a rejected"
        " submission (it passed the automatic checks) that no arbiter ruled against before the"
        " deadline, or before the dispute window after the rejection ends, is released to the"
        " worker; until the deadline the worker may resubmit, and where arbiters are"
        " configured either side may dispute the rejection"
    ),
    "arbiter": (
        "a worker who objects to a rejection disputes it within dispute_window_s and an arbiter"
        " rules; a rejection not disputed in time stands and the task is refunded; should this"
        " taskhold ever run without arbiters, a rejected submission is released instead"
    ),
}
"""What a rejection nobody disputed ends in, by ``rejection_policy`` (the rules:
``taskhold.tasks.machine.REJECTION_POLICIES``). Agreements signed by both parties may end a
claimed task at any time before a payout: 0 to the worker cancels at once, the whole payout
releases."""


RENEWAL_RULE = (
    "a task longer than one hold window is renewed: when its hold has renewal_lead_blocks"
    " left, a hold invoice for the same amount opens the next funding round; once its HTLC is"
    " held the previous hold is cancelled. Unpaid before the guardian acts, the deadline"
    " policy applies to the current hold and the renewal is cancelled. A renewal opens during"
    " a dispute too, and the arbiter's ruling is carried out on whichever round is current;"
    " if the employer does not renew during a dispute and no arbiter rules, the dispute's"
    " default applies to the current hold: a submission that passed the automatic checks is"
    " released while its payout still fits in the hold (hold_reserve_blocks before expiry),"
    " anything else is refunded at the guard margin (guard_blocks before expiry)"
)


def renewal_terms(settings: Settings) -> dict[str, Any]:
    """The largest hold window of the escrow backend in use (its node cancels a held HTLC
    ``hold_expiry_delta`` blocks before the CLTV cap: lnd's ``holdexpirydelta``, LDK's fail-back
    buffer, as read from the node at start) and how a task longer than one is renewed."""
    blocks = hold_window_blocks(settings)
    window = {"blocks": blocks, "seconds": blocks * settings.block_time_s}
    return {
        "hold_window": {settings.lightning: window},
        "node_limits": {
            "backend": settings.lightning,
            "auto_cancel_blocks": settings.hold_expiry_delta,
            "min_cltv_expiry_delta": settings.min_cltv_expiry_delta,
            "max_cltv_expiry_delta": settings.max_cltv_expiry_delta,
        },
        "renewal_lead_blocks": settings.renewal_lead_blocks,
        "renewal_lead_s": settings.renewal_lead_blocks * settings.block_time_s,
        "max_task_duration_s": settings.max_task_duration_s,
        "guard_blocks": settings.guard_blocks,
        "hold_reserve_blocks": settings.hold_reserve_blocks,
        "rule": RENEWAL_RULE if settings.max_task_duration_s else "renewal is off",
    }


def capacity_terms(settings: Settings) -> dict[str, Any]:
    """Admission control as promised: the share one key may hold is the public griefing bound."""
    return {
        "max_key_share": settings.max_key_share,
        "retry_after_s": settings.capacity_retry_after_s,
        "rule": ADMISSION_RULE,
    }


async def capacity_now(services: Services) -> dict[str, Any] | None:
    """The escrow node's figures beside what open tasks claim; None while the node is down."""
    try:
        async with services.store.transaction() as tx:
            capacity = await read_capacity(services.engine.ctx, tx)
    except LightningError:
        return None
    return capacity.figures(services.settings)


def info_document(services: Services) -> dict[str, Any]:
    """How this taskhold is configured, as its clients and auditors need to know it."""
    settings = services.settings
    return {
        "operator_pubkey": services.signer.get_public_key(),
        "lightning": settings.lightning,
        "network": services.lightning.network,
        "fee_ppm": settings.fee_ppm,
        "fee_base_msat": settings.fee_base_msat,
        "min_amount_msat": settings.min_amount_msat,
        "max_amount_msat": settings.max_amount_msat,
        "max_cltv_expiry_delta": settings.max_cltv_expiry_delta,
        "renewal": renewal_terms(settings),
        "payouts": payout_terms(settings),
        "request_window_s": settings.request_window_s,
        "default_review_window_s": settings.default_review_window_s,
        "default_dispute_window_s": settings.default_dispute_window_s,
        "deadline_policy": settings.deadline_policy,
        "dispute_default": DISPUTE_DEFAULT,
        "rejection_policy": settings.rejection_policy,
        "rejection_default": REJECTION_DEFAULTS[settings.rejection_policy],
        "arbiters": settings.arbiters,
        "capacity": capacity_terms(settings),
        "limits": {
            "deposit_max_open_per_task": settings.deposit_max_open_per_task,
            "deposit_max_per_task": settings.deposit_max_per_task,
            "refused_proofs_max_per_task": settings.refused_proofs_max_per_task,
            "refused_proof_max_bytes": settings.refused_proof_max_bytes,
            "applications_max_per_task": settings.applications_max_per_task,
            "milestones_max": settings.milestones_max,
        },
        "default_claim_timeout_s": settings.default_claim_timeout_s,
        "request_kind": services.writes.request_kind,
        "proof_kind": services.writes.proof_kind,
        "reputation": reputation_info(services),
        "relays": list(settings.relays),
        "swap_api": settings.swap_api_url,
        "jurisdiction": jurisdiction_terms(settings),
        "moderation": {
            "kind": settings.kind_checkpoint,
            "d": MODERATION_D,
            "rule": MODERATION_RULE,
        },
        "kinds": published_kinds(settings),
        "subscribing": SUBSCRIBING_DOC,
    }


SUBSCRIBING_DOC = "docs/subscribing.md"
"""Where the relay filters for a task, a participant, the board and the whole log are given."""


def published_kinds(settings: Settings) -> dict[str, int]:
    """Every event kind this taskhold publishes or embeds, by its setting's name without
    ``kind_``: read from the ``kind_*`` settings, so a kind added there is listed here too."""
    return {
        name.removeprefix("kind_"): getattr(settings, name)
        for name in sorted(type(settings).model_fields)
        if name.startswith("kind_")
    }


async def publish_info(services: Services, *, now: float | None = None) -> dict[str, Any]:
    """Sign the info document and queue it in the outbox; returns the signed event.

    A restart within the second of the last start signs the same event (same id): it is queued
    already, and queueing it again would fail the startup."""
    created_at = int(time.time() if now is None else now)
    content = canonical_json(info_document(services))
    async with services.store.transaction() as tx:
        return await sign_and_queue_once(
            tx.session,
            services.signer,
            services.settings.kind_checkpoint,
            content,
            [["d", INFO_D]],
            created_at,
            queued_at=created_at,
        )
