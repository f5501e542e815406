"""The lnd backend on the real regtest network: what the contract suite cannot show on a simulator.

The backend-neutral behaviour (create, accept, settle, cancel, subscribe, pay, look up) runs
against lnd in ``tests/lightning/test_contract.py`` (``[lnd]`` ids). Here: lnd's own hold-expiry
cancel, two-hop payments and fee caps, subscriptions across dropped connections, unreachable
nodes, and the macaroon staying secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import bolt11
import pytest
from support.devnet_network import DevnetHandle

from taskhold.lightning.base import (
    InvoiceNotFound,
    InvoiceState,
    InvoiceStatus,
    LightningBackend,
    LightningError,
    NodeUnreachable,
    PaymentFailed,
    PaymentStatus,
)
from taskhold.lightning.lnd import LndBackend
from taskhold.lightning.lnd_rest import load_node_connection
from taskhold.lightning.lnd_wallet import LndWallet

pytestmark = pytest.mark.devnet

AMOUNT_MSAT = 50_000_000
HOLD_EXPIRY_DELTA = 18  # the devnet's --invoices.holdexpirydelta (lnd v0.21's default)
BLOCK_PADDING = 3  # lnd's routing.BlockPadding, added by the payer's router
WAIT_SECONDS = 15.0
T = TypeVar("T")


@pytest.fixture
async def escrow(devnet: DevnetHandle) -> AsyncIterator[LndBackend]:
    backend = devnet.backend("escrow")
    yield backend
    await backend.close()


@pytest.fixture
async def employer(devnet: DevnetHandle) -> AsyncIterator[LndBackend]:
    backend = devnet.backend("employer")
    yield backend
    await backend.close()


def new_hash() -> tuple[bytes, bytes]:
    preimage = os.urandom(32)
    return preimage, hashlib.sha256(preimage).digest()


async def pay_from_employer(devnet: DevnetHandle, payment_request: str) -> None:
    wallet = devnet.wallet("employer")
    try:
        sent = await wallet.send_payment(payment_request)
        assert sent.status is PaymentStatus.IN_FLIGHT
    finally:
        await wallet.close()


async def eventually(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool]) -> T:
    """Poll ``probe`` until ``accept`` says yes (lnd updates balances a moment after events)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            value = await probe()
            if accept(value):
                return value
            await asyncio.sleep(0.1)


async def quiet_local_balance_msat(wallet: LndWallet) -> int:
    """The local channel balance once no HTLC is pending and it stops moving (an earlier
    payment's commitment updates may still be in progress)."""
    last = None
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            balance = await wallet.channel_balance()
            if balance.unsettled_local_msat == 0 and balance.local_msat == last:
                return balance.local_msat
            last = balance.local_msat
            await asyncio.sleep(0.2)


def _file_hex(path: str) -> str:
    return Path(path).read_bytes().hex()


async def until_state(
    backend: LightningBackend, payment_hash: bytes, state: InvoiceState
) -> InvoiceStatus:
    async with asyncio.timeout(WAIT_SECONDS):
        async for status in backend.subscribe_invoice(payment_hash):
            if status.state is state:
                return status
    raise AssertionError(f"invoice ended without reaching {state}")


def test_backend_satisfies_the_protocol(escrow: LndBackend) -> None:
    assert isinstance(escrow, LightningBackend)
    assert escrow.network == "bcrt"


async def test_hold_invoice_cycle_reports_the_real_expiry_height(
    devnet: DevnetHandle, escrow: LndBackend, employer: LndBackend
) -> None:
    preimage, payment_hash = new_hash()
    height = await escrow.block_height()
    invoice = await escrow.create_hold_invoice(
        payment_hash, AMOUNT_MSAT, memo="cycle", expiry_seconds=600, cltv_expiry_delta=80
    )

    await pay_from_employer(devnet, invoice.payment_request)
    accepted = await until_state(escrow, payment_hash, InvoiceState.ACCEPTED)
    await escrow.settle_invoice(preimage)
    settled = await until_state(escrow, payment_hash, InvoiceState.SETTLED)

    assert accepted.accepted_htlc_expiry_height == height + 80 + BLOCK_PADDING
    assert accepted.payment_request == invoice.payment_request
    assert settled.amount_paid_msat == AMOUNT_MSAT
    paid = await employer.lookup_payment(payment_hash)
    assert (paid.status, paid.preimage) == (PaymentStatus.SUCCEEDED, preimage)


