"""The operator's webhooks: URLs registered with ``taskhold webhooks add``, in the database.

Only these URLs are ever called, exactly as registered: nothing a participant sends can name a
URL, and redirects are not followed (``delivery``). A URL must be http(s) with a host and
without credentials (they would sit in the database and in error messages).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select

from taskhold.store import Store
from taskhold.store.models import LogEntryRow, WebhookRow

__all__ = ["add_webhook", "check_webhook_url", "list_webhooks", "remove_webhook", "webhook_view"]

MAX_URL_LENGTH = 2048


def check_webhook_url(url: str) -> str:
    """``url`` if taskhold may call it; ValueError with the reason otherwise."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"a webhook URL may be at most {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a webhook URL must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a webhook URL must not carry credentials")
    if parts.fragment:
        raise ValueError("a webhook URL must not have a #fragment")
    return url


def webhook_view(row: WebhookRow) -> dict[str, Any]:
    return {
        "webhook_id": row.webhook_id,
        "url": row.url,
        "enabled": row.enabled,
        "delivered_gseq": row.delivered_gseq,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "last_error": row.last_error,
        "delivered_at": row.delivered_at,
        "created_at": row.created_at,
    }


async def add_webhook(store: Store, url: str, *, now: int, from_start: bool) -> dict[str, Any]:
    """Register ``url``; it gets every entry from the next one on (``from_start``: from gseq 0).
    Registering a URL again changes nothing and returns it as it is."""
    url = check_webhook_url(url)
    async with store.transaction() as tx:
        existing = (
            await tx.session.execute(select(WebhookRow).where(WebhookRow.url == url))
        ).scalar_one_or_none()
        if existing is not None:
            return webhook_view(existing)
        head = (await tx.session.execute(select(func.max(LogEntryRow.gseq)))).scalar_one()
        row = WebhookRow(
            url=url,
            enabled=True,
            delivered_gseq=-1 if from_start or head is None else int(head),
            attempts=0,
            next_attempt_at=0,
            last_error=None,
            created_at=now,
            delivered_at=None,
        )
        tx.session.add(row)
        await tx.session.flush()
        return webhook_view(row)


async def list_webhooks(store: Store) -> list[dict[str, Any]]:
    async with store.transaction() as tx:
        rows = await tx.session.execute(select(WebhookRow).order_by(WebhookRow.webhook_id))
        return [webhook_view(row) for row in rows.scalars()]


async def remove_webhook(store: Store, webhook_id: int) -> bool:
    """Stop calling the webhook; False if there was none with that id."""
    async with store.transaction() as tx:
        result = await tx.session.execute(
            delete(WebhookRow).where(WebhookRow.webhook_id == webhook_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
