"""The LDK backend: :class:`~taskhold.lightning.base.LightningBackend` on an embedded LDK Node.

The node runs inside the taskhold process (ldk-node's Python bindings, built by
``scripts/build-ldk``); its keys come from a seed the key store seals, its storage sits in the
data directory, and it follows the chain through a bitcoind-RPC endpoint.

How the Protocol maps onto LDK Node 0.7:

- A hold invoice is ``receive_for_hash_with_final_cltv_delta`` (taskhold's patch, see
  ``ldk/patches/``); the HTLC arriving is a ``PaymentClaimable`` event; settling is
  ``claim_for_hash``; cancelling is ``fail_for_hash``. LDK Node has no ACCEPTED state and forgets
  the terms, so :class:`~taskhold.lightning.ldk_holds.HoldRecords` keeps them.
- LDK fails a held HTLC back by itself once the chain reaches ``expiry - HTLC_FAIL_BACK_BUFFER``
  (39 blocks): :meth:`LdkBackend.hold_expiry_delta` reports that, as lnd reports its
  ``holdexpirydelta``, so the guardian acts before it. An invoice whose HTLC LDK failed that way
  reads CANCELED.
- Events are read on one thread (``next_event``), recorded, and only then acknowledged
  (``event_handled``): a crash replays the event instead of losing it.
- Every call into the node blocks, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from taskhold.lightning.base import (
    AlreadyExists,
    HoldInvoice,
    InvoiceNotFound,
    InvoiceState,
    InvoiceStatus,
    LightningError,
    NodeCapacity,
    NodeUnreachable,
    PaymentFailed,
    PaymentResult,
    PaymentStatus,
    WrongInvoiceState,
)
from taskhold.lightning.ldk_holds import HoldRecord, HoldRecords
from taskhold.lightning.ldk_module import load_ldk_node, patched_receive_method
from taskhold.waits import within, woken

__all__ = [
    "HTLC_FAIL_BACK_BUFFER",
    "LOG_FILE_NAME",
    "MAX_FINAL_CLTV_EXPIRY_DELTA",
    "MIN_FINAL_CLTV_EXPIRY_DELTA",
    "OUR_MAX_ACCEPTED_HTLCS",
    "LdkBackend",
    "LdkConfig",
    "StorageInUse",
]

logger = logging.getLogger(__name__)

LOG_FILE_NAME = "ldk_node.log"
"""The node's own log, in its storage directory."""
HTLC_FAIL_BACK_BUFFER = 39
"""rust-lightning's ``HTLC_FAIL_BACK_BUFFER``: a held HTLC is failed back this many blocks before
it expires (``CLTV_CLAIM_BUFFER`` 36 + ``LATENCY_GRACE_PERIOD_BLOCKS`` 3)."""
MIN_FINAL_CLTV_EXPIRY_DELTA = HTLC_FAIL_BACK_BUFFER + 3
"""LDK's own minimum final delta (``MIN_FINAL_CLTV_EXPIRY_DELTA``, 42): it refuses less."""
_INVOICE_ADDS = 3
"""LDK writes the asked delta plus 3 into the invoice; taskhold asks 3 less, so the invoice
carries exactly the delta the engine chose (the HTLC must still arrive with at least that)."""
MAX_FINAL_CLTV_EXPIRY_DELTA = 2016 - 16
"""LDK refuses an HTLC expiring more than ``CLTV_FAR_FAR_AWAY`` (2016) blocks ahead; the payer's
padding (lnd adds 3) and route must fit under it, so a few blocks are kept back."""
_SENDS_FROM_NEXT_BLOCK = 1
"""LDK builds an outgoing HTLC's time lock from the next block (best height + 1), so a route
whose total delta is the whole ``cltv_limit`` would expire one block past it; the route is held
one under, and the HTLC expires no later than the height now plus ``cltv_limit``."""
OUR_MAX_ACCEPTED_HTLCS = 50
"""Incoming HTLCs one channel of this node accepts at once: rust-lightning 0.2.7's
``ChannelHandshakeConfig::our_max_accepted_htlcs`` default, which LDK Node 0.7.1 leaves alone
(``default_user_config`` and ``open_channel`` change other handshake fields only). LDK Node's
``ChannelDetails`` reports neither this limit nor the HTLCs pending, so :meth:`LdkBackend.capacity`
uses it and counts the held HTLCs from the backend's own records."""
_FINAL = frozenset({InvoiceState.SETTLED, InvoiceState.CANCELED})
_PENDING = (InvoiceState.OPEN, InvoiceState.ACCEPTED)
_QUIET_S = 0.5
_QUIET_POLL_S = 0.05
_QUIET_MAX_S = 5.0
_EVENT_POLL_S = 0.05
_TICK_S = 1.0
# LDK Node's PaymentFailureReason, in lnd's words (the engine reads lnd's names).
_FAILURE_REASONS = {
    "ROUTE_NOT_FOUND": "FAILURE_REASON_NO_ROUTE",
    "RETRIES_EXHAUSTED": "FAILURE_REASON_NO_ROUTE",
    "RECIPIENT_REJECTED": "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS",
    "PAYMENT_EXPIRED": "FAILURE_REASON_TIMEOUT",
}
_UNKNOWN_FAILURE = "FAILURE_REASON_ERROR"


