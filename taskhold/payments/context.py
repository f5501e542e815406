"""What a payment step needs from its caller: the node, the store, the key store, the settings,
the operator's journal and keys (a sealed payout invoice opens with them), and where payouts
waiting for outbound liquidity are counted. The escrow
engine's context is one; payments never import it."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

import structlog

from taskhold.journal.chain import AuditLog
from taskhold.keys import KeyStore
from taskhold.lightning.base import LightningBackend
from taskhold.nostr import NostrKeys
from taskhold.settings import Settings
from taskhold.store import Store

from .liquidity import LiquidityWatch

__all__ = ["PaymentContext", "log"]

log = structlog.get_logger("taskhold.payments")


class PaymentContext(Protocol):
    store: Store
    lightning: LightningBackend
    keys: KeyStore
    settings: Settings
    audit: AuditLog
    operator_keys: NostrKeys | None
    previous_operator_keys: tuple[NostrKeys, ...]
    liquidity: LiquidityWatch
    payout_failures: Counter[str]
    """Failed payout attempts since start, by ``PayoutKind`` value (the metrics count them)."""

    def now(self) -> int: ...
