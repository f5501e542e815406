"""Writing the public log inside the transaction that records each transition.

Every applied event becomes a kind-3910 entry signed by the operator, chained per task
(``seq``/``prev``) and operator-wide (``gseq``/``gprev``), stored in ``log_entries`` and queued
in the outbox — all in the same commit as the transition, so the log can never miss a
transition nor show one that did not happen. The head row is locked for the whole transaction:
``gseq`` is gap-free and ``created_at`` never goes backwards.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskhold.errors import RefusalCode, TooLarge
from taskhold.keys.signer import EventSigner
from taskhold.nostr.entries import (
    entry_content,
    entry_participants,
    entry_tags,
    listing_event,
    state_hash,
    tag_value,
)
from taskhold.settings import Settings
from taskhold.store.codec import task_to_data
from taskhold.store.direct import DirectStatement, fetch, run
from taskhold.store.models import (
    DelistedTaskRow,
    ListingRow,
    LogEntryRow,
    LogHeadRow,
    OutboxRow,
    table_of,
)
from taskhold.tasks.events import Event, event_to_dict
from taskhold.tasks.model import Task

__all__ = [
    "DELISTED",
    "KEY_ROTATED",
    "EntryHook",
    "LogKinds",
    "LogStep",
    "LogWriter",
    "delisted_listing",
    "outbox_values",
    "queue_signed",
    "record_rotation",
    "sign_and_queue",
]

KEY_ROTATED = "KeyRotated"
"""The ``op`` of the entry that hands the log from one operator key to the next."""


@dataclass(frozen=True, slots=True)
class LogKinds:
    entry: int = 3910
    listing: int = 30402
    checkpoint: int = 30078

    @classmethod
    def of(cls, settings: Settings) -> LogKinds:
        """The kinds the operator configured."""
        return cls(settings.kind_log_entry, settings.kind_listing, settings.kind_checkpoint)


EntryHook = Callable[[AsyncSession, Task, dict[str, Any]], Awaitable[None]]
"""Called with every entry just signed, inside its transaction (e.g. review receipts)."""


class LogWriter:
    def __init__(
        self,
        signer: EventSigner,
        *,
        kinds: LogKinds,
        clock: Callable[[], float],
        lock: bool,
        hooks: Sequence[EntryHook] = (),
    ) -> None:
        self.signer = signer
        self.kinds = kinds
        self._clock = clock
        self._lock = lock
        self.hooks = list(hooks)

    @property
    def operator_pubkey(self) -> str:
        return self.signer.get_public_key()

    async def record(
        self, session: AsyncSession, task: Task, event: Event, request: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Sign and store the entry for ``event`` that produced ``task``; returns the event."""
        (signed,) = await self.record_all(session, [(task, event, request)])
        return signed

    async def record_all(
        self, session: AsyncSession, steps: Sequence[LogStep]
    ) -> list[dict[str, Any]]:
        """Sign and store one entry per step, chained in order; returns the signed events.

        The head is read (and locked) once, the entries are chained in memory, and the rows
        are written with one Core statement per table: no unit of work, and on PostgreSQL the
        head row stays locked for as few round trips as the entries need.
        """
        if not steps:
            return []
        previous: dict[str, str | None] = {}  # task id -> the id of its newest entry
        for task, _event, _request in steps:  # read before the head is locked
            if task.task_id not in previous:
                previous[task.task_id] = await _entry_before(session, task)
        head = await _read_head(session, lock=self._lock)
        gseq, gprev, floor = head.gseq, head.event_id, head.created_at
        entries: list[dict[str, Any]] = []
        queued: list[dict[str, Any]] = []
        for task, event, request in steps:
            prev = previous[task.task_id]
            gseq += 1
            created_at = floor = max(int(self._clock()), floor)
            event_data = event_to_dict(event)
            tags = entry_tags(
                listing_coordinate=f"{self.kinds.listing}:{self.operator_pubkey}:{task.task_id}",
                op=event_data["type"],
                task_id=task.task_id,
                seq=task.version,
                prev_id=prev,
                gseq=gseq,
                gprev_id=gprev,
                state_digest=state_hash(task_to_data(task)),
                request=request,
                participants=entry_participants(task, event_data, request),
                event=event_data,
            )
            signed = self.signer.sign_event(
                self.kinds.entry, entry_content(event_data, request), tags, created_at
            )
            queued.append(outbox_values(signed, int(self._clock())))
            entries.append(
                {
                    "gseq": gseq,
                    "event_id": signed["id"],
                    "task_id": task.task_id,
                    "seq": task.version,
                    "created_at": created_at,
                    "raw": signed,
                }
            )
            previous[task.task_id] = gprev = signed["id"]
        await run(session, _INSERT_ENTRIES, entries)
        await run(session, _INSERT_OUTBOX, queued)
        await _write_head(session, head, gseq=gseq, event_id=gprev, created_at=floor)
        signed_events = [entry["raw"] for entry in entries]
        for (task, _event, _request), signed in zip(steps, signed_events, strict=True):
            for hook in self.hooks:
                await hook(session, task, signed)
        return signed_events

    async def record_listing(self, session: AsyncSession, task: Task) -> dict[str, Any]:
        """Replace the task's listing; ``created_at`` strictly grows so relays keep the newest.
        A task the operator delisted gets a bare listing marked delisted instead, after every
        transition too, so it never returns to the board until relisted."""
        ((last_at, is_delisted),) = await fetch(session, _LISTING_OF, {"task_id": task.task_id})
        created_at = int(self._clock())
        if last_at is not None:
            created_at = max(created_at, last_at + 1)
        if is_delisted:
            content, tags = delisted_listing(task.task_id)
        else:
            content, tags = listing_event(task_to_data(task), self.operator_pubkey)
        signed = self.signer.sign_event(self.kinds.listing, content, tags, created_at)
        await run(session, _INSERT_OUTBOX, outbox_values(signed, int(self._clock())))
        listed = {"task_id": task.task_id, "event_id": signed["id"], "created_at": created_at}
        if last_at is None:
            await run(session, _INSERT_LISTING, listed)
        else:
            await run(session, _UPDATE_LISTING, {**listed, "at_task_id": task.task_id})
        return signed


