"""No preimage (or key) in any response, log line or database row before settlement."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import httpx
import pytest
import structlog
from conftest import Stack, close_stack, open_stack, stack_settings
from deposit_flows import give_worker_wallet_money, locked_deposit, stranger
from helpers import funded, submitted
from sqlalchemy import text

from taskhold.escrow.deposits import deposit_label

SECRET_FREE_TABLES = (
    "tasks",
    "transitions",
    "invoices",
    "payouts",
    "deposit_payouts",
    "idempotency_keys",
)


async def _database_dump(stack: Stack) -> str:
    parts = []
    async with stack.services.store.transaction() as tx:
        for table in SECRET_FREE_TABLES:
            rows = (await tx.session.execute(text(f"SELECT * FROM {table}"))).all()
            parts.append(json.dumps([list(map(str, row)) for row in rows]))
    return "\n".join(parts)


async def test_preimage_stays_secret_until_settlement(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    bodies: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.text)

    stack.http.event_hooks["response"].append(keep)
    caplog.set_level(logging.DEBUG)
    employer, worker = stack.client(), stack.client()
    with structlog.testing.capture_logs() as logs:
        task = await submitted(stack, employer, worker)
        await employer.approve(task["task_id"])
        preimage = stack.services.keys.derive_preimage(task["task_id"], 1).hex()
        key_file = (stack.settings.data_dir / "keys" / "preimage.key").read_bytes().hex()
        before_settlement = "\n".join(bodies) + json.dumps(logs, default=str) + caplog.text
        assert preimage not in before_settlement
        assert key_file not in before_settlement
        assert preimage not in await _database_dump(stack)

        stack.services.engine.ctx.fault_hook = _check_db_at_each_point(stack, preimage)
        await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert final["preimage"] == preimage  # public once settled, as the settlement reveals it
    everything = "\n".join(bodies) + json.dumps(logs, default=str) + caplog.text
    assert key_file not in everything


def _check_db_at_each_point(stack: Stack, preimage: str):  # type: ignore[no-untyped-def]
    async def check(point: str) -> None:
        if point == "after_payout":
            assert preimage not in await _database_dump(stack)

    return check


async def test_key_store_repr_does_not_show_the_key(stack: Stack) -> None:
    key_file = (stack.settings.data_dir / "keys" / "preimage.key").read_bytes().hex()
    assert key_file not in repr(stack.services.keys)
    assert key_file not in repr(stack.services)


async def test_a_deposit_preimage_stays_secret_unless_forfeited_and_paid_out(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A returned deposit never reveals its preimage; a forfeited one only with its payout."""
    stack = await open_stack(stack_settings(tmp_path, database_url, pow_max_bits=8))
    bodies: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.text)

    stack.http.event_hooks["response"].append(keep)
    caplog.set_level(logging.DEBUG)
    try:
        await give_worker_wallet_money(stack)
        employer, worker = stack.client(), stranger(stack)
        with structlog.testing.capture_logs() as logs:
            task = await funded(stack, employer)
            await locked_deposit(stack, worker, task["task_id"], stack.world.worker)
            await worker.claim(task["task_id"])
            invoice = await stack.world.worker.create_invoice(
                task["payout_msat"], expiry_seconds=86_400
            )
            await worker.submit_proof(task["task_id"], {"url": "https://example.org/h"}, invoice)
            await employer.approve(task["task_id"])
            await stack.settle_engine()
            dump = await _database_dump(stack)
        label = deposit_label(task["task_id"], worker.pubkey_hex)
        preimage = stack.services.keys.derive_preimage(label, 0).hex()
        final = await employer.get_task(task["task_id"])
    finally:
        await close_stack(stack)
    assert final["state"] == "PAID"
    assert final["deposits"][0]["state"] == "RETURNED"
    everything = "\n".join(bodies) + json.dumps(logs, default=str) + caplog.text + dump
    assert (
        hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == final["deposits"][0]["payment_hash"]
    )
    assert preimage not in everything
