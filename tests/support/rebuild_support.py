"""What a rebuild must give back of reputation, and running ``taskhold rebuild`` on relays."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from sqlalchemy import select

from support.stacks import Stack
from taskhold.keys.signer import load_or_create_key_file
from taskhold.nostr import NostrKeys
from taskhold.store.models import LogEntryRow, OutboxRow, ReceiptRow, ReviewRow


async def reputation_state(stack: Stack) -> dict[str, Any]:
    """Receipts, reviews and every participant's reputation as ``GET /v1/reputation`` serves
    it, without ``published`` (which assertions went out is not in the log: a rebuilt taskhold
    publishes the same scores again)."""
    async with stack.services.store.transaction() as tx:
        receipts = (
            await tx.session.execute(
                select(ReceiptRow).order_by(ReceiptRow.task_id, ReceiptRow.reviewer)
            )
        ).scalars()
        receipt_rows = [
            (r.task_id, r.reviewer, r.role, r.event_id, r.raw, r.created_at) for r in receipts
        ]
        reviews = (await tx.session.execute(select(ReviewRow).order_by(ReviewRow.rseq))).scalars()
        review_rows = [
            (r.rseq, r.task_id, r.reviewer, r.subject, r.rating, r.comment, r.request_id,
             r.record_id, r.record, r.created_at)
            for r in reviews
        ]  # fmt: skip
    service = stack.services.reputation
    assert service is not None
    await service.sync()
    subjects = service.indexer.subjects()
    cards = {}
    for subject in subjects:
        served = (await stack.http.get(f"/v1/reputation/{subject}")).json()
        served.pop("published")
        cards[subject] = served
    return {"receipts": receipt_rows, "reviews": review_rows, "cards": cards}


async def signed_events(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """The log, receipts, records and assertions the database holds, as published."""
    async with stack.services.store.transaction() as tx:
        entries = (
            await tx.session.execute(select(LogEntryRow.raw).order_by(LogEntryRow.gseq))
        ).scalars()
        receipts = (await tx.session.execute(select(ReceiptRow.raw))).scalars()
        records = (
            await tx.session.execute(select(ReviewRow.record).order_by(ReviewRow.rseq))
        ).scalars()
        assertions = (
            await tx.session.execute(
                select(OutboxRow.raw).where(OutboxRow.kind == stack.settings.kind_reputation)
            )
        ).scalars()
        return {
            "entries": [dict(e) for e in entries],
            "receipts": [dict(r) for r in receipts],
            "records": [dict(r) for r in records],
            "assertions": [dict(a) for a in assertions],
        }


def reputation_keys(stack: Stack) -> NostrKeys:
    return load_or_create_key_file(stack.settings.data_dir / "keys" / "reputation.key")


async def taskhold_cli(*args: str) -> tuple[int, str, str]:
    """``python -m taskhold.cli …`` in its own process (nostr-sdk stays out of the tests')."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "taskhold.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    return int(process.returncode or 0), out.decode(), err.decode()


async def rebuild_cli(relay: str, operator: str, data_dir: str, url: str) -> dict[str, Any]:
    code, out, err = await taskhold_cli(
        "rebuild", "--relay", relay, "--operator", operator, "--data-dir", data_dir,
        "--database-url", url, "--json",
    )  # fmt: skip
    assert code == 0, err
    summary: dict[str, Any] = json.loads(out)
    return summary
