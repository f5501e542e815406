"""``taskhold rebuild``: a fresh database from the operator's public log.

The log is the source of truth and the database its projection. Each entry is verified (its
signature, the operator key current at its place as author, both hash chains, the embedded
request), then replayed through the same pure reducer the writer used; the reducer's state must
hash to the entry's ``state`` tag (as today's writer or one from before some fields existed
hashed it: ``nostr.state_forms``), or the rebuild stops. Preimages are never read from the log
early: an in-flight escrow is released later by re-deriving its preimage in the key store.

Every signature is checked first, in one batch (``nostr.verify_events``), then the replay builds
the rows in memory and writes them with one multi-row insert per table and batch (on
PostgreSQL one binary COPY per table: ``_copied``), all in one transaction: a rebuild that stops
on any check writes nothing. Each replayed state is hashed
from its fields' JSON kept from the task's previous state (``state_digests``); only a state
whose hash does not match is turned into a dict for ``matches_state``'s older forms.

The log starts with the operator key the caller names; a ``KeyRotated`` entry (no task, not
replayed) signed by the current key hands the log to the key it names, from the next ``gseq``.

Review receipts (kind 3913) and review records (kind 3914) are restored too, in the same
transaction, so reputation after a rebuild is the one before it and issued receipts still work
for a review. Each must verify, be signed by a key of the chain and hold to the rules the indexer
applies (``reputation.review_rules``): a receipt is exactly the one taskhold issues with its
task's final entry, signed by that entry's key; a record holds a valid review of a task the log
closed PAID or REFUNDED, and is signed by the final entry's key or a later one. Events that fail
are listed in the report and not written. Records must then run ``rseq`` 0, 1, … without a hole
and with one record per number: a hole would stall the indexer at it and let the next review
take a number the relays already hold, so the rebuild stops instead, as for a log gap.

Payout rows are restored from the payout invoices and results the log holds
(``payments.restored``): an unfinished payout's row counts as possibly sent, so the engine asks
the node about its hash and follows a payment made or in flight instead of paying again.

What the log does not hold and a rebuild cannot restore: idempotency answers (a client retrying
a write across a rebuild gets a replay refusal instead of its first answer), payout attempt
counters and errors, receipts no
relay kept (they are reported; a review record that embeds one restores it) and the record of
which reputation assertions were published (the first sync after a rebuild publishes the same
scores again, superseding the old assertions on the relays).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskhold.errors import Refusal, RefusalCode
from taskhold.nostr.entries import tag_value
from taskhold.nostr.state_forms import matches_state
from taskhold.nostr.verify import verify_events
from taskhold.payments.restored import restored_payout_rows
from taskhold.publiclog.writer import KEY_ROTATED
from taskhold.reputation.receipts import REVIEWABLE_STATES
from taskhold.reputation.restore import (
    BrokenRecordChain,
    Closing,
    RejectedEvent,
    ReviewChecks,
)
from taskhold.reputation.review_rules import (
    FINAL_OPS,
    ClosedTask,
)
from taskhold.store import Store
from taskhold.store.codec import task_to_data
from taskhold.store.models import (
    InvoiceRow,
    LogEntryRow,
    LogHeadRow,
    RequestEventRow,
    TaskRow,
    TransitionRow,
)
from taskhold.store.repo import projection_values
from taskhold.tasks.events import event_from_dict
from taskhold.tasks.machine import evolve
from taskhold.tasks.model import Task

from .state_digests import StateDigests

__all__ = ["LogRejected", "RebuildReport", "RejectedEvent", "rebuild_from_entries"]

_BATCH = 5_000
"""Rows per executemany: few round trips, bounded parameter lists."""


class LogRejected(Refusal):
    """The log failed a check; nothing was written."""

    status = 422
    code = RefusalCode.LOG_REJECTED


@dataclass
class RebuildReport:
    entries: int = 0
    tasks: int = 0
    states: dict[str, int] = field(default_factory=dict)
    head_gseq: int = -1
    operator_pubkey: str = ""
    """The operator key current at the head of the log (after any rotation)."""
    operator_keys: list[str] = field(default_factory=list)
    """Every operator key of the log, in the order it was handed on."""
    receipts: int = 0
    reviews: int = 0
    head_rseq: int = -1
    missing_receipts: list[tuple[str, str]] = field(default_factory=list)
    """(task id, role) of parties of closed tasks whose receipt no relay returned."""
    rejected: list[RejectedEvent] = field(default_factory=list)
    """Receipts and records that failed a check: not written."""
    moderation: tuple[int, int] = (0, 0)
    """Blocked keys and delisted tasks restored from the newest signed moderation list."""


def _rotation_target(event: dict[str, Any], current: str) -> str:
    """The key a ``KeyRotated`` entry signed by ``current`` hands the log to."""
    new_key = tag_value(event, "new_key") or ""
    try:
        content = json.loads(event["content"])
        body = content["event"]
    except (ValueError, KeyError, TypeError):
        raise LogRejected(f"rotation {event['id']}: content is not a rotation") from None
    if (
        len(new_key) != 64
        or any(c not in "0123456789abcdef" for c in new_key)
        or new_key == current
        or tag_value(event, "old_key") != current
        or content.get("request") is not None
        or body.get("type") != KEY_ROTATED
        or body.get("new_key") != new_key
        or body.get("old_key") != current
        or any(tag_value(event, name) is not None for name in ("task", "seq", "state", "a"))
    ):
        raise LogRejected(f"rotation {event['id']} is ill-formed")
    return new_key


def _ordered(
    of_kind: list[dict[str, Any]], verdicts: list[bool], operator: str
) -> tuple[list[dict[str, Any]], str, dict[str, dict[str, str]]]:
    """The entries in ``gseq`` order, each signed by the operator key current at its place:
    ``operator`` first, then the key each ``KeyRotated`` entry names. Returns the entries, the
    key current after the last one and each entry's ``_first_values`` by its id."""
    by_gseq: dict[int, dict[str, dict[str, Any]]] = {}
    firsts: dict[str, dict[str, str]] = {}
    for event, verified in zip(of_kind, verdicts, strict=True):
        if not verified:
            raise LogRejected(f"entry {event.get('id')} does not verify")
        values = firsts[event["id"]] = _first_values(event)
        gseq_text = values.get("gseq")
        if gseq_text is None or not gseq_text.isdigit():
            raise LogRejected(f"entry {event['id']} has no gseq")
        by_gseq.setdefault(int(gseq_text), {})[event["id"]] = event
    ordered: list[dict[str, Any]] = []
    current = operator
    for expected, gseq in enumerate(sorted(by_gseq)):
        if gseq != expected:
            raise LogRejected(f"gap in the log: gseq {expected} is missing")
        group = list(by_gseq[gseq].values())
        for event in group:
            if event["pubkey"] != current:
                raise LogRejected(
                    f"entry {event['id']} at gseq {gseq} is signed by {event['pubkey']}, not by "
                    f"the operator key {current}"
                )
        if len(group) > 1:
            ids = " and ".join(sorted(event["id"] for event in group))
            raise LogRejected(f"equivocation at gseq {gseq}: {ids}")
        event = group[0]
        if gseq > 0 and firsts[event["id"]].get("gprev") != ordered[-1]["id"]:
            raise LogRejected(f"gseq {gseq} does not chain to gseq {gseq - 1}")
        if firsts[event["id"]].get("op") == KEY_ROTATED:
            current = _rotation_target(event, current)
        ordered.append(event)
    return ordered, current, firsts


