"""``taskhold rebuild``: fetch the operator's log from relays and write a fresh database."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from taskhold.errors import Refusal
from taskhold.nostr import pubkey_hex
from taskhold.nostr.relays import REQ_EVENT_CAP, RelayPool
from taskhold.rebuild import RebuildReport, rebuild_from_entries
from taskhold.settings import Settings
from taskhold.store import Store, create_engine, migrate

__all__ = ["fetch_whole_log", "rebuild_command"]

BATCH = REQ_EVENT_CAP


async def fetch_whole_log(
    pool: RelayPool, operator: str, *, kind: int, checkpoint_kind: int
) -> list[dict[str, Any]]:
    """Every entry from gseq 0 up, following key rotations: the log is read by the operator's
    key and again by each key a rotation entry hands it to (rebuild verifies the hand-over)."""
    keys = [operator]
    while True:
        entries = await _fetch_by(pool, keys, kind=kind, checkpoint_kind=checkpoint_kind)
        handed_to = [
            new_key
            for event in entries
            if event.get("pubkey") in keys
            for tag in event["tags"]
            if len(tag) >= 2 and tag[0] == "new_key"
            and (new_key := str(tag[1])) not in keys and len(new_key) == 64
        ]  # fmt: skip
        if not handed_to:
            return entries
        keys.extend(dict.fromkeys(handed_to))


async def _fetch_by(
    pool: RelayPool, keys: list[str], *, kind: int, checkpoint_kind: int
) -> list[dict[str, Any]]:
    """Batches by ``#o`` until one comes back empty and the newest checkpoint's head is reached."""
    checkpoints = await pool.fetch(
        {"authors": keys, "kinds": [checkpoint_kind], "#d": ["taskhold-log-head"]}
    )
    head = max(
        (int(t[1]) for c in checkpoints for t in c["tags"] if t[0] == "gseq" and t[1].isdigit()),
        default=-1,
    )
    entries: list[dict[str, Any]] = []
    start = 0
    while True:
        batch = await pool.fetch_log(keys, kind, range(start, start + BATCH))
        entries.extend(batch)
        start += BATCH
        if not batch and start > head:
            return entries


async def _rebuild(
    relays: list[str], operator: str, settings: Settings
) -> tuple[RebuildReport, int]:
    pool = RelayPool()
    try:
        await pool.connect(relays)
        entries = await fetch_whole_log(
            pool, operator, kind=settings.kind_log_entry, checkpoint_kind=settings.kind_checkpoint
        )
    finally:
        await pool.close()
    engine = create_engine(settings.resolved_database_url)
    try:
        await migrate(engine)
        report = await rebuild_from_entries(
            Store(engine), entries, operator_pubkey=operator, kind=settings.kind_log_entry
        )
    finally:
        await engine.dispose()
    return report, len(entries)


def rebuild_command(
    relay: Annotated[list[str], typer.Option("--relay", help="relay URL; repeat for more")],
    operator: Annotated[str, typer.Option("--operator", help="operator key: npub1… or hex")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="an empty database to write into")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Verify the operator's log from the relays and replay it into a fresh database. In-flight
    escrows resume when `taskhold serve` starts on it (with the same key store)."""
    try:
        operator_hex = pubkey_hex(operator)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--operator") from None
    values: dict[str, Any] = {}
    if data_dir is not None:
        values["data_dir"] = data_dir
    if database_url is not None:
        values["database_url"] = database_url
    settings = Settings(**values)
    console = Console(stderr=True)
    try:
        report, fetched = asyncio.run(_rebuild(relay, operator_hex, settings))
    except Refusal as exc:
        console.print(f"[red]rebuild refused:[/] {exc.detail}")
        raise typer.Exit(1) from None
    summary = {
        "entries": report.entries,
        "events_fetched": fetched,
        "tasks": report.tasks,
        "states": report.states,
        "head_gseq": report.head_gseq,
    }
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        console.print(
            f"rebuilt {report.tasks} tasks from {report.entries} verified entries"
            f" (head gseq {report.head_gseq}): {report.states}"
        )