LogStep = tuple[Task, Event, dict[str, Any] | None]
"""One applied event to log: the task it produced, the event, and the signed request that
caused it (only on the first event of a request)."""


@dataclass(frozen=True, slots=True)
class _Head:
    gseq: int
    event_id: str | None
    created_at: int
    stored: bool
    """False before the very first entry: the head row is inserted, not updated."""


# The statements of every transition's entries, built once and run on the driver (see
# ``taskhold/store/direct.py``). Reads name the mapped classes: they flush what a caller added
# through the ORM first (a delisting, a rotation's head) and so see it.
_HEAD_STATEMENT = select(LogHeadRow.gseq, LogHeadRow.event_id, LogHeadRow.created_at).where(
    LogHeadRow.id == 1
)
_HEAD = DirectStatement(_HEAD_STATEMENT, reads_mapped=True)
_HEAD_LOCKED = DirectStatement(_HEAD_STATEMENT.with_for_update(), reads_mapped=True)
_HEADS = table_of(LogHeadRow)
_INSERT_HEAD = DirectStatement(insert(_HEADS))
_UPDATE_HEAD = DirectStatement(update(_HEADS).where(_HEADS.c.id == 1))
_ENTRY_AT = DirectStatement(
    select(LogEntryRow.event_id).where(
        LogEntryRow.task_id == bindparam("task_id"), LogEntryRow.seq == bindparam("seq")
    ),
    reads_mapped=True,
)
_INSERT_ENTRIES = DirectStatement(insert(table_of(LogEntryRow)))
_INSERT_OUTBOX = DirectStatement(insert(table_of(OutboxRow)))
_LISTING_OF = DirectStatement(
    select(
        select(ListingRow.created_at)
        .where(ListingRow.task_id == bindparam("task_id"))
        .scalar_subquery(),
        select(DelistedTaskRow.task_id)
        .where(DelistedTaskRow.task_id == bindparam("task_id"))
        .exists(),
    ),
    reads_mapped=True,
)
_LISTINGS = table_of(ListingRow)
_INSERT_LISTING = DirectStatement(insert(_LISTINGS))
_UPDATE_LISTING = DirectStatement(
    update(_LISTINGS).where(_LISTINGS.c.task_id == bindparam("at_task_id"))
)


async def _read_head(session: AsyncSession, *, lock: bool) -> _Head:
    found = await fetch(session, _HEAD_LOCKED if lock else _HEAD)
    if not found:
        return _Head(gseq=-1, event_id=None, created_at=0, stored=False)
    ((gseq, event_id, created_at),) = found
    return _Head(gseq=gseq, event_id=event_id, created_at=created_at, stored=True)


async def _write_head(
    session: AsyncSession, head: _Head, *, gseq: int, event_id: str | None, created_at: int
) -> None:
    values = {"gseq": gseq, "event_id": event_id, "created_at": created_at}
    if head.stored:
        await run(session, _UPDATE_HEAD, values)
    else:
        await run(session, _INSERT_HEAD, {"id": 1, **values})


async def _entry_before(session: AsyncSession, task: Task) -> str | None:
    """The id of the task's entry before the one for ``task.version`` (None for the first)."""
    if task.version <= 1:
        return None
    found = await fetch(session, _ENTRY_AT, {"task_id": task.task_id, "seq": task.version - 1})
    return found[0][0] if found else None


DELISTED = "delisted"
"""The ``status`` and ``s`` of a listing the operator withdrew from the board."""


def delisted_listing(task_id: str) -> tuple[str, list[list[str]]]:
    """The listing that replaces a delisted task's: no title, summary or content, only the
    mark; the task's log entries and escrow are untouched."""
    return "", [["d", task_id], ["status", DELISTED], ["s", DELISTED], ["t", "taskhold"]]


