"""Following every invoice of an lnd node over a constant number of connections.

lnd's all-invoices stream (``GET /v1/invoices/subscribe``, ``SubscribeInvoices``) reports only
new (OPEN) and SETTLED invoices: its registry skips ACCEPTED and CANCELED "for backwards
compatibility" (``invoiceEventLoop`` in lnd's ``invoices/invoiceregistry.go``). A hold invoice
being paid is exactly an ACCEPTED event, and one expiring unpaid a CANCELED one. So
:func:`follow_invoices` pairs the stream with a poll of the pending invoices
(``GET /v1/invoices?pending_only=true``, paged): a pending invoice that changed is reported,
and one that left the pending set is looked up once for its final state. That is two
connections however many invoices are open, where one stream per invoice pinned one
connection each.

Each poll starts at the lowest add index still pending (or where the last one started): an
invoice that is pending now was either pending then or added since, and add indexes only grow.

The poll alone would report a payment up to ``poll_seconds`` late. So the newest OPEN invoices
(at most ``single_streams``, on the subscriptions' own connections) are also followed one by
one (``GET /v2/invoices/subscribe/{hash}``, which does report ACCEPTED): a hold invoice paid
soon after it was issued, the usual case, is reported as lnd accepts the HTLC. Older ones fall
back to the poll, so the connections stay bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncGenerator

from taskhold.lightning.base import (
    AcceptedHtlc,
    InvoiceNotFound,
    InvoiceState,
    InvoiceStatus,
    LightningError,
)
from taskhold.lightning.lnd_rest import JSONObject, LndRest, b64url, from_b64, json_int

__all__ = ["follow_invoices", "invoice_status_from_lnd"]

PAGE_SIZE = 500
FINISHING_SECONDS = 2.0
"""How long closing the follower waits for single streams still closing by themselves."""
_PENDING_STATES = frozenset({InvoiceState.OPEN, InvoiceState.ACCEPTED})


def invoice_status_from_lnd(invoice: JSONObject) -> InvoiceStatus:
    """An ``lnrpc.Invoice`` as an :class:`InvoiceStatus`.

    Only HTLCs that still hold or have paid (``ACCEPTED``/``SETTLED``) are listed, and
    ``amount_paid_msat`` is their sum: a cancelled HTLC moved no money and has no deadline.
    """
    htlcs = tuple(
        AcceptedHtlc(
            amount_msat=json_int(htlc.get("amt_msat")),
            accept_height=json_int(htlc.get("accept_height")),
            expiry_height=json_int(htlc.get("expiry_height")),
        )
        for htlc in invoice.get("htlcs") or ()
        if htlc.get("state") in ("ACCEPTED", "SETTLED")
    )
    return InvoiceStatus(
        payment_hash=from_b64(invoice["r_hash"]),
        state=InvoiceState(invoice["state"]),
        amount_msat=json_int(invoice.get("value_msat")),
        amount_paid_msat=sum(h.amount_msat for h in htlcs),
        htlcs=htlcs,
        payment_request=invoice.get("payment_request") or "",
    )


async def follow_invoices(
    rest: LndRest, *, poll_seconds: float, single_streams: int = 0
) -> AsyncGenerator[InvoiceStatus, None]:
    """Every pending invoice once, then each invoice whose state changes (the backend's
    ``subscribe_invoices``). A failed poll ends it with :class:`NodeUnreachable`."""
    stream: asyncio.Queue[JSONObject] = asyncio.Queue()
    reader = asyncio.create_task(_read_stream(rest, stream), name="lnd-invoice-stream")
    singles = _SingleStreams(rest, stream, single_streams)
    try:
        known, offset = await _pending(rest, 0)
        for status in known.values():
            singles.follow(status)
            yield status
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + poll_seconds
        while True:
            remaining = next_poll - loop.time()
            if remaining > 0:
                try:
                    async with asyncio.timeout(remaining):
                        invoice = await stream.get()
                except TimeoutError:
                    continue
                status = invoice_status_from_lnd(invoice)
                singles.follow(status)
                if known.get(status.payment_hash) != status:
                    _remember(known, status)
                    yield status
                continue
            listed, offset = await _pending(rest, offset)
            for status in listed.values():
                if known.get(status.payment_hash) != status:
                    singles.follow(status)
                    yield status
            for payment_hash in known.keys() - listed.keys():
                try:
                    final = await _lookup(rest, payment_hash)
                except InvoiceNotFound:
                    continue
                yield final
            known = listed
            next_poll = loop.time() + poll_seconds
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await singles.close()


class _SingleStreams:
    """Single-invoice streams of the newest OPEN invoices, at most ``limit`` at once: a new
    OPEN invoice takes the oldest one's place; an invoice that left OPEN is dropped."""

    def __init__(self, rest: LndRest, into: asyncio.Queue[JSONObject], limit: int) -> None:
        self.rest, self.into, self.limit = rest, into, limit
        self.readers: OrderedDict[bytes, asyncio.Task[None]] = OrderedDict()
        self.finishing: set[asyncio.Task[None]] = set()
        """Readers of invoices that left OPEN, closing their streams by themselves."""

    def follow(self, status: InvoiceStatus) -> None:
        payment_hash = status.payment_hash
        if status.state is not InvoiceState.OPEN:
            # Its reader ends by itself on this same change (lnd's single stream reports each
            # one), usually it is what reported it. Cancelling it here would cut short its
            # close of the stream: the subscriptions' pool never got that connection back, and
            # after eight invoices every new single stream waited and the 1 s poll saw the
            # payment instead.
            reader = self.readers.pop(payment_hash, None)
            if reader is not None and not reader.done():
                self.finishing.add(reader)
                reader.add_done_callback(self.finishing.discard)
            return
        if self.limit <= 0 or payment_hash in self.readers:
            return
        while len(self.readers) >= self.limit:
            _, oldest = self.readers.popitem(last=False)
            oldest.cancel()
        self.readers[payment_hash] = asyncio.create_task(
            _read_single(self.rest, payment_hash, self.into), name="lnd-invoice-single"
        )

    async def close(self) -> None:
        """Cancel the readers of OPEN invoices; give the finishing ones a moment to close
        their streams first (a cancel mid-close loses the connection), then cancel them too."""
        readers = list(self.readers.values())
        self.readers.clear()
        for reader in readers:
            reader.cancel()
        finishing = list(self.finishing)
        if finishing:
            await asyncio.wait(finishing, timeout=FINISHING_SECONDS)
        for reader in finishing:
            reader.cancel()
        for reader in readers + finishing:
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _read_single(rest: LndRest, payment_hash: bytes, into: asyncio.Queue[JSONObject]) -> None:
    """Forward one invoice's updates until it leaves OPEN; on a drop the poll covers it."""
    path = f"/v2/invoices/subscribe/{b64url(payment_hash)}"
    with contextlib.suppress(LightningError):
        updates = rest.stream("GET", path, subscription=True)
        async with contextlib.aclosing(updates):
            async for invoice in updates:
                into.put_nowait(invoice)
                if invoice.get("state") != InvoiceState.OPEN.value:
                    return


