"""After a demo: its log audited by ``taskhold audit``, served again from the relay's LMDB."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from taskhold.cli import cli
from taskhold.nostr.embedded import EmbeddedRelay

__all__ = ["audit_demo_log"]


async def audit_demo_log(data_dir: Path, operator: str) -> tuple[int, dict[str, Any]]:
    """``taskhold audit --json`` over the demo's log, served again from its relay's LMDB."""
    relay = EmbeddedRelay(data_dir)
    url = await relay.start()
    try:
        args = ["audit", "--relay", url, "--operator", operator, "--json"]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args)
    finally:
        await relay.stop()
    return result.exit_code, json.loads(result.stdout)