async def rebuild_from_entries(
    store: Store,
    entries: Iterable[dict[str, Any]],
    *,
    operator_pubkey: str,
    kind: int = 3910,
    receipts: Iterable[dict[str, Any]] = (),
    review_records: Iterable[dict[str, Any]] = (),
    receipt_kind: int = 3913,
    record_kind: int = 3914,
    jobs: int | None = None,
) -> RebuildReport:
    """Verify and replay the log into ``store``, which must hold no tasks yet, with the
    ``receipts`` (kind 3913) and ``review_records`` (kind 3914) that pass their checks.

    ``operator_pubkey`` is the key the log starts with; ``report.operator_pubkey`` is the one
    it ends with (they differ after a ``KeyRotated`` entry). ``jobs`` processes (one per core
    when None) share the signature checks of a long log."""
    tasks: dict[str, Task] = {}
    last_entry: dict[str, str] = {}
    closings: dict[str, Closing] = {}
    requests_seen: set[str] = set()
    report = RebuildReport()
    of_kind = [event for event in entries if event.get("kind") == kind]
    contents, requests = _read_contents(of_kind)
    verdicts = verify_events(
        [*of_kind, *(request for _, request in requests)],
        jobs=(os.cpu_count() or 1) if jobs is None else jobs,
    )
    ordered, report.operator_pubkey, firsts = _ordered(
        of_kind, verdicts[: len(of_kind)], operator_pubkey
    )
    requests_verified = {
        entry_id: ok for (entry_id, _), ok in zip(requests, verdicts[len(of_kind) :], strict=True)
    }
    chain = [operator_pubkey]
    digests = StateDigests()  # today's form, quickly; an older writer's: matches_state
    rows: dict[type[Any], list[dict[str, Any]]] = {
        model: [] for model in (TransitionRow, LogEntryRow, RequestEventRow, InvoiceRow, TaskRow)
    }
    async with store.transaction() as tx:
        session = tx.session
        if (await session.execute(select(func.count()).select_from(TaskRow))).scalar_one():
            raise LogRejected("the database already holds tasks; rebuild into an empty one")
        for event in ordered:
            tags = firsts[event["id"]]
            if tags.get("op") == KEY_ROTATED:  # no task: stored, not replayed
                chain.append(tags.get("new_key") or "")
                gseq = int(tags.get("gseq") or 0)
                rows[LogEntryRow].append(
                    {
                        "gseq": gseq,
                        "event_id": event["id"],
                        "task_id": "",
                        "seq": gseq,
                        "created_at": int(event["created_at"]),
                        "raw": event,
                    }
                )
                continue
            content = contents.get(id(event)) or json.loads(event["content"])  # raises as before
            task_id = tags.get("task") or ""
            seq = int(tags.get("seq") or 0)
            before = tasks.get(task_id)
            if seq != (before.version + 1 if before else 1):
                raise LogRejected(f"task {task_id}: entry seq {seq} out of order")
            if seq > 1 and tags.get("prev") != last_entry.get(task_id):
                raise LogRejected(f"task {task_id}: seq {seq} does not chain to seq {seq - 1}")
            request = content.get("request")
            if request is not None and not requests_verified[event["id"]]:
                raise LogRejected(f"entry {event['id']}: embedded request does not verify")
            transition = event_from_dict(content["event"])
            after = evolve(before, transition)
            digest = tags.get("state")
            if digests.digest(after) != digest and not matches_state(task_to_data(after), digest):
                raise LogRejected(f"entry {event['id']}: replayed state does not match its hash")
            tasks[task_id] = after
            last_entry[task_id] = event["id"]
            if (
                content["event"]["type"] in FINAL_OPS
                and after.state in REVIEWABLE_STATES
                and after.worker_pubkey is not None
            ):
                closed = ClosedTask(
                    after.employer_pubkey,
                    after.worker_pubkey,
                    int(event["created_at"]),
                    after.amount_msat,
                    event["id"],
                    event["pubkey"],
                    len(chain) - 1,
                )
                closings[task_id] = Closing(closed, int(tags.get("gseq") or 0))
            rows[TransitionRow].append(
                {
                    "task_id": task_id,
                    "version": after.version,
                    "event_type": type(transition).__name__,
                    "actor": transition.actor,
                    "at": transition.at,
                    "state_after": after.state.value,
                    "event": content["event"],
                    "request": request,
                }
            )
            rows[LogEntryRow].append(
                {
                    "gseq": int(tags.get("gseq") or 0),
                    "event_id": event["id"],
                    "task_id": task_id,
                    "seq": seq,
                    "created_at": int(event["created_at"]),
                    "raw": event,
                }
            )
            if request is not None and request["id"] not in requests_seen:  # once per series
                requests_seen.add(request["id"])
                rows[RequestEventRow].append(
                    {
                        "event_id": request["id"],
                        "pubkey": request["pubkey"],
                        "op": tag_value(request, "op") or "",
                        "task_id": task_id,
                        "received_at": int(request["created_at"]),
                    }
                )
            if content["event"]["type"] in (
                "FundingRequested",
                "DepositRequested",
                "RenewalOpened",
            ):
                rows[InvoiceRow].append(_invoice_row(after, content["event"]))
        rows[TaskRow] = [_task_row(task) for task in tasks.values()]
        for model, values in rows.items():  # executemany in batches, not one ORM object a row
            table = model.__table__
            if values and await _copied(session, table, values):
                continue
            for start in range(0, len(values), _BATCH):
                await session.execute(insert(table), values[start : start + _BATCH])
        session.add_all(restored_payout_rows(tasks.values()))
        if ordered:
            last = ordered[-1]
            session.add(
                LogHeadRow(
                    id=1,
                    gseq=len(ordered) - 1,
                    event_id=last["id"],
                    created_at=int(last["created_at"]),
                )
            )
        checks = ReviewChecks(tasks, closings, chain, receipt_kind, record_kind)
        try:
            review_rows, embedded = checks.reviews(review_records)
        except BrokenRecordChain as exc:
            raise LogRejected(str(exc)) from exc
        receipt_rows = checks.receipts([*receipts, *embedded])
        for row in review_rows:
            session.add(row)
            if row.request_id not in requests_seen:
                session.add(
                    RequestEventRow(
                        event_id=row.request_id,
                        pubkey=row.reviewer,
                        op="review",
                        task_id=row.task_id,
                        received_at=row.created_at,
                    )
                )
        session.add_all(receipt_rows)
    issued = {(row.task_id, row.reviewer) for row in receipt_rows}
    report.missing_receipts = [
        (task_id, role)
        for task_id, closing in closings.items()
        for role, party in (("employer", closing.task.employer), ("worker", closing.task.worker))
        if (task_id, party) not in issued
    ]
    report.receipts, report.reviews = len(receipt_rows), len(review_rows)
    report.head_rseq = len(review_rows) - 1
    report.rejected = checks.rejected
    report.operator_keys = chain
    report.entries = len(ordered)
    report.tasks = len(tasks)
    report.head_gseq = len(ordered) - 1
    for task in tasks.values():
        report.states[task.state.value] = report.states.get(task.state.value, 0) + 1
    return report


