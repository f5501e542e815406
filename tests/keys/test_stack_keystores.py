"""A whole task through the API on each key store; after the database is dropped and rebuilt from
the log an in-flight escrow still releases with the same preimage, derived in the token; nothing
secret reaches the database, a response or a log line; every key use is in the audit log."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import select, text
from support.keystores import (  # the fixtures keystore and softhsm
    KeystoreCase,
    SoftHsm,
    keystore_fixture,  # noqa: F401
    pkcs11_case,
    softhsm_fixture,  # noqa: F401
)
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_flows import funded, submitted

from taskhold.journal.chain import verify_chain
from taskhold.keys.admin import init_key_store
from taskhold.rebuild.replay import rebuild_from_entries
from taskhold.store.models import Base, LogEntryRow


async def _open(tmp_path: Path, database_url: str, case: KeystoreCase, **kw: Any) -> Stack:
    settings = stack_settings(tmp_path, database_url, **case.overrides)
    init_key_store(settings)
    return await open_stack(settings, **kw)


async def _audit_actions(stack: Stack) -> list[str]:
    assert stack.services.audit is not None
    await stack.services.audit.flush()
    async with stack.services.store.engine.connect() as conn:
        assert (await verify_chain(conn)).ok
        rows = (await conn.execute(text("SELECT action FROM audit_log ORDER BY seq"))).all()
    return [action for (action,) in rows]


async def test_a_task_runs_to_paid_on_each_key_store(
    keystore: KeystoreCase, tmp_path: Path, database_url: str
) -> None:
    stack = await _open(tmp_path, database_url, keystore)
    try:
        employer, worker = stack.client(), stack.client()
        task = await submitted(stack, employer, worker)
        await employer.approve(task["task_id"])
        await stack.settle_engine()
        final = await employer.get_task(task["task_id"])
        assert final["state"] == "PAID"
        preimage = bytes.fromhex(final["preimage"])
        assert hashlib.sha256(preimage).hexdigest() == task["funding"]["payment_hash"]
        assert stack.services.keys.derive_preimage(task["task_id"], 1) == preimage
        actions = await _audit_actions(stack)
    finally:
        await close_stack(stack)
    assert actions[0] in ("config.start", "key.unseal")
    for expected in (
        "config.start", "key.payment_hash", "key.sign", "escrow.payout",
        "key.derive_preimage", "escrow.settle",
    ):  # fmt: skip
        assert expected in actions
    assert actions.index("escrow.payout") < actions.index("escrow.settle")
    if keystore.kind == "pkcs11":
        assert "key.unseal" in actions  # the operator key, once, at start


async def test_a_refund_is_audited(softhsm: SoftHsm, tmp_path: Path, database_url: str) -> None:
    stack = await _open(tmp_path, database_url, pkcs11_case(softhsm))
    try:
        employer = stack.client()
        task = await funded(stack, employer)
        await employer.cancel(task["task_id"], reason="changed my mind")
        await stack.settle_engine()
        assert (await employer.get_task(task["task_id"]))["state"] == "REFUNDED"
        assert "escrow.cancel" in await _audit_actions(stack)
    finally:
        await close_stack(stack)


async def test_in_flight_escrow_releases_after_rebuild_with_the_token(
    softhsm: SoftHsm, tmp_path: Path, database_url: str, database_kind: str
) -> None:
    case = pkcs11_case(softhsm)
    original = await _open(tmp_path, database_url, case)
    employer, worker = original.client(), original.client()
    task = await submitted(original, employer, worker)
    await employer.approve(task["task_id"])  # VERIFIED; the engine has not released yet
    async with original.services.store.transaction() as tx:
        rows = await tx.session.execute(select(LogEntryRow.raw).order_by(LogEntryRow.gseq))
        log = [dict(raw) for (raw,) in rows]
    operator = original.services.signer.get_public_key()
    await close_stack(original)  # the token session is closed with it

    async with new_database(database_kind, tmp_path / "rebuilt") as fresh_url:
        rebuilt = await _open(tmp_path, fresh_url, case, world=original.world)
        try:
            assert rebuilt.services.signer.get_public_key() == operator  # unsealed again
            await rebuild_from_entries(rebuilt.services.store, log, operator_pubkey=operator)
            await rebuilt.settle_engine()
            final = await rebuilt.client().get_task(task["task_id"])
            assert final["state"] == "PAID"
            digest = hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest()
            assert digest == task["funding"]["payment_hash"]
            assert original.world.worker.balance_msat == task["payout_msat"]
        finally:
            await close_stack(rebuilt)


async def _database_dump(stack: Stack) -> str:
    parts = []
    async with stack.services.store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = (await conn.execute(text(f"SELECT * FROM {table.name}"))).all()
            parts.append(json.dumps([list(map(str, row)) for row in rows]))
    return "\n".join(parts)


async def test_no_secret_in_database_responses_or_logs(
    softhsm: SoftHsm, tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    stack = await _open(tmp_path, database_url, pkcs11_case(softhsm))
    bodies: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.text)

    stack.http.event_hooks["response"].append(keep)
    caplog.set_level(logging.DEBUG)
    operator_secret = stack.services.signer._keys.secret_hex_unsafe()  # type: ignore[attr-defined]
    try:
        with structlog.testing.capture_logs() as logs:
            employer, worker = stack.client(), stack.client()
            task = await submitted(stack, employer, worker)
            await employer.approve(task["task_id"])
            preimage = stack.services.keys.derive_preimage(task["task_id"], 1).hex()
            assert stack.services.audit is not None
            await stack.services.audit.flush()
            seen = "\n".join(bodies) + json.dumps(logs, default=str) + caplog.text
            assert preimage not in seen
            assert preimage not in await _database_dump(stack)
            await stack.settle_engine()
            await stack.services.audit.flush()
        assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
        everything = (
            "\n".join(bodies) + json.dumps(logs, default=str) + caplog.text
            + await _database_dump(stack) + repr(stack.services)
        )  # fmt: skip
        assert operator_secret not in everything
        assert f"pkcs11_pin='{softhsm.pin}'" not in everything
    finally:
        await close_stack(stack)
