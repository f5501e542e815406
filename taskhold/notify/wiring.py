"""Building the notification parts once, for the composition root (``taskhold.services``)."""

from __future__ import annotations

import time

from taskhold.keys.signer import LocalSigner
from taskhold.settings import Settings
from taskhold.store import Store
from taskhold.tasks.next_actions import PAYOUT_ON_CHAIN

from .delivery import WebhookDeliverer
from .notices import Notifier

__all__ = ["notifiers", "notify_kinds", "webhook_deliverer", "withheld_actions"]


def notify_kinds(settings: Settings) -> frozenset[int]:
    """The kinds notifications need the operator key to sign: gift wraps (their seals) when
    notifications are on, and webhook deliveries."""
    kinds = {settings.kind_webhook_delivery}
    if settings.notifications_enabled:
        kinds.add(settings.kind_gift_wrap)
    return frozenset(kinds)


def notifiers(settings: Settings, signer: LocalSigner) -> list[Notifier]:
    """The ``LogWriter`` hook that sends NIP-17 notifications, unless they are turned off."""
    if not settings.notifications_enabled:
        return []
    return [
        Notifier(
            signer,
            arbiters=frozenset(settings.arbiters),
            clock=time.time,
            withheld=withheld_actions(settings),
        )
    ]


def withheld_actions(settings: Settings) -> frozenset[str]:
    """Waits this operator does not tell anyone of: the on-chain payout is offered only where
    a swap API is (``swap_api_url``), or the worker would be told of a fallback that is not
    there."""
    return frozenset() if settings.swap_api_url else frozenset({PAYOUT_ON_CHAIN})


def webhook_deliverer(settings: Settings, store: Store, signer: LocalSigner) -> WebhookDeliverer:
    """The worker that POSTs the log to the webhooks ``taskhold webhooks add`` registered."""
    return WebhookDeliverer(
        store,
        signer,
        kind=settings.kind_webhook_delivery,
        timeout_s=settings.webhook_timeout_s,
        interval_s=settings.webhook_interval_s,
        max_backoff_s=settings.webhook_max_backoff_s,
    )