def _remember(known: dict[bytes, InvoiceStatus], status: InvoiceStatus) -> None:
    if status.state in _PENDING_STATES:
        known[status.payment_hash] = status
    else:
        known.pop(status.payment_hash, None)


async def _pending(rest: LndRest, offset: int) -> tuple[dict[bytes, InvoiceStatus], int]:
    """The pending invoices from ``offset`` on, and the offset the next poll may start at."""
    pending: dict[bytes, InvoiceStatus] = {}
    lowest: int | None = None
    page_offset = offset
    while True:
        page = await rest.call(
            "GET",
            "/v1/invoices",
            params={
                "pending_only": "true",
                "index_offset": str(page_offset),
                "num_max_invoices": str(PAGE_SIZE),
            },
        )
        invoices = page.get("invoices") or []
        for invoice in invoices:
            status = invoice_status_from_lnd(invoice)
            pending[status.payment_hash] = status
            add_index = json_int(invoice.get("add_index"))
            lowest = add_index if lowest is None else min(lowest, add_index)
        if len(invoices) < PAGE_SIZE:
            break
        page_offset = json_int(page.get("last_index_offset"))
    return pending, offset if lowest is None else lowest - 1


async def _lookup(rest: LndRest, payment_hash: bytes) -> InvoiceStatus:
    invoice = await rest.call(
        "GET", "/v2/invoices/lookup", params={"payment_hash": b64url(payment_hash)}
    )
    return invoice_status_from_lnd(invoice)


async def _read_stream(rest: LndRest, into: asyncio.Queue[JSONObject]) -> None:
    """Forward lnd's add/settle stream; reconnect after a drop (the poll covers the gap)."""
    delay = 0.5
    while True:
        try:
            updates = rest.stream("GET", "/v1/invoices/subscribe", subscription=True)
            async with contextlib.aclosing(updates):
                async for invoice in updates:
                    delay = 0.5
                    into.put_nowait(invoice)
        except LightningError:
            pass
        await asyncio.sleep(delay)
        delay = min(delay * 2, 15.0)
