"""Webhook deliveries: one public log entry in an operator-signed Nostr event, and its check.

The body of each POST is a NIP-01 event signed by the operator key (kind
``kind_webhook_delivery``, default 3915), never published to relays::

    content: the log entry, JSON (itself an operator-signed kind-3910 event)
    tags:    ["u", <the webhook URL>] ["delivery", <entry id>] ["e", <entry id>] ["gseq", g]

A receiver verifies it as any Nostr event (id and BIP-340 signature over the body as sent),
checks that its author is the operator's pubkey and that ``u`` is its own URL (a delivery
captured elsewhere cannot be replayed to it), and dedupes on ``delivery``, which stays the same
on every retry. :func:`verify_delivery` does all that.
"""

from __future__ import annotations

import json
from typing import Any

from .entries import tag_value
from .kinds import KIND_WEBHOOK_DELIVERY
from .verify import verify_event

__all__ = ["delivery_content", "delivery_tags", "verify_delivery"]


def delivery_tags(url: str, entry: dict[str, Any], gseq: int) -> list[list[str]]:
    entry_id = str(entry["id"])
    return [["u", url], ["delivery", entry_id], ["e", entry_id], ["gseq", str(gseq)]]


def delivery_content(entry: dict[str, Any]) -> str:
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


def verify_delivery(
    body: bytes | str,
    *,
    operator_pubkey: str,
    kind: int = KIND_WEBHOOK_DELIVERY,
    url: str | None = None,
    now: int | None = None,
    max_age_s: int | None = None,
) -> dict[str, Any]:
    """The log entry a webhook delivery carries, once the delivery checks out.

    Raises ValueError if the body is not an event signed by ``operator_pubkey`` of ``kind``,
    if ``url`` is given and is not the one the delivery was made for, if ``max_age_s`` is given
    and the delivery is older (by ``now``, unix seconds), or if the entry inside does not verify
    or is not the one the ``delivery`` tag names.
    """
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("the delivery is not JSON") from None
    if not verify_event(event):
        raise ValueError("the delivery's id or signature does not verify")
    if event["pubkey"] != operator_pubkey:
        raise ValueError("the delivery is not signed by the operator's key")
    if event.get("kind") != kind:
        raise ValueError(f"the delivery is of kind {event.get('kind')}, not {kind}")
    if url is not None and tag_value(event, "u") != url:
        raise ValueError("the delivery was made for another URL")
    if max_age_s is not None and now is not None and now - int(event["created_at"]) > max_age_s:
        raise ValueError("the delivery is too old")
    try:
        entry = json.loads(event["content"])
    except (TypeError, json.JSONDecodeError):
        raise ValueError("the delivery carries no log entry") from None
    if not verify_event(entry) or tag_value(event, "delivery") != entry.get("id"):
        raise ValueError("the log entry inside the delivery does not verify")
    result: dict[str, Any] = entry
    return result
