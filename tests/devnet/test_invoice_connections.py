"""Unpaid invoices cost no connections to lnd: on the real node, many open funding invoices
leave the number of connections taskhold holds unchanged, and a refund goes through at once.

Asking for a funding invoice is free, and each one used to keep an invoice stream (one HTTP
connection) open for its whole life, from the same pool as every settle and cancel. The pool
is shrunk here (``lnd_max_connections``) so a handful of invoices shows what a hundred did. Only
the few newest open invoices (``SINGLE_INVOICE_STREAMS``) get a stream of their own, from the
separate subscription pool, so that a funding is seen as lnd accepts it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from support.devnet_network import DevnetHandle

from taskhold.api.application import create_api
from taskhold.client import TaskholdClient
from taskhold.lightning.lnd import SINGLE_INVOICE_STREAMS
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.nostr import NostrKeys
from taskhold.services import Services, build_services

from .test_escrow_e2e import ACCEPTANCE, AMOUNT_MSAT, lnd_settings

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

POOL = 6
UNPAID = 3 * POOL
PROMPT_S = 20.0
"""A hang guard well under httpx's 30 s wait for a free connection."""


def connections_to(port: int) -> int:
    """Established TCP connections this process holds to ``port`` (from /proc)."""
    own = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            own.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01" and fields[9] in own:
                    count += 1
    return count


@pytest.fixture
async def small_pool(
    devnet: DevnetHandle, tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    settings = lnd_settings(
        devnet,
        tmp_path / "data",
        database_url,
        lnd_max_connections=POOL,
        max_concurrent_payouts=2,
        max_open_invoices_per_key=UNPAID + 1,
        rate_limit_pubkey_per_s=0,
    )
    backend = devnet.backend("escrow", max_connections=POOL)
    services = await build_services(settings, lightning=backend)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(services, run_engine=False)),
        base_url="http://taskhold.test",
        timeout=60,
    )
    try:
        yield services, http
    finally:
        await http.aclose()
        await services.close()


async def unpaid_invoice(employer: TaskholdClient) -> bytes:
    """A task's funding invoice, never paid; its payment hash."""
    task = await employer.create_task(
        "Unpaid", "never funded", AMOUNT_MSAT, int(time.time()) + 1800, acceptance=ACCEPTANCE
    )
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    return bytes.fromhex(funding["payment_hash"])


async def drive(services: Services, until: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(PROMPT_S):
        while not await until():
            await services.engine.reconcile()
            await asyncio.sleep(0.2)


async def test_unpaid_invoices_hold_no_connections_and_a_refund_goes_through(
    devnet: DevnetHandle, small_pool: tuple[Services, httpx.AsyncClient]
) -> None:
    services, http = small_pool
    rest_url = json.loads(devnet.connection_file.read_text())["nodes"]["escrow"]["rest_url"]
    rest_port = urlsplit(rest_url).port
    assert rest_port is not None
    unpaid: list[bytes] = []
    employer = TaskholdClient("http://taskhold.test", NostrKeys.generate(), http=http)
    wallet = LndWallet.from_connection_file(devnet.connection_file, "employer")
    try:
        task = await employer.create_task(
            "Refund me", "", AMOUNT_MSAT, int(time.time()) + 1800, acceptance=ACCEPTANCE
        )
        funding = (await employer.request_funding(task["task_id"]))["funding"]
        await wallet.send_payment(funding["payment_request"])

        async def funded() -> bool:
            return (await employer.get_task(task["task_id"]))["state"] == "FUNDED"

        await drive(services, funded)
        await asyncio.sleep(2 * services.settings.lnd_invoice_poll_s)
        with_one = connections_to(rest_port)

        for _ in range(UNPAID):
            unpaid.append(await unpaid_invoice(employer))
        await asyncio.sleep(2 * services.settings.lnd_invoice_poll_s)  # every watch is on
        with_many = connections_to(rest_port)

        await employer.cancel(task["task_id"], reason="plans changed")

        async def refunded() -> bool:
            return (await employer.get_task(task["task_id"]))["state"] == "REFUNDED"

        await drive(services, refunded)
    finally:
        await wallet.close()
        for payment_hash in unpaid:  # leave the shared escrow node as it was
            await services.lightning.cancel_invoice(payment_hash)

    print(f"\nconnections to lnd: {with_one} with one invoice, {with_many} with {UNPAID} more")
    # the newest few open invoices have a stream each (from the subscription pool, not the one
    # settles and cancels use): however many more are unpaid, that is all they add
    assert with_many <= with_one + SINGLE_INVOICE_STREAMS + 1, (with_one, with_many)
    assert with_many - SINGLE_INVOICE_STREAMS < POOL
