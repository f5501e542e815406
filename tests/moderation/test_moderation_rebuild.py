"""A rebuild from the relays brings the operator's moderation back: the blocked keys and
delisted tasks are not in the log entries, so the newest signed moderation list is read too."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from support.relays import drain
from support.stacks import close_stack, new_database, open_stack, stack_settings
from support.task_flows import funded

from taskhold.moderation import Moderator
from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.store import create_engine
from taskhold.store.models import BlockedKeyRow, DelistedTaskRow

pytestmark = pytest.mark.slow


async def test_a_rebuild_restores_blocked_keys_and_delistings(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    relay = EmbeddedRelay(tmp_path / "relay-data")
    url = await relay.start()
    try:
        stack = await open_stack(stack_settings(tmp_path, database_url, relays=[url]))
        try:
            task = await funded(stack, stack.client())
            assert stack.services.audit is not None
            moderator = Moderator(
                stack.services.store,
                stack.services.signer,
                stack.services.audit,
                kind=stack.settings.kind_checkpoint,
            )
            blocked, unblocked = "ab" * 32, "cd" * 32
            await moderator.block(blocked, "spam", actor="admin:test")
            await moderator.block(unblocked, "mistake", actor="admin:test")
            await moderator.delist(task["task_id"], "scam", actor="admin:test")
            await moderator.unblock(unblocked, actor="admin:test")
            assert stack.services.publisher is not None
            await drain(stack.services.publisher)
            operator = stack.services.signer.get_public_key()
        finally:
            await close_stack(stack)

        async with new_database(database_kind, tmp_path / "rebuilt") as fresh_url:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "taskhold.cli", "rebuild", "--relay", url,
                "--operator", operator, "--data-dir", str(tmp_path / "data"),
                "--database-url", fresh_url, "--json",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), timeout=180)
            assert process.returncode == 0, err.decode()
            summary = json.loads(out)
            assert summary["moderation"] == {"blocked_keys": 1, "delisted_tasks": 1}
            engine = create_engine(fresh_url)
            try:
                async with engine.connect() as conn:
                    keys = (await conn.execute(select(BlockedKeyRow.pubkey))).scalars().all()
                    delisted = (await conn.execute(select(DelistedTaskRow.task_id))).scalars().all()
            finally:
                await engine.dispose()
            assert list(keys) == [blocked]
            assert list(delisted) == [task["task_id"]]
    finally:
        await relay.stop()
