"""taskhold on the devnet as ``serve`` runs it: the engine, the outbox publisher and the
checkpointer in the API's lifespan, not driven by hand. The infrastructure fault tests take a
node, the database or the relay away under it and check what the crash tests check: nobody
paid twice, no escrow stuck, no gap in the public log, the operator's balance whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from support.devnet_network import DevnetHandle
from support.stacks import PG_ADMIN_URL, new_database

from taskhold.api.application import create_api
from taskhold.audit import AuditKinds, FetchSettings, audit_log, fetch_log
from taskhold.client import TaskholdClient
from taskhold.escrow.context import FaultHook
from taskhold.lightning.base import InvoiceState
from taskhold.services import build_services
from taskhold.store.models import LogEntryRow

from .test_escrow_e2e import ACCEPTANCE, AMOUNT_MSAT, LndStack, lnd_settings, settled_balance

__all__ = [
    "Balances",
    "balances",
    "funded",
    "hold_state",
    "live_stack",
    "log_in_db",
    "one_database_url",
    "public_log_problems",
    "sqlite_url",
]

Balances = tuple[int, int, int]
"""Settled channel balances of escrow, employer and worker (msat)."""


@pytest.fixture
async def one_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """PostgreSQL when the run has one, else SQLite: one database per fault test, not both (it is
    the node or the relay that fails, and each of these tests costs a minute of devnet time)."""
    async with new_database("postgresql" if PG_ADMIN_URL else "sqlite", tmp_path / "db") as url:
        yield url


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> AsyncIterator[str]:
    """SQLite, so the fault tests cover it too when :func:`one_database_url` is PostgreSQL."""
    async with new_database("sqlite", tmp_path / "db") as url:
        yield url


@contextlib.asynccontextmanager
async def live_stack(
    devnet: DevnetHandle,
    data_dir: Path,
    database_url: str,
    *,
    fault_hook: FaultHook | None = None,
    **settings: Any,
) -> AsyncIterator[LndStack]:
    """Services on the escrow node with their background work running; no relay in
    ``settings`` means the embedded one."""
    services = await build_services(
        lnd_settings(devnet, data_dir, database_url, **settings),
        lightning=devnet.backend("escrow"),
        fault_hook=fault_hook,
        embedded_relay=True,
    )
    app = create_api(services, run_engine=True)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://taskhold.test", timeout=60
    )
    stack = LndStack(
        services, http, devnet.wallet("employer"), devnet.wallet("worker"), devnet.wallet("escrow")
    )
    try:
        async with app.router.lifespan_context(app):
            yield stack
    finally:
        await http.aclose()
        await services.close()
        for wallet in (stack.employer_wallet, stack.worker_wallet, stack.escrow_wallet):
            await wallet.close()


async def balances(stack: LndStack) -> Balances:
    return (
        await settled_balance(stack.escrow_wallet),
        await settled_balance(stack.employer_wallet),
        await settled_balance(stack.worker_wallet),
    )


async def funded(stack: LndStack, employer: TaskholdClient) -> dict[str, Any]:
    """A task the employer's node paid, FUNDED once the running engine saw the HTLC held."""
    task = await employer.create_task(
        "Infrastructure fault", "", AMOUNT_MSAT, int(time.time()) + 1800, acceptance=ACCEPTANCE
    )
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    await stack.employer_wallet.send_payment(funding["payment_request"])
    return await employer.wait_for_state(task["task_id"], {"FUNDED"}, timeout_s=60)


async def log_in_db(stack: LndStack) -> list[int]:
    """The ``gseq`` of every log entry the database holds, in order."""
    async with stack.services.store.transaction() as tx:
        rows = await tx.session.execute(select(LogEntryRow.gseq).order_by(LogEntryRow.gseq))
        return [gseq for (gseq,) in rows]


async def public_log_problems(stack: LndStack, timeout_s: float = 60.0) -> list[str]:
    """The database's log is gap-free, every entry is on the relays, and the independent
    auditor finds nothing wrong with what they serve; what is not so, as sentences."""
    settings = stack.services.settings
    operator = stack.services.signer.get_public_key()
    in_db = await log_in_db(stack)
    problems = [] if in_db == list(range(len(in_db))) else [f"database log has gaps: {in_db}"]
    kinds = AuditKinds(
        settings.kind_log_entry,
        settings.kind_proof,
        settings.kind_request,
        settings.kind_listing,
        settings.kind_checkpoint,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        fetched = await fetch_log(
            settings.relays, operator, kinds=kinds, settings=FetchSettings(timeout_s=5)
        )
        on_relay = sorted({_gseq(event) for event in fetched.entries})
        if len(on_relay) >= len(in_db) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    if on_relay != in_db:
        missing = sorted(set(in_db) - set(on_relay))
        problems.append(f"relays have {len(on_relay)} of {len(in_db)} entries; missing {missing}")
    result = audit_log(
        fetched.entries,
        operator,
        kinds=kinds,
        checkpoints=fetched.checkpoints,
        deletions=fetched.deletions,
    )
    return problems + [f"audit: {finding}" for finding in result.findings]


async def hold_state(stack: LndStack, payment_hash_hex: str) -> InvoiceState:
    status = await stack.services.lightning.lookup_invoice(bytes.fromhex(payment_hash_hex))
    return status.state


def _gseq(event: dict[str, Any]) -> int:
    return int(next(tag[1] for tag in event["tags"] if tag[0] == "gseq"))
