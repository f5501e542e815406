"""``taskhold rebuild``: fetch the operator's log from relays and write a fresh database.

Besides the log (kind 3910, by ``#o``), the operator's review receipts (kind 3913) and review
records (kind 3914) are fetched from every key the log was handed to: receipts by the ``#e`` of
the entries that closed a task (two per entry), records by ``created_at`` windows halved until a
relay answers below its cap (records carry no indexed sequence tag; a hole the relays leave
shows up as a missing ``rseq`` and stops the rebuild). ``rebuild_from_entries`` checks them all.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from taskhold.errors import Refusal
from taskhold.moderation.moderator import MODERATION_D, newest_list, restore_list
from taskhold.nostr import pubkey_hex
from taskhold.nostr.entries import tag_value
from taskhold.nostr.relays import REQ_EVENT_CAP, RelayPool
from taskhold.reputation.review_rules import FINAL_OPS
from taskhold.settings import Settings
from taskhold.store import Store, create_engine, migrate

from .replay import RebuildReport, rebuild_from_entries

__all__ = ["fetch_review_events", "fetch_whole_log", "operator_keys", "rebuild_command"]

BATCH = REQ_EVENT_CAP
RECEIPT_BATCH = REQ_EVENT_CAP // 2 - 50
"""Final entries per receipts REQ: two receipts each, well under the relay's cap."""
LATEST = 2**32 - 1
"""The upper bound of the first ``created_at`` window (2106): no real event is newer."""


async def fetch_whole_log(
    pool: RelayPool, operator: str, *, kind: int, checkpoint_kind: int
) -> list[dict[str, Any]]:
    """Every entry from gseq 0 up, following key rotations: the log is read by the operator's
    key and again by each key a rotation entry hands it to (rebuild verifies the hand-over)."""
    keys = [operator]
    while True:
        entries = await _fetch_by(pool, keys, kind=kind, checkpoint_kind=checkpoint_kind)
        handed_to = _handed_to(entries, keys)
        if not handed_to:
            return entries
        keys.extend(handed_to)


