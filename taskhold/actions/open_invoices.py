"""The cap on unpaid invoices per key, checked by ``fund`` and ``deposit`` before the node call.

Every unpaid invoice costs the node an open invoice and the engine a watch, yet asking for one
is free. A key with ``max_open_invoices_per_key`` unpaid invoices must pay or cancel one first.
Two concurrent requests of one key on different tasks may both pass the count; the cap is
exceeded by at most the requests in flight, which the rate limits bound.
"""

from __future__ import annotations

from taskhold.errors import Refusal, RefusalCode
from taskhold.store import Tx

__all__ = ["TooManyOpenInvoices", "check_open_invoices"]


class TooManyOpenInvoices(Refusal):
    status = 429
    code = RefusalCode.TOO_MANY_OPEN_INVOICES


async def check_open_invoices(tx: Tx, pubkey: str, task_id: str, limit: int) -> None:
    """Refuse a new invoice for ``pubkey`` once it has ``limit`` unpaid ones elsewhere."""
    open_count = await tx.open_invoices_of(pubkey, besides=task_id)
    if open_count >= limit:
        raise TooManyOpenInvoices(
            f"this key already has {open_count} unpaid invoices open (the limit is {limit}); "
            "pay or cancel one of them first"
        )
