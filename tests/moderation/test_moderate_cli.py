"""``taskhold moderate``: the commands change the database every replica reads, journal
themselves as the admin, sign the moderation list, and fail with one line on bad input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.cli import isolated_logging  # noqa: F401
from typer.testing import CliRunner

from taskhold.cli import cli
from taskhold.store import create_engine
from taskhold.store.models import AuditRow, BlockedKeyRow, OutboxRow

pytestmark = pytest.mark.usefixtures("isolated_logging")

KEY = "ab" * 32


def _read(data_dir: Path) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'taskhold.sqlite3'}")
        try:
            async with engine.connect() as conn:
                blocked = (await conn.execute(select(BlockedKeyRow.pubkey))).scalars().all()
                actions = (
                    await conn.execute(
                        select(AuditRow.action, AuditRow.actor)
                        .where(AuditRow.action.like("moderation.%"))
                        .order_by(AuditRow.seq)
                    )
                ).all()
                lists = (
                    (
                        await conn.execute(
                            select(OutboxRow.raw)
                            .where(OutboxRow.kind == 30078)
                            .order_by(OutboxRow.created_at)
                        )
                    )
                    .scalars()
                    .all()
                )
        finally:
            await engine.dispose()
        return {"blocked": list(blocked), "actions": [tuple(a) for a in actions], "lists": lists}

    return asyncio.run(read())


def test_block_and_unblock_from_the_shell(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    result = CliRunner().invoke(cli, ["moderate", "block", KEY, "--reason", "spam", *data])
    assert result.exit_code == 0, result.output
    assert "1 blocked keys" in result.output
    assert _read(tmp_path)["blocked"] == [KEY]

    result = CliRunner().invoke(cli, ["moderate", "unblock", KEY, *data])
    assert result.exit_code == 0, result.output
    state = _read(tmp_path)
    assert state["blocked"] == []
    assert [action for action, _ in state["actions"]] == ["moderation.block", "moderation.unblock"]
    assert all(actor.startswith("admin:") for _, actor in state["actions"])
    assert [json.loads(e["content"])["blocked_keys"] for e in state["lists"]][-1] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["block", "npub1nothex", "--reason", "spam"], "is not a public key"),
        (["block", KEY, "--reason", " "], "a moderation reason is 1 to 500"),
        (["unblock", KEY], f"key {KEY} is not blocked"),
        (["delist", "0" * 64, "--reason", "scam"], "no task " + "0" * 64),
        (["relist", "0" * 64], "is not delisted"),
    ],
)
def test_bad_input_fails_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["moderate", *args, "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert _read(tmp_path)["lists"] == []