async def _locked_head(session: AsyncSession, *, lock: bool) -> LogHeadRow:
    stmt = select(LogHeadRow).where(LogHeadRow.id == 1)
    if lock:
        stmt = stmt.with_for_update()
    head = (await session.execute(stmt)).scalar_one_or_none()
    if head is None:
        head = LogHeadRow(id=1, gseq=-1, event_id=None, created_at=0)
        session.add(head)
    return head


async def record_rotation(
    session: AsyncSession,
    old_signer: EventSigner,
    new_pubkey: str,
    *,
    kind: int,
    clock: Callable[[], float],
    lock: bool,
) -> dict[str, Any]:
    """Append the ``KeyRotated`` entry, signed by the key that signed the log so far, naming
    the key that signs every later entry; stored and queued like any entry, in the caller's
    transaction. Refused when ``old_signer`` is not the key the log is currently signed by."""
    old_pubkey = old_signer.get_public_key()
    if len(new_pubkey) != 64 or new_pubkey == old_pubkey:
        raise ValueError("the new operator key must be a different 64-hex public key")
    head = await _locked_head(session, lock=lock)
    if head.event_id is not None:
        last = (
            await session.execute(select(LogEntryRow.raw).where(LogEntryRow.gseq == head.gseq))
        ).scalar_one()
        current = (
            tag_value(last, "new_key") if tag_value(last, "op") == KEY_ROTATED else last["pubkey"]
        )
        if current != old_pubkey:
            raise ValueError(
                f"the log is signed by {current}, not by the key being rotated ({old_pubkey})"
            )
    gseq = head.gseq + 1
    created_at = max(int(clock()), head.created_at)
    event = {"type": KEY_ROTATED, "new_key": new_pubkey, "old_key": old_pubkey, "at": created_at}
    tags = [["op", KEY_ROTATED], ["gseq", str(gseq)], ["o", str(gseq)]]
    if head.event_id is not None:
        tags.append(["gprev", head.event_id])
    tags += [["new_key", new_pubkey], ["old_key", old_pubkey]]
    signed = sign_and_queue(
        session,
        old_signer,
        kind,
        entry_content(event, None),
        tags,
        created_at,
        queued_at=int(clock()),
    )
    # Rotations belong to no task: task_id "" and seq = gseq keep (task_id, seq) unique.
    session.add(
        LogEntryRow(
            gseq=gseq,
            event_id=signed["id"],
            task_id="",
            seq=gseq,
            created_at=created_at,
            raw=signed,
        )
    )
    head.gseq, head.event_id, head.created_at = gseq, signed["id"], created_at
    return signed


MAX_EVENT_BYTES = 64 * 1024
"""What relays (strfry, nostr-sdk's LocalRelay) accept at most: a larger event would leave a
permanent gap in the public log, so the transition that needs it is refused instead."""


def sign_and_queue(
    session: AsyncSession,
    signer: EventSigner,
    kind: int,
    content: str,
    tags: list[list[str]],
    created_at: int,
    *,
    queued_at: int,
) -> dict[str, Any]:
    """Sign an event and queue it in the outbox, in the caller's transaction: the one way an
    event enters the public log, so nothing is published that did not commit and every event is
    held to the relays' size limit. Returns the signed event."""
    signed = signer.sign_event(kind, content, tags, created_at)
    _enqueue(session, signed, queued_at)
    return signed


async def sign_and_queue_once(
    session: AsyncSession,
    signer: EventSigner,
    kind: int,
    content: str,
    tags: list[list[str]],
    created_at: int,
    *,
    queued_at: int,
) -> dict[str, Any]:
    """:func:`sign_and_queue` for an event that may be signed twice with the same id (the info
    event of a restart within the second of the last start): it is queued once, not refused."""
    signed = signer.sign_event(kind, content, tags, created_at)
    if await session.get(OutboxRow, signed["id"]) is None:
        _enqueue(session, signed, queued_at)
    return signed


def queue_signed(session: AsyncSession, signed: dict[str, Any], *, queued_at: int) -> None:
    """Queue an event signed elsewhere (a NIP-17 gift wrap, signed by its one-time key) in the
    outbox, in the caller's transaction, held to the same size limit."""
    _enqueue(session, signed, queued_at)


def _enqueue(session: AsyncSession, signed: dict[str, Any], now: int) -> None:
    session.add(OutboxRow(**outbox_values(signed, now)))


def outbox_values(signed: dict[str, Any], now: int) -> dict[str, Any]:
    """The outbox row of a signed event, held to the relays' size limit (refused above it)."""
    size = len(json.dumps(signed, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_EVENT_BYTES:
        raise TooLarge(
            f"this change would need a public log event of {size} bytes; relays accept at most"
            f" {MAX_EVENT_BYTES}: shorten the request",
            code=RefusalCode.LOG_EVENT_TOO_LARGE,
        )
    return {
        "event_id": signed["id"],
        "kind": int(signed["kind"]),
        "raw": signed,
        "acked_relays": [],
        "done": False,
        "attempts": 0,
        "next_attempt_at": 0,
        "last_error": None,
        "created_at": now,
    }