async def _copied(session: AsyncSession, table: Table, values: list[dict[str, Any]]) -> bool:
    """Write ``values`` into ``table`` with one binary COPY when the database is PostgreSQL
    (asyncpg); False, having written nothing, elsewhere or when a column left out of the rows
    has a Python-side default the insert would have filled.

    Why: the insert's executemany spends most of a long rebuild's write time processing each
    row's parameters; asyncpg's ``copy_records_to_table`` takes the rows as they are (issue #17:
    100,000 entries within 60 s on PostgreSQL). Each value first goes through its column type's
    bind processor for the dialect, as the insert's would (the JSON columns' text, ``None`` as
    JSON ``null``), so the rows are the ones the insert writes. The COPY runs on the
    transaction's own connection, already begun by the rebuild's first query, so a rebuild
    that stops later still writes nothing."""
    conn = await session.connection()
    dialect = conn.dialect
    keys = list(values[0])
    if dialect.driver != "asyncpg" or any(
        column.default is not None for column in table.columns if column.key not in keys
    ):
        return False
    columns = [table.columns[key] for key in keys]
    processors = [
        (index, process)
        for index, column in enumerate(columns)
        if (process := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None
    ]
    records = []
    for row in values:
        record = [row[key] for key in keys]
        for index, process in processors:
            record[index] = process(record[index])
        records.append(record)
    driver: Any = (await conn.get_raw_connection()).driver_connection
    await driver.copy_records_to_table(
        table.name,
        schema_name=table.schema,
        columns=[column.name for column in columns],
        records=records,
    )
    return True


def _first_values(event: dict[str, Any]) -> dict[str, str]:
    """Each tag's first value, as ``tag_value`` reads it, for a verified event: read once, not
    once per tag asked for."""
    values: dict[str, str] = {}
    for tag in event["tags"]:
        if len(tag) >= 2 and tag[0] not in values:
            values[tag[0]] = str(tag[1])
    return values


def _read_contents(
    entries: list[dict[str, Any]],
) -> tuple[dict[int, Any], list[tuple[str, Any]]]:
    """Each entry's content read once (by ``id()`` of the entry), and (entry id, the request it
    embeds) of each entry that embeds one, to be verified in the same batch as the entries (an
    entry whose content cannot be read is left out: the replay reads it and stops on what it
    finds)."""
    contents: dict[int, Any] = {}
    embedded: list[tuple[str, Any]] = []
    for event in entries:
        try:
            content = contents[id(event)] = json.loads(event["content"])
            request = content.get("request")
        except (ValueError, AttributeError, TypeError, KeyError):
            continue
        if request is not None:
            embedded.append((str(event.get("id")), request))
    return contents, embedded


def _invoice_row(task: Task, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "payment_hash_hex": event["payment_hash_hex"],
        "task_id": task.task_id,
        "funding_round": event.get("funding_round", event.get("round", 0)),
        "payment_request": event["payment_request"],
        "amount_msat": event.get("amount_msat", task.amount_msat),
        "cltv_expiry_delta": event["cltv_expiry_delta"],
        "node_state": "UNKNOWN",
        "accepted_htlc_expiry_height": None,
        "updated_at": event["at"],
    }


def _task_row(task: Task) -> dict[str, Any]:
    return {"task_id": task.task_id, **projection_values(task)}