def _handed_to(entries: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """Keys that entries by one of ``keys`` name as ``new_key`` (unverified: where to look)."""
    found = [
        new_key
        for event in entries
        if event.get("pubkey") in keys
        for tag in event["tags"]
        if len(tag) >= 2 and tag[0] == "new_key"
        and (new_key := str(tag[1])) not in keys and len(new_key) == 64
    ]  # fmt: skip
    return list(dict.fromkeys(found))


def operator_keys(entries: list[dict[str, Any]], operator: str) -> list[str]:
    """``operator`` and every key the fetched log hands on to, in order (unverified)."""
    keys = [operator]
    while handed_to := _handed_to(entries, keys):
        keys.extend(handed_to)
    return keys


async def fetch_review_events(
    pool: RelayPool,
    entries: list[dict[str, Any]],
    operator: str,
    *,
    receipt_kind: int,
    record_kind: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The receipts and review records signed by any key of the log's chain.

    Receipts are asked for by the ``#e`` of every entry that closed a task; records, which no
    relay indexes by ``rseq``, by ``created_at`` windows split in half while an answer may have
    been cut at the relay's cap."""
    keys = operator_keys(entries, operator)
    finals = sorted(
        {
            str(event["id"])
            for event in entries
            if event.get("pubkey") in keys and tag_value(event, "op") in FINAL_OPS
        }
    )
    receipts: list[dict[str, Any]] = []
    receipt_filter = {"authors": keys, "kinds": [receipt_kind]}
    for start in range(0, len(finals), RECEIPT_BATCH):
        batch = finals[start : start + RECEIPT_BATCH]
        receipts += await _fetch_all(pool, receipt_filter, "#e", batch)
    records = await _fetch_window(pool, {"authors": keys, "kinds": [record_kind]}, 0, LATEST)
    return receipts, records


async def _fetch_all(
    pool: RelayPool, filter_: dict[str, Any], name: str, values: list[str]
) -> list[dict[str, Any]]:
    """Events whose ``name`` tag is one of ``values``; halves the list when an answer is full."""
    events = await pool.fetch({**filter_, name: values, "limit": REQ_EVENT_CAP})
    if len(events) < REQ_EVENT_CAP or len(values) == 1:
        return events
    middle = len(values) // 2
    return [
        *await _fetch_all(pool, filter_, name, values[:middle]),
        *await _fetch_all(pool, filter_, name, values[middle:]),
    ]


async def _fetch_window(
    pool: RelayPool, filter_: dict[str, Any], since: int, until: int
) -> list[dict[str, Any]]:
    """Events with ``since <= created_at <= until``; halves the window when an answer is full
    (a single second with more events than the cap is returned as the relays cut it)."""
    window = {**filter_, "since": since, "until": until, "limit": REQ_EVENT_CAP}
    events = await pool.fetch(window)
    if len(events) < REQ_EVENT_CAP or since >= until:
        return events
    middle = (since + until) // 2
    return [
        *await _fetch_window(pool, filter_, since, middle),
        *await _fetch_window(pool, filter_, middle + 1, until),
    ]


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
        receipts, records = await fetch_review_events(
            pool,
            entries,
            operator,
            receipt_kind=settings.kind_receipt,
            record_kind=settings.kind_review_record,
        )
        handed_to = [key for e in entries if (key := tag_value(e, "new_key")) is not None]
        moderation = await pool.fetch(
            {
                "authors": [operator, *handed_to],
                "kinds": [settings.kind_checkpoint],
                "#d": [MODERATION_D],
            }
        )
    finally:
        await pool.close()
    engine = create_engine(settings.resolved_database_url)
    try:
        await migrate(engine)
        report = await rebuild_from_entries(
            Store(engine),
            entries,
            operator_pubkey=operator,
            kind=settings.kind_log_entry,
            receipts=receipts,
            review_records=records,
            receipt_kind=settings.kind_receipt,
            record_kind=settings.kind_review_record,
        )
        newest = newest_list(moderation, report.operator_keys, kind=settings.kind_checkpoint)
        if newest is not None:  # blocked keys and delistings are not in the log entries
            async with Store(engine).transaction() as tx:
                report.moderation = await restore_list(tx.session, newest)
    finally:
        await engine.dispose()
    return report, len(entries) + len(receipts) + len(records)


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
    console = Console(stderr=True, soft_wrap=True)
    try:
        report, fetched = asyncio.run(_rebuild(relay, operator_hex, settings))
    except Refusal as exc:
        console.print(f"[red]rebuild refused:[/] {escape(exc.detail)}")
        raise typer.Exit(1) from None
    summary = {
        "entries": report.entries,
        "events_fetched": fetched,
        "tasks": report.tasks,
        "states": report.states,
        "head_gseq": report.head_gseq,
        "operator_keys": report.operator_keys,
        "receipts": report.receipts,
        "reviews": report.reviews,
        "head_rseq": report.head_rseq,
        "missing_receipts": [list(missing) for missing in report.missing_receipts],
        "rejected": [rejected.to_json() for rejected in report.rejected],
        "moderation": {
            "blocked_keys": report.moderation[0],
            "delisted_tasks": report.moderation[1],
        },
    }
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        console.print(
            f"rebuilt {report.tasks} tasks from {report.entries} verified entries"
            f" (head gseq {report.head_gseq}): {report.states}; {report.receipts} review"
            f" receipts, {report.reviews} reviews (head rseq {report.head_rseq})"
        )
        if report.missing_receipts:
            console.print(
                f"[yellow]{len(report.missing_receipts)} receipt(s) of closed tasks were on no"
                " relay:[/] their parties can still review with the receipt they hold"
            )
        for rejected in report.rejected:
            console.print(
                f"[yellow]not restored:[/] kind {rejected.kind} {rejected.event_id}:"
                f" {rejected.reason}"
            )