@dataclass(frozen=True, slots=True)
class LdkConfig:
    """Where the embedded node keeps its state and how it reaches the chain and its peers."""

    storage_dir: Path
    seed: bytes = field(repr=False)
    """64 bytes of entropy: the node's keys (wallet and channels) are derived from it."""
    rpc_host: str
    rpc_port: int
    rpc_user: str
    rpc_password: str = field(repr=False)
    listen: str | None = None
    """``host:port`` the node accepts peers on; ``None`` dials out only."""
    trusted_peers_no_reserve: tuple[str, ...] = ()
    """Peers whose anchor channels need no on-chain reserve in the node's wallet."""
    network: str = "regtest"


def build_node(module: ModuleType, config: LdkConfig) -> Any:
    """A built, not yet started, LDK node for ``config`` (blocks: it polls the chain tip)."""
    if len(config.seed) != 64:
        raise ValueError("an LDK node's seed is 64 bytes")
    settings = module.default_config()
    settings.network = getattr(module.Network, config.network.upper())
    settings.storage_dir_path = str(config.storage_dir)
    settings.listening_addresses = [config.listen] if config.listen else None
    if settings.anchor_channels_config is not None:
        settings.anchor_channels_config.trusted_peers_no_reserve = list(
            config.trusted_peers_no_reserve
        )
    builder = module.Builder.from_config(settings)
    builder.set_chain_source_bitcoind_rpc(
        config.rpc_host, config.rpc_port, config.rpc_user, config.rpc_password
    )
    builder.set_entropy_seed_bytes(list(config.seed))
    builder.set_filesystem_logger(str(config.storage_dir / LOG_FILE_NAME), module.LogLevel.INFO)
    return builder.build()


