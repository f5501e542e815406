"""Building the reputation parts once, for the composition root (``taskhold.services``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from taskhold.keys.signer import EventSigner, LocalSigner, load_or_create_key_file
from taskhold.settings import Settings
from taskhold.store import Store

from .gate import ReputationWrites
from .metrics import IndexerKinds
from .policy import ReputationPolicy
from .publish import AssertionPublisher
from .receipts import ReceiptIssuer
from .reviews import ReviewDesk
from .service import ReputationService

__all__ = ["ReputationParts", "build_reputation", "operator_kinds", "receipt_issuer"]


@dataclass
class ReputationParts:
    service: ReputationService
    writes: ReputationWrites
    policy: ReputationPolicy
    reputation_pubkey: str


def operator_kinds(settings: Settings) -> frozenset[int]:
    """The kinds reputation needs the operator key to sign: receipts and review records."""
    return frozenset({settings.kind_receipt, settings.kind_review_record})


def receipt_issuer(
    settings: Settings, operator: EventSigner, clock: Callable[[], float] = time.time
) -> ReceiptIssuer:
    """The ``LogWriter`` hook that signs review receipts with each task's final entry."""
    return ReceiptIssuer(operator, kind=settings.kind_receipt, clock=clock)


def build_reputation(
    settings: Settings,
    store: Store,
    operator: EventSigner,
    *,
    clock: Callable[[], float] = time.time,
) -> ReputationParts:
    """The indexer service, its publisher on the reputation key, the policy and the review desk.

    The reputation key is its own (``keys/reputation.key``, created on first use) and may sign
    kind 30382 only, so a leak of it can forge scores but never a log entry.
    """
    reputation_keys = load_or_create_key_file(settings.data_dir / "keys" / "reputation.key")
    signer = LocalSigner(reputation_keys, allowed_kinds=frozenset({settings.kind_reputation}))
    operator_pubkey = operator.get_public_key()
    kinds = IndexerKinds(
        entry=settings.kind_log_entry,
        receipt=settings.kind_receipt,
        review_record=settings.kind_review_record,
    )
    publisher = AssertionPublisher(
        signer, kind=settings.kind_reputation, operator_pubkey=operator_pubkey, clock=clock
    )
    service = ReputationService(
        store,
        publisher,
        operator_pubkey=operator_pubkey,
        kinds=kinds,
        interval_s=settings.reputation_interval_s,
        max_staleness_s=settings.reputation_max_staleness_s,
    )
    policy = ReputationPolicy.from_settings(settings)
    desk = ReviewDesk(
        operator,
        receipt_kind=settings.kind_receipt,
        record_kind=settings.kind_review_record,
        clock=clock,
    )
    return ReputationParts(
        service=service,
        writes=ReputationWrites(service, policy, desk),
        policy=policy,
        reputation_pubkey=signer.get_public_key(),
    )
