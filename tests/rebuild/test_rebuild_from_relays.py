"""`taskhold rebuild --relay … --operator …`: drop the database, rebuild it from what the
relays hold (the embedded relay and PyPI nostr-relay), and the projections come back equal;
an in-flight escrow then releases with the same preimage."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.relays import NostrRelayProcess, drain, run_tasks
from support.stacks import close_stack, new_database, open_stack, stack_settings
from support.task_flows import projection, submitted

from taskhold.nostr.embedded import EmbeddedRelay

pytestmark = pytest.mark.slow


@pytest.fixture(params=["embedded", "nostr-relay"])
async def relay_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "embedded":
        relay = EmbeddedRelay(tmp_path / "relay-data")
        url = await relay.start()
        try:
            yield url
        finally:
            await relay.stop()
        return
    process = NostrRelayProcess(tmp_path / "nostr-relay")
    url = process.start()
    try:
        yield url
    finally:
        process.stop()


async def _rebuild_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "taskhold.cli", "rebuild", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_rebuild_from_relays_equals_the_original(
    tmp_path: Path, database_url: str, database_kind: str, relay_url: str
) -> None:
    original = await open_stack(stack_settings(tmp_path, database_url, relays=[relay_url]))
    try:
        await run_tasks(original, paid=2, refunded=1)
        employer, worker = original.client(), original.client()
        in_flight = await submitted(original, employer, worker)
        await employer.approve(in_flight["task_id"])  # VERIFIED, not released yet
        assert original.services.publisher is not None
        await drain(original.services.publisher)
        before = await projection(original)
        operator = original.services.signer.get_public_key()
    finally:
        await close_stack(original)

    async with new_database(database_kind, tmp_path / "rebuilt") as fresh_url:
        code, out, err = await _rebuild_cli(
            "--relay", relay_url, "--operator", operator, "--data-dir", str(tmp_path / "data"),
            "--database-url", fresh_url, "--json",
        )  # fmt: skip
        assert code == 0, err
        summary = json.loads(out)
        assert summary["entries"] == len(before["log"])
        rebuilt = await open_stack(stack_settings(tmp_path, fresh_url), world=original.world)
        try:
            after = await projection(rebuilt)
            assert after == before
            await rebuilt.settle_engine()
            final = await rebuilt.client().get_task(in_flight["task_id"])
            assert final["state"] == "PAID"
            digest = hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest()
            assert digest == in_flight["funding"]["payment_hash"]
        finally:
            await close_stack(rebuilt)


async def test_rebuild_refuses_an_unknown_operator_key(tmp_path: Path, relay_url: str) -> None:
    code, _, err = await _rebuild_cli(
        "--relay", relay_url, "--operator", "not-a-key", "--data-dir", str(tmp_path)
    )
    assert code == 2
    assert "npub" in err