class LdkBackend:
    """Hold invoices and payments on one embedded LDK node.

    ``payment_grace_seconds`` is how long past ``timeout_seconds`` :meth:`pay_invoice` waits for
    a final answer before returning IN_FLIGHT.
    """

    def __init__(
        self,
        node: Any,
        module: ModuleType,
        records: HoldRecords,
        *,
        network: str = "bcrt",
        payment_grace_seconds: float = 30.0,
        claim_seconds: float = 30.0,
        clock: Any = time.time,
    ) -> None:
        self.network = network
        self._node = node
        self._module = module
        self._records = records
        self._receive = getattr(node.bolt11_payment(), patched_receive_method(module))
        self._grace_seconds = payment_grace_seconds
        self._claim_seconds = claim_seconds
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._subscribers: set[asyncio.Queue[InvoiceStatus]] = set()
        self._payments_changed = asyncio.Event()
        self._failure_reasons: dict[str, str] = {}
        self._quiet_after: set[bytes] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._storage_lock: IO[bytes] | None = None
        self._closed = False
        self.log_path: Path | None = None
        """The node's own log (set by :meth:`open`): its chain sync says why it lags."""

    @classmethod
    async def open(
        cls,
        config: LdkConfig,
        *,
        module_dir: Path | None = None,
        payment_grace_seconds: float = 30.0,
    ) -> LdkBackend:
        """Build and start the node in ``config.storage_dir`` and begin reading its events."""
        module = load_ldk_node(module_dir)
        # Channel states and revocation secrets live here: the owner's alone.
        config.storage_dir.mkdir(parents=True, exist_ok=True)
        config.storage_dir.chmod(0o700)
        lock = _lock_storage(config.storage_dir)
        try:
            node = await asyncio.to_thread(build_node, module, config)
            await asyncio.to_thread(node.start)
        except BaseException:
            lock.close()
            raise
        backend = cls(
            node,
            module,
            HoldRecords(config.storage_dir),
            payment_grace_seconds=payment_grace_seconds,
        )
        backend._storage_lock = lock
        backend.log_path = config.storage_dir / LOG_FILE_NAME
        backend.start_events()
        return backend

    def __repr__(self) -> str:
        return f"LdkBackend(network={self.network!r})"

    @property
    def node(self) -> Any:
        """The LDK node itself, for the devnet's channel setup and the operator's tools."""
        return self._node

    # -- the limits the engine must respect ---------------------------------------------------

    async def hold_expiry_delta(self) -> int:
        """LDK fails a held HTLC back this many blocks before it expires, as lnd's
        ``holdexpirydelta`` does: the guardian's margin starts from it."""
        return HTLC_FAIL_BACK_BUFFER

    async def min_cltv_expiry_delta(self) -> int:
        """The smallest final CLTV delta LDK issues a hold invoice with."""
        return MIN_FINAL_CLTV_EXPIRY_DELTA

    async def max_cltv_expiry_delta(self) -> int:
        """The largest final CLTV delta a hold invoice may ask for on this node."""
        return MAX_FINAL_CLTV_EXPIRY_DELTA

    # -- hold invoices ------------------------------------------------------------------------

    async def create_hold_invoice(
        self,
        payment_hash: bytes,
        amount_msat: int,
        *,
        memo: str,
        expiry_seconds: int,
        cltv_expiry_delta: int,
    ) -> HoldInvoice:
        """An invoice LDK claims only when told (``*_for_hash``), with the asked final delta."""
        if not MIN_FINAL_CLTV_EXPIRY_DELTA <= cltv_expiry_delta <= MAX_FINAL_CLTV_EXPIRY_DELTA:
            raise LightningError(
                f"an LDK hold invoice's cltv_expiry_delta must lie in"
                f" [{MIN_FINAL_CLTV_EXPIRY_DELTA}, {MAX_FINAL_CLTV_EXPIRY_DELTA}],"
                f" got {cltv_expiry_delta}"
            )
        if self._records.get(payment_hash) is not None:
            raise AlreadyExists(f"an invoice for hash {payment_hash.hex()} already exists")
        description = self._module.Bolt11InvoiceDescription.DIRECT(memo)
        invoice = await self._call(
            self._receive,
            amount_msat,
            description,
            expiry_seconds,
            payment_hash.hex(),
            cltv_expiry_delta - _INVOICE_ADDS,
        )
        record = HoldRecord(
            payment_hash=payment_hash,
            payment_request=str(invoice),
            amount_msat=amount_msat,
            cltv_expiry_delta=cltv_expiry_delta,
            expiry_seconds=expiry_seconds,
            created_at=int(self._clock()),
        )
        if not self._records.add(record):
            raise AlreadyExists(f"an invoice for hash {payment_hash.hex()} already exists")
        self._publish(record.status())
        return HoldInvoice(
            payment_hash=payment_hash,
            payment_request=record.payment_request,
            amount_msat=amount_msat,
            cltv_expiry_delta=cltv_expiry_delta,
            expiry_seconds=expiry_seconds,
        )

    async def create_invoice(
        self, amount_msat: int, *, memo: str, expiry_seconds: int = 3600
    ) -> str:
        """An ordinary invoice LDK claims by itself (not a hold invoice): for funding the
        node's channels and checking routes, never for a task."""
        description = self._module.Bolt11InvoiceDescription.DIRECT(memo)
        invoice = await self._call(
            self._node.bolt11_payment().receive, amount_msat, description, expiry_seconds
        )
        return str(invoice)

    async def lookup_invoice(self, payment_hash: bytes) -> InvoiceStatus:
        """The invoice as recorded, after applying what the clock and the chain decided."""
        return (await self._current(payment_hash)).status()

    async def subscribe_invoice(self, payment_hash: bytes) -> AsyncIterator[InvoiceStatus]:
        """The invoice now and after every change, until SETTLED or CANCELED."""
        queue = self._subscribe()
        try:
            last = await self.lookup_invoice(payment_hash)
            yield last
            while last.state not in _FINAL:
                try:
                    status = await within(queue.get(), _TICK_S)
                except TimeoutError:
                    status = await self.lookup_invoice(payment_hash)
                if status.payment_hash != payment_hash or status == last:
                    continue
                last = status
                yield status
        finally:
            self._subscribers.discard(queue)

    async def subscribe_invoices(self) -> AsyncGenerator[InvoiceStatus, None]:
        """Every pending invoice once, then every change, for as long as the caller reads."""
        queue = self._subscribe()
        try:
            for record in await asyncio.to_thread(self._records.pending):
                yield (await self._current(record.payment_hash)).status()
            while True:
                try:
                    yield await within(queue.get(), _TICK_S)
                except TimeoutError:
                    for record in await asyncio.to_thread(self._records.pending):
                        await self._current(record.payment_hash)  # publishes what changed
        finally:
            self._subscribers.discard(queue)

    async def settle_invoice(self, preimage: bytes) -> None:
        """``claim_for_hash``, then wait until LDK reports the claim done (``PaymentReceived``):
        LDK queues a claim it cannot make without an error, so only the event proves it.
        Settling a SETTLED invoice is done already; an unconfirmed claim raises
        :class:`NodeUnreachable` and may be repeated."""
        payment_hash = hashlib.sha256(preimage).digest()
        record = await self._current(payment_hash)
        if record.state is InvoiceState.SETTLED:
            return
        if record.state is not InvoiceState.ACCEPTED:
            raise WrongInvoiceState(f"cannot settle a {record.state.value} invoice")
        queue = self._subscribe()
        try:
            await self._call(
                self._node.bolt11_payment().claim_for_hash,
                payment_hash.hex(),
                record.amount_paid_msat,
                preimage.hex(),
            )
            async with asyncio.timeout(self._claim_seconds):
                while (await self._current(payment_hash)).state is InvoiceState.ACCEPTED:
                    with contextlib.suppress(TimeoutError):
                        await within(queue.get(), _TICK_S)
        except TimeoutError:
            raise NodeUnreachable(
                f"LDK has not confirmed the claim of {payment_hash.hex()} yet; settle again"
            ) from None
        finally:
            self._subscribers.discard(queue)
        if (await self._current(payment_hash)).state is not InvoiceState.SETTLED:
            raise WrongInvoiceState("the node cancelled the invoice before the claim")
        await self._channels_quiet()

    async def _channels_quiet(self) -> None:
        """Wait (bounded) until the node's channels have not changed for a moment.

        LDK Node 0.7 writes each channel update's monitor at once but its ChannelManager a
        moment later, in the background; a process killed in between finds the manager stale
        on restart and LDK force-closes the channel. The update that paid or claimed is fully
        committed once the balances stop moving, and the manager is written right after, so
        reporting the outcome only then keeps a crash at the engine's next step from costing
        the channel. Bounded: a busy node delays the answer by at most ``_QUIET_MAX_S``.
        """
        loop = asyncio.get_running_loop()
        give_up = loop.time() + _QUIET_MAX_S
        last = await self._channel_snapshot()
        quiet_since = loop.time()
        while loop.time() < give_up and loop.time() - quiet_since < _QUIET_S:
            await asyncio.sleep(_QUIET_POLL_S)
            now = await self._channel_snapshot()
            if now != last:
                last, quiet_since = now, loop.time()

    async def _channel_snapshot(self) -> tuple[tuple[object, ...], ...]:
        channels = await asyncio.to_thread(self._node.list_channels)
        return tuple(
            sorted(
                (
                    str(c.channel_id),
                    c.outbound_capacity_msat,
                    c.inbound_capacity_msat,
                    c.next_outbound_htlc_limit_msat,
                    c.is_usable,
                )
                for c in channels
            )
        )

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        """``fail_for_hash``: held HTLCs go back; a later payment of this hash is refused."""
        record = await self._current(payment_hash)
        if record.state is InvoiceState.CANCELED:
            return
        if record.state is InvoiceState.SETTLED:
            raise WrongInvoiceState("cannot cancel a SETTLED invoice")
        await self._call(self._node.bolt11_payment().fail_for_hash, payment_hash.hex())
        if not self._save(record.with_state(InvoiceState.CANCELED), if_state=_PENDING):
            raise WrongInvoiceState("the invoice settled while it was being cancelled")

    async def _current(self, payment_hash: bytes) -> HoldRecord:
        """The record, CANCELED if LDK has failed its HTLC back or it expired unpaid."""
        record = await asyncio.to_thread(self._records.get, payment_hash)
        if record is None:
            raise InvoiceNotFound(f"no invoice for hash {payment_hash.hex()}")
        failed_back = (
            record.state is InvoiceState.ACCEPTED
            and record.expiry_height is not None
            and await self.block_height() >= record.expiry_height - HTLC_FAIL_BACK_BUFFER
        )
        if failed_back or record.expired_unpaid(int(self._clock())):
            cancelled = record.with_state(InvoiceState.CANCELED)
            if self._save(cancelled, if_state=(record.state,)):
                return cancelled
            return await self._current(payment_hash)  # an event changed it meanwhile
        return record

    def _save(self, record: HoldRecord, *, if_state: tuple[InvoiceState, ...]) -> bool:
        saved = self._records.save(record, if_state=if_state)
        if saved:
            self._publish(record.status())
        return saved

    def _subscribe(self) -> asyncio.Queue[InvoiceStatus]:
        queue: asyncio.Queue[InvoiceStatus] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def _publish(self, status: InvoiceStatus) -> None:
        for queue in tuple(self._subscribers):
            queue.put_nowait(status)

    # -- payments -----------------------------------------------------------------------------

    async def pay_invoice(
        self,
        payment_request: str,
        *,
        max_fee_msat: int,
        timeout_seconds: int,
        cltv_limit: int,
        behind: bytes | None = None,
    ) -> PaymentResult:
        """Pay over LDK's router and wait for SUCCEEDED or FAILED.

        ``cltv_limit`` bounds the HTLC's expiry at the height now plus ``cltv_limit``, as
        lnd's does (LDK's ``max_total_cltv_expiry_delta``, one under: LDK counts from the next
        block). A hash already paid or being paid is never paid
        again: LDK refuses it as a duplicate and the recorded payment is followed instead. No
        final answer within ``timeout_seconds`` + the grace period returns IN_FLIGHT.
        """
        module = self._module
        try:
            invoice = module.Bolt11Invoice.from_str(payment_request)
        except Exception as exc:  # the bindings raise their own NodeError subclasses
            raise LightningError("not a BOLT11 invoice", node_message=str(exc)) from exc
        payment_hash = bytes.fromhex(str(invoice.payment_hash()))
        route = module.RouteParametersConfig(
            max_total_routing_fee_msat=max_fee_msat,
            max_total_cltv_expiry_delta=max(cltv_limit - _SENDS_FROM_NEXT_BLOCK, 0),
            max_path_count=10,
            max_channel_saturation_power_of_half=2,
        )
        deadline = time.monotonic() + timeout_seconds + self._grace_seconds
        try:
            await self._call(self._node.bolt11_payment().send, invoice, route)
        except PaymentFailed:
            raise
        except LightningError as exc:
            if "DuplicatePayment" not in (exc.node_message or ""):
                raise
        result = await self._follow(payment_hash, deadline)
        if result.status is PaymentStatus.FAILED:
            reason = result.failure_reason or _UNKNOWN_FAILURE
            raise PaymentFailed(f"payment failed: {reason}", reason=reason)
        return result

    async def lookup_payment(self, payment_hash: bytes) -> PaymentResult:
        """The outgoing payment as LDK records it; UNKNOWN if it never tried this hash.

        The first SUCCEEDED of a hash is reported only once the channels are quiet
        (:meth:`_channels_quiet`): the engine settles the employer's HTLC next, and a crash
        before LDK wrote down the payout's channel update would cost the channel.
        """
        result = await self._recorded_payment(payment_hash)
        if result.status is PaymentStatus.SUCCEEDED and payment_hash not in self._quiet_after:
            await self._channels_quiet()
            self._quiet_after.add(payment_hash)
        return result

    async def _recorded_payment(self, payment_hash: bytes) -> PaymentResult:
        details = await asyncio.to_thread(self._node.payment, payment_hash.hex())
        if details is None or details.direction.name == "INBOUND":
            return PaymentResult(payment_hash=payment_hash, status=PaymentStatus.UNKNOWN)
        status = details.status.name
        if status == "SUCCEEDED":
            preimage = getattr(details.kind, "preimage", None)
            return PaymentResult(
                payment_hash=payment_hash,
                status=PaymentStatus.SUCCEEDED,
                amount_msat=details.amount_msat or 0,
                fee_msat=details.fee_paid_msat or 0,
                preimage=bytes.fromhex(str(preimage)) if preimage else None,
            )
        if status == "FAILED":
            return PaymentResult(
                payment_hash=payment_hash,
                status=PaymentStatus.FAILED,
                amount_msat=details.amount_msat or 0,
                failure_reason=self._failure_reasons.get(payment_hash.hex(), _UNKNOWN_FAILURE),
            )
        return PaymentResult(
            payment_hash=payment_hash,
            status=PaymentStatus.IN_FLIGHT,
            amount_msat=details.amount_msat or 0,
        )

    async def _follow(self, payment_hash: bytes, deadline: float) -> PaymentResult:
        while True:
            self._payments_changed.clear()
            result = await self.lookup_payment(payment_hash)
            remaining = deadline - time.monotonic()
            if result.status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED) or remaining <= 0:
                return result
            await woken(self._payments_changed, min(remaining, _TICK_S))

    # -- chain and identity -------------------------------------------------------------------

    async def block_height(self) -> int:
        """The best block the node has synced to."""
        status = await asyncio.to_thread(self._node.status)
        return int(status.current_best_block.height)

    async def node_pubkey(self) -> str:
        return str(self._node.node_id())

    async def capacity(self, *, behind: bytes | None = None) -> NodeCapacity:
        """The usable channels (``list_channels``). LDK's ``inbound_capacity_msat`` is the
        peer's balance above the reserve it must keep, pending HTLCs already out, and
        ``outbound_capacity_msat`` ours. LDK does not count it against the channel's in-flight
        cap (``inbound_htlc_maximum_msat``: all incoming HTLCs of a channel together, by default
        10% of a channel the peer opened), which binds hold invoices first: the cap is reduced
        by what our records hold. LDK does not say which channel carries a held HTLC, so every
        channel's cap is reduced by all of them (low with several channels, never high). Slots:
        :data:`OUR_MAX_ACCEPTED_HTLCS` per channel, less the HTLCs held."""
        channels = await self._call(self._node.list_channels)
        usable = [channel for channel in channels if channel.is_usable]
        held = [
            record
            for record in await asyncio.to_thread(self._records.pending)
            if record.state is InvoiceState.ACCEPTED
        ]
        held_msat = sum(record.amount_paid_msat for record in held)
        rooms = [_inbound_room(channel, held_msat) for channel in usable]
        slots = OUR_MAX_ACCEPTED_HTLCS * len(usable)
        return NodeCapacity(
            inbound_msat=sum(rooms),
            outbound_msat=sum(int(channel.outbound_capacity_msat) for channel in usable),
            htlc_slots_free=max(0, slots - len(held)),
            htlc_slots_max=slots,
            largest_inbound_msat=max(rooms, default=0),
        )

    # -- events -------------------------------------------------------------------------------

    def start_events(self) -> None:
        """Start the thread that reads, records and acknowledges the node's events."""
        self._thread = threading.Thread(target=self._read_events, name="ldk-events", daemon=True)
        self._thread.start()

    def _read_events(self) -> None:
        while not self._stopping.is_set():
            try:
                event = self._node.next_event()
            except Exception:  # the node is stopping underneath us
                logger.exception("reading LDK events failed")
                self._stopping.wait(_TICK_S)
                continue
            if event is None:
                self._stopping.wait(_EVENT_POLL_S)
                continue
            try:
                self._handle(event)
            except Exception:
                # Not acknowledged: LDK hands the same event again.
                logger.exception("handling an LDK event failed; it will be replayed")
                self._stopping.wait(_TICK_S)
                continue
            self._node.event_handled()

    def _handle(self, event: Any) -> None:
        events = self._module.Event
        if isinstance(event, events.PAYMENT_CLAIMABLE):
            self._claimable(event)
        elif isinstance(event, events.PAYMENT_RECEIVED):
            record = self._records.get(bytes.fromhex(str(event.payment_hash)))
            if record is not None:
                # The claim went through: whatever the record said, the money is ours.
                settled = record.with_state(InvoiceState.SETTLED)
                self._save_from_thread(settled, if_state=(*_PENDING, InvoiceState.CANCELED))
        elif isinstance(event, events.PAYMENT_FAILED):
            if event.payment_hash is not None:
                reason = getattr(event.reason, "name", "")
                self._failure_reasons[str(event.payment_hash)] = _FAILURE_REASONS.get(
                    reason, _UNKNOWN_FAILURE
                )
            self._loop.call_soon_threadsafe(self._payments_changed.set)
        elif isinstance(event, events.PAYMENT_SUCCESSFUL):
            self._loop.call_soon_threadsafe(self._payments_changed.set)
        else:
            logger.info("LDK event %s", type(event).__name__)

    def _claimable(self, event: Any) -> None:
        """An HTLC arrived for one of our hold invoices: ACCEPTED, or refused."""
        payment_hash = bytes.fromhex(str(event.payment_hash))
        record = self._records.get(payment_hash)
        if record is not None and record.state is InvoiceState.ACCEPTED:
            return  # replayed after a restart; already recorded
        height = int(self._node.status().current_best_block.height)
        deadline = event.claim_deadline
        refuse = (
            record is None
            or record.state is not InvoiceState.OPEN
            or event.claimable_amount_msat < record.amount_msat
            or deadline is None
            # As lnd does: an HTLC expiring sooner than the invoice's final delta is refused
            # (LDK itself lets 3 blocks less through, see _INVOICE_ADDS).
            or int(deadline) + HTLC_FAIL_BACK_BUFFER < height + record.cltv_expiry_delta
        )
        if refuse:
            logger.warning("refusing an HTLC for hash %s", payment_hash.hex())
            self._node.bolt11_payment().fail_for_hash(str(event.payment_hash))
            return
        assert record is not None and deadline is not None
        accepted = replace(
            record,
            state=InvoiceState.ACCEPTED,
            amount_paid_msat=int(event.claimable_amount_msat),
            accept_height=height,
            expiry_height=int(deadline) + HTLC_FAIL_BACK_BUFFER,
        )
        if not self._save_from_thread(accepted, if_state=(InvoiceState.OPEN,)):
            # Cancelled (or expired) between the read above and now: not held after all.
            self._node.bolt11_payment().fail_for_hash(str(event.payment_hash))

    def _save_from_thread(self, record: HoldRecord, *, if_state: tuple[InvoiceState, ...]) -> bool:
        saved = self._records.save(record, if_state=if_state)
        if saved:
            self._loop.call_soon_threadsafe(self._publish, record.status())
        return saved

    # -- calls into the node ------------------------------------------------------------------

    async def _call(self, method: Any, *args: Any) -> Any:
        """One blocking call into the node in a worker thread, its errors in the seam's types."""
        if self._closed:
            raise NodeUnreachable("the LDK node is stopped")
        try:
            return await asyncio.to_thread(method, *args)
        except Exception as exc:
            raise _mapped(exc) from exc

    async def close(self) -> None:
        """Stop reading events and stop the node, once its channels are quiet (an update cut
        off mid-way waits for the node's next start, and an HTLC in it could time out on chain
        meanwhile). Safe to call twice."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            await self._channels_quiet()
        self._closed = True
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._node.stop)
        self._records.close()
        if self._storage_lock is not None:
            self._storage_lock.close()  # releases the lock


class StorageInUse(LightningError):
    """Another process (or backend) runs the LDK node of this storage directory."""


def _lock_storage(storage_dir: Path) -> IO[bytes]:
    """An exclusive lock on the node's storage for as long as the file stays open: two
    processes running one LDK node would each sign commitments the other does not know."""
    handle = open(storage_dir / ".taskhold.lock", "ab")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StorageInUse(
            f"the LDK node in {storage_dir} is already running in another process; stop it"
            " first (one process at a time may run a Lightning node)"
        ) from None
    return handle


def _inbound_room(channel: Any, held_msat: int) -> int:
    """What this channel can still receive: its room, within its in-flight cap less ``held``."""
    room = int(channel.inbound_capacity_msat)
    cap = channel.inbound_htlc_maximum_msat
    return room if cap is None else max(0, min(room, int(cap) - held_msat))


def _mapped(exc: Exception) -> LightningError:
    """An ldk_node ``NodeError`` as the seam's error; the variant name is kept as the message."""
    name = type(exc).__name__
    text = f"{name}: {exc}"
    if name in ("InvalidPaymentHash", "InvalidPaymentPreimage"):
        return InvoiceNotFound("the node knows no such payment", node_message=text)
    if name == "DuplicatePayment":
        return LightningError("already paid or paying", node_message="DuplicatePayment")
    if name in ("PaymentSendingFailed", "RouteNotFound", "InsufficientFunds"):
        return PaymentFailed(
            "the node could not send the payment",
            reason="FAILURE_REASON_NO_ROUTE",
            node_message=text,
        )
    if name in ("NotRunning", "ConnectionFailed"):
        return NodeUnreachable("the LDK node is not running", node_message=text)
    return LightningError("the LDK node refused the call", node_message=text)