async def test_lnd_cancels_a_held_invoice_hold_expiry_delta_blocks_before_expiry(
    devnet: DevnetHandle, escrow: LndBackend, employer: LndBackend
) -> None:
    _, payment_hash = new_hash()
    invoice = await escrow.create_hold_invoice(
        payment_hash, AMOUNT_MSAT, memo="expiring", expiry_seconds=600, cltv_expiry_delta=40
    )
    await pay_from_employer(devnet, invoice.payment_request)
    accepted = await until_state(escrow, payment_hash, InvoiceState.ACCEPTED)
    expiry_height = accepted.accepted_htlc_expiry_height
    assert expiry_height is not None

    # Up to one block before lnd's threshold the HTLC is still held.
    await devnet.mine(expiry_height - HOLD_EXPIRY_DELTA - 1 - await escrow.block_height())
    assert (await escrow.lookup_invoice(payment_hash)).state is InvoiceState.ACCEPTED

    await devnet.mine(1)  # now height + holdexpirydelta >= expiry height
    cancelled = await until_state(escrow, payment_hash, InvoiceState.CANCELED)

    assert cancelled.htlcs == ()
    result = await eventually(
        lambda: employer.lookup_payment(payment_hash),
        lambda result: result.status is PaymentStatus.FAILED,
    )
    assert result.failure_reason == "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS"
    # The HTLC went back off-chain: no force close, every channel still open and active
    # (the escrow's: to the employer, the worker and the swap node).
    assert (await _node_status(devnet, "employer"))["active_channels"] == 1
    assert (await _node_status(devnet, "escrow"))["active_channels"] == 3


async def _node_status(devnet: DevnetHandle, node: str) -> dict[str, object]:
    from taskhold.devnet import status

    report = await status(devnet.data_dir)
    node_report: dict[str, object] = report["nodes"][node]
    return node_report


async def test_two_hop_payment_pays_the_escrow_a_fee_within_the_cap(
    devnet: DevnetHandle, employer: LndBackend
) -> None:
    worker = devnet.wallet("worker")
    try:
        invoice = await worker.create_invoice(AMOUNT_MSAT, memo="two hops")
        result = await employer.pay_invoice(
            invoice.payment_request, max_fee_msat=100_000, timeout_seconds=30, cltv_limit=2016
        )
    finally:
        await worker.close()

    assert result.status is PaymentStatus.SUCCEEDED
    assert 0 < result.fee_msat <= 100_000  # the escrow node charged for forwarding
    assert result.amount_msat == AMOUNT_MSAT


async def test_a_fee_cap_below_the_route_fee_fails_with_no_route(
    devnet: DevnetHandle, employer: LndBackend
) -> None:
    worker = devnet.wallet("worker")
    try:
        invoice = await worker.create_invoice(AMOUNT_MSAT, memo="too cheap")
        with pytest.raises(PaymentFailed) as failed:
            await employer.pay_invoice(
                invoice.payment_request, max_fee_msat=0, timeout_seconds=10, cltv_limit=2016
            )
    finally:
        await worker.close()

    assert failed.value.reason == "FAILURE_REASON_NO_ROUTE"
    payment_hash = bytes.fromhex(bolt11.decode(invoice.payment_request).payment_hash)
    looked_up = await employer.lookup_payment(payment_hash)
    assert looked_up.status is PaymentStatus.FAILED


async def test_balances_move_when_a_hold_invoice_settles(
    devnet: DevnetHandle, escrow: LndBackend
) -> None:
    escrow_wallet, employer_wallet = devnet.wallet("escrow"), devnet.wallet("employer")
    try:
        escrow_before = await quiet_local_balance_msat(escrow_wallet)
        employer_before = await quiet_local_balance_msat(employer_wallet)
        preimage, payment_hash = new_hash()
        invoice = await escrow.create_hold_invoice(
            payment_hash, AMOUNT_MSAT, memo="balances", expiry_seconds=600, cltv_expiry_delta=80
        )
        await pay_from_employer(devnet, invoice.payment_request)
        await until_state(escrow, payment_hash, InvoiceState.ACCEPTED)
        await eventually(  # the held HTLC left the employer's balance...
            employer_wallet.channel_balance,
            lambda balance: balance.local_msat <= employer_before - AMOUNT_MSAT,
        )
        # ...but has not reached the escrow's.
        assert (await escrow_wallet.channel_balance()).local_msat == escrow_before

        await escrow.settle_invoice(preimage)
        await until_state(escrow, payment_hash, InvoiceState.SETTLED)

        await eventually(
            escrow_wallet.channel_balance,
            lambda balance: balance.local_msat == escrow_before + AMOUNT_MSAT,
        )
    finally:
        await escrow_wallet.close()
        await employer_wallet.close()


# -- subscriptions across silence and dropped connections --------------------------------------


