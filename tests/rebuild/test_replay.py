"""Drop the database, rebuild it from the signed log: the projections come back equal, and an
in-flight escrow still releases with the same preimage. On PostgreSQL the rows the rebuild
COPYs are the ones its inserts would write."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from support import stacks
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_flows import created, funded, projection, read_log, submitted

from taskhold.rebuild import replay
from taskhold.rebuild.replay import LogRejected, rebuild_from_entries
from taskhold.store import Store, create_engine, migrate
from taskhold.store.models import Base


async def _every_path(stack: Stack) -> dict[str, str]:
    """Tasks in every end state and a few in flight; returns task id by label."""
    arbiter = stack.client()
    stack.services.settings.arbiters = [arbiter.pubkey_hex]
    ids: dict[str, str] = {}
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    ids["paid"] = task["task_id"]
    swap_api = "https://boltz.example/v2"
    await employer.report_swap(
        task["task_id"], role="funding", swap_id="f1", swap_api=swap_api, lockup_txid="a1" * 32
    )
    task = await funded(stack, employer)
    await employer.cancel(task["task_id"], reason="not needed")
    ids["refunded"] = task["task_id"]
    task = await created(stack, employer)
    await employer.cancel(task["task_id"])
    ids["cancelled"] = task["task_id"]
    task = await submitted(stack, employer, worker)
    await employer.reject(task["task_id"], "wrong haiku")
    await worker.open_dispute(task["task_id"], "it is right")
    await arbiter.resolve_dispute(task["task_id"], "employer", "it is wrong")
    ids["dispute_lost"] = task["task_id"]
    task = await submitted(stack, employer, worker)
    ids["in_review"] = task["task_id"]
    task = await funded(stack, employer)
    ids["funded"] = task["task_id"]
    task = await created(stack, employer)
    await employer.request_funding(task["task_id"])
    ids["pending_funding"] = task["task_id"]
    await stack.settle_engine()
    paid = ids["paid"]
    await worker.report_swap(paid, role="payout", swap_id="p1", swap_api=swap_api)
    await worker.report_swap(
        paid, role="payout", swap_id="p1", swap_api=swap_api, claim_txid="c1" * 32
    )
    return ids


async def test_rebuilt_projection_equals_the_original(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    settings = stack_settings(tmp_path, database_url)
    original = await open_stack(settings)
    try:
        ids = await _every_path(original)
        states = {label: (await original.client().get_task(i))["state"] for label, i in ids.items()}
        assert states["paid"] == "PAID" and states["refunded"] == "REFUNDED"
        assert states["dispute_lost"] == "REFUNDED" and states["cancelled"] == "CANCELLED"
        swaps = (await original.client().get_task(ids["paid"]))["swaps"]
        assert [(s["role"], s["claim_txid"]) for s in swaps] == [
            ("funding", None),
            ("payout", "c1" * 32),
        ]
        log = await read_log(original)
        before = await projection(original)
        operator = original.services.signer.get_public_key()
    finally:
        await close_stack(original)

    async with new_database(database_kind, tmp_path / "rebuilt") as fresh_url:
        rebuilt = await open_stack(stack_settings(tmp_path, fresh_url), world=original.world)
        try:
            shuffled = list(reversed(log))  # relays deliver in any order
            report = await rebuild_from_entries(
                rebuilt.services.store, shuffled, operator_pubkey=operator
            )
            assert report.entries == len(log)
            assert report.tasks == len(ids)
            assert await projection(rebuilt) == before
            assert await read_log(rebuilt) == log
        finally:
            await close_stack(rebuilt)


async def test_in_flight_escrow_releases_after_rebuild_with_the_same_preimage(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    settings = stack_settings(tmp_path, database_url)
    original = await open_stack(settings)
    employer, worker = original.client(), original.client()
    task = await submitted(original, employer, worker)
    await employer.approve(task["task_id"])  # VERIFIED; the engine has not released yet
    log = await read_log(original)
    operator = original.services.signer.get_public_key()
    await close_stack(original)

    async with new_database(database_kind, tmp_path / "rebuilt") as fresh_url:
        rebuilt = await open_stack(stack_settings(tmp_path, fresh_url), world=original.world)
        try:
            await rebuild_from_entries(rebuilt.services.store, log, operator_pubkey=operator)
            assert (await rebuilt.client().get_task(task["task_id"]))["state"] == "VERIFIED"
            await rebuilt.settle_engine()
            final = await rebuilt.client().get_task(task["task_id"])
            assert final["state"] == "PAID"
            digest = hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest()
            assert digest == task["funding"]["payment_hash"]
            assert original.world.worker.balance_msat == task["payout_msat"]
        finally:
            await close_stack(rebuilt)


async def test_rebuild_refuses_a_log_with_a_gap(stack: Stack) -> None:
    await funded(stack, stack.client())
    log = await read_log(stack)
    operator = stack.services.signer.get_public_key()
    async with new_database("sqlite", Path(stack.settings.data_dir) / "gap") as url:
        other = await open_stack(stack_settings(Path(stack.settings.data_dir) / "o", url))
        try:
            with pytest.raises(LogRejected, match="gap"):
                await rebuild_from_entries(
                    other.services.store, log[:1] + log[2:], operator_pubkey=operator
                )
            tampered = [dict(e) for e in log]
            tampered[1]["content"] = json.dumps({"forged": True})
            with pytest.raises(LogRejected, match="verify"):
                await rebuild_from_entries(other.services.store, tampered, operator_pubkey=operator)
        finally:
            await close_stack(other)


async def _every_row(engine: AsyncEngine) -> dict[str, list[str]]:
    """Each table's rows as PostgreSQL prints them (every column, JSON as its stored text), in
    primary key order."""
    tables: dict[str, list[str]] = {}
    async with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            order = ", ".join(f'"{column.name}"' for column in table.primary_key.columns)
            result = await conn.exec_driver_sql(
                f'SELECT t::text FROM "{table.name}" t ORDER BY {order}'
            )
            tables[table.name] = list(result.scalars())
    return tables


@pytest.mark.skipif(
    not (stacks.PG_ADMIN_URL or stacks.REQUIRE_PG), reason="the COPY path is PostgreSQL's"
)
async def test_copied_rows_equal_the_inserted_ones_on_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with new_database("postgresql", tmp_path / "original") as url:
        original = await open_stack(stack_settings(tmp_path, url))
        try:
            await _every_path(original)
            log = await read_log(original)
            operator = original.services.signer.get_public_key()
        finally:
            await close_stack(original)

    copied: list[str] = []
    copy = replay._copied

    async def watched(session: Any, table: Any, values: Any) -> bool:
        done = await copy(session, table, values)
        copied.extend([table.name] if done else [])
        return done

    async def never(session: Any, table: Any, values: Any) -> bool:
        return False

    rows: dict[str, dict[str, list[str]]] = {}
    for way, write in (("copy", watched), ("insert", never)):
        monkeypatch.setattr(replay, "_copied", write)
        async with new_database("postgresql", tmp_path / way) as url:
            engine = create_engine(url)
            try:
                await migrate(engine)
                forged = [*log[:-1], {**log[-1], "sig": log[0]["sig"]}]
                with pytest.raises(LogRejected, match="verify"):
                    await rebuild_from_entries(Store(engine), forged, operator_pubkey=operator)
                assert not any((await _every_row(engine)).values())  # a refusal writes nothing
                await rebuild_from_entries(Store(engine), log, operator_pubkey=operator, jobs=1)
                rows[way] = await _every_row(engine)
            finally:
                await engine.dispose()
    assert sorted(copied) == [
        "invoices",
        "log_entries",
        "request_events",
        "tasks",
        "transitions",
    ]
    assert all(rows["copy"][name] for name in copied)
    assert rows["copy"] == rows["insert"]