async def test_a_silent_subscription_resubscribes_without_repeating_states(
    devnet: DevnetHandle,
) -> None:
    impatient = devnet.backend("escrow", subscription_poll_seconds=0.3)
    try:
        preimage, payment_hash = new_hash()
        invoice = await impatient.create_hold_invoice(
            payment_hash, AMOUNT_MSAT, memo="silent", expiry_seconds=600, cltv_expiry_delta=80
        )
        updates = impatient.subscribe_invoice(payment_hash)
        seen = [(await anext(updates)).state]

        async def drive() -> None:
            await asyncio.sleep(1.5)  # several silent periods, each a new subscription
            await pay_from_employer(devnet, invoice.payment_request)

        driver = asyncio.create_task(drive())
        async with asyncio.timeout(WAIT_SECONDS):
            async for status in updates:
                seen.append(status.state)
                if status.state is InvoiceState.ACCEPTED:
                    await driver
                    await impatient.settle_invoice(preimage)
    finally:
        await impatient.close()

    assert seen == [InvoiceState.OPEN, InvoiceState.ACCEPTED, InvoiceState.SETTLED]


class _Proxy:
    """A loopback TCP proxy to lnd's REST port whose connections the test can cut."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self.cut()
            await self._server.wait_closed()
            self._server = None

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self._writers |= {writer, upstream_writer}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))


async def test_a_dropped_subscription_reconnects_and_misses_nothing(devnet: DevnetHandle) -> None:
    connection = load_node_connection(devnet.connection_file, "escrow")
    proxy = _Proxy(int(connection.rest_url.rsplit(":", 1)[1]))
    await proxy.start()
    backend = LndBackend(
        f"https://127.0.0.1:{proxy.port}", connection.tls_cert_path, connection.macaroon_path
    )
    try:
        preimage, payment_hash = new_hash()
        invoice = await backend.create_hold_invoice(
            payment_hash, AMOUNT_MSAT, memo="dropped", expiry_seconds=600, cltv_expiry_delta=80
        )
        updates = backend.subscribe_invoice(payment_hash)
        async with asyncio.timeout(WAIT_SECONDS):
            assert (await anext(updates)).state is InvoiceState.OPEN
            next_update = asyncio.ensure_future(anext(updates))
            await asyncio.sleep(0.5)  # the stream is open and waiting
            proxy.cut()  # the connection drops while the invoice changes
            await pay_from_employer(devnet, invoice.payment_request)
            accepted = await next_update
            proxy.cut()
            await backend.settle_invoice(preimage)
            settled = await anext(updates)
            with pytest.raises(StopAsyncIteration):
                await anext(updates)
    finally:
        await backend.close()
        await proxy.stop()

    assert accepted.state is InvoiceState.ACCEPTED
    assert settled.state is InvoiceState.SETTLED


# -- failures ----------------------------------------------------------------------------------


async def test_a_node_that_is_not_listening_is_unreachable(devnet: DevnetHandle) -> None:
    connection = load_node_connection(devnet.connection_file, "escrow")
    proxy = _Proxy(1)
    await proxy.start()
    closed_port = proxy.port
    await proxy.stop()
    backend = LndBackend(
        f"https://127.0.0.1:{closed_port}", connection.tls_cert_path, connection.macaroon_path
    )
    try:
        with pytest.raises(NodeUnreachable):
            await backend.block_height()
        with pytest.raises(NodeUnreachable):
            async for _ in backend.subscribe_invoice(new_hash()[1]):
                pass
    finally:
        await backend.close()


async def test_the_macaroon_never_shows_in_reprs_or_errors(
    devnet: DevnetHandle, escrow: LndBackend, employer: LndBackend
) -> None:
    macaroons = [
        _file_hex(load_node_connection(devnet.connection_file, node).macaroon_path)
        for node in ("escrow", "employer")
    ]

    with pytest.raises(InvoiceNotFound) as not_found:
        await escrow.lookup_invoice(new_hash()[1])
    worker = devnet.wallet("worker")
    try:
        invoice = await worker.create_invoice(AMOUNT_MSAT)
    finally:
        await worker.close()
    with pytest.raises(PaymentFailed) as failed:  # two hops, and no fee allowed
        await employer.pay_invoice(
            invoice.payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=2016
        )

    texts = [repr(escrow), str(vars(escrow)), repr(employer), str(vars(employer))]
    texts += [repr(not_found.value), str(not_found.value), str(not_found.value.node_message)]
    texts += [repr(failed.value), str(failed.value), str(failed.value.node_message)]
    for macaroon_hex in macaroons:
        assert all(macaroon_hex[:32] not in text for text in texts)


async def test_a_macaroon_of_another_node_is_refused(devnet: DevnetHandle) -> None:
    escrow = load_node_connection(devnet.connection_file, "escrow")
    worker = load_node_connection(devnet.connection_file, "worker")
    backend = LndBackend(escrow.rest_url, escrow.tls_cert_path, worker.macaroon_path)
    try:
        with pytest.raises(LightningError) as refused:
            await backend.block_height()
    finally:
        await backend.close()

    assert not isinstance(refused.value, NodeUnreachable | InvoiceNotFound)
    assert refused.value.node_message
