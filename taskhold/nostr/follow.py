"""Following the public log live: verified transitions, in order, with no gap after a reconnect.

The relay filters are the ones ``docs/subscribing.md`` documents. A follower keeps the last
``gseq`` it handed out and trusts no relay to have sent everything:

1. it opens the live subscription first, so nothing published from then on can slip by;
2. for one task or one participant it reads the stored entries of that filter (one REQ);
3. it asks for everything after the last ``gseq`` by ``#o`` (the indexed copy of ``gseq``), in
   batches well under the relays' 500-events-per-REQ cap, until a batch comes back empty;
4. then it hands out what the subscription brings. Whenever an entry arrives whose ``gseq`` is
   beyond the next one expected, the numbers in between are asked for by ``#o`` first. A
   caller that falls ``QUEUE_MAX`` entries behind the relays has them dropped and read back by
   ``#o`` when it gets there: memory stays bounded and nothing is lost.

Every entry is checked before it is handed out: its NIP-01 id and signature
(:func:`~taskhold.nostr.verify.verify_event`), its author (the operator key), its kind, that it
belongs to the selection, and its chains: ``gseq``/``gprev`` for the whole log, ``seq``/``prev``
per task. An entry that fails is ignored as a relay's forgery; a number that no relay has, where
the chain says there must be one, raises :class:`LogGap`, but only once it has stayed missing for
``gap_patience_s``: after an outage the operator republishes its backlog, and a relay can receive
a later entry before an earlier one, so a hole is asked for again, with backoff, until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from .entries import tag_value
from .relays import RelayError, RelayPool
from .verify import verify_event

__all__ = ["FOLLOW_BATCH", "GAP_PATIENCE_S", "LogGap", "Selection", "Transition", "follow_log"]

log = structlog.get_logger("taskhold.nostr")

FOLLOW_BATCH = 200
"""``gseq`` numbers asked for in one ``#o`` REQ: one entry each, well under the 500 cap."""


RETRY_MAX_S = 5.0
"""The longest wait between two tries of a read while no relay is connected."""

QUEUE_MAX = 2_000
"""Live entries held for a caller slower than the relays. Beyond it they are dropped and read
back by ``#o`` once the caller catches up: memory stays bounded, nothing is lost."""

_DROPPED: dict[str, Any] = {}
"""Queued where live entries were dropped: read on by ``#o`` from the last ``gseq``."""

GAP_PATIENCE_S = 60.0
"""How long an entry the chain needs may stay missing before it is a :class:`LogGap`. The
operator's outbox backs off to 60 s between tries while a relay is down (``publiclog.publisher``),
so after a relay comes back its backlog can take that long to arrive, not always in order."""


class LogGap(Exception):
    """The chain says an entry exists that no relay returned."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which entries to follow: one task, one participant's, or (neither) the whole log."""

    operator: str
    log_kind: int
    listing_kind: int
    task_id: str | None = None
    participant: str | None = None

    def __post_init__(self) -> None:
        if self.task_id is not None and self.participant is not None:
            raise ValueError("follow one task or one participant, not both")

    @property
    def whole_log(self) -> bool:
        return self.task_id is None and self.participant is None

    def log_filter(self) -> dict[str, Any]:
        """The NIP-01 filter of the whole log: the operator's entries."""
        return {"authors": [self.operator], "kinds": [self.log_kind]}

    def relay_filter(self) -> dict[str, Any]:
        """The NIP-01 filter of docs/subscribing.md for this selection."""
        wanted = self.log_filter()
        if self.task_id is not None:
            wanted["#a"] = [f"{self.listing_kind}:{self.operator}:{self.task_id}"]
        if self.participant is not None:
            wanted["#p"] = [self.participant]
        return wanted

    def matches(self, entry: dict[str, Any]) -> bool:
        """What the relay filter selects, checked again on the entry itself."""
        if self.task_id is not None:
            return tag_value(entry, "task") == self.task_id
        if self.participant is not None:
            tags = entry.get("tags") or []
            return any(len(tag) >= 2 and tag[:2] == ["p", self.participant] for tag in tags)
        return True


@dataclass(frozen=True, slots=True)
class Transition:
    """One verified log entry: where it sits in both chains and what it says."""

    gseq: int
    task_id: str
    seq: int
    op: str
    event: dict[str, Any]
    """The transition itself (the entry's content ``event``)."""
    entry: dict[str, Any]
    """The signed log entry, whole."""


@dataclass(slots=True)
class _Position:
    gseq: int
    patience_s: float = GAP_PATIENCE_S
    gseq_id: str | None = None
    tasks: dict[str, tuple[int, str]] = field(default_factory=dict)


async def follow_log(
    pool: RelayPool,
    selection: Selection,
    *,
    after_gseq: int = -1,
    gap_patience_s: float = GAP_PATIENCE_S,
) -> AsyncGenerator[Transition]:
    """Every transition of ``selection`` with a ``gseq`` above ``after_gseq``, in ``gseq`` order,
    as relays publish them. Resume after a disconnect by calling again with the last ``gseq``
    handed out. Runs until the caller stops iterating."""
    position = _Position(after_gseq, gap_patience_s)
    live = selection.relay_filter()
    if after_gseq >= 0 and selection.whole_log:
        known = await _fetch_numbers(pool, selection.log_filter(), [after_gseq], selection)
        if after_gseq in known:
            position.gseq_id = known[after_gseq]["id"]
            live["since"] = known[after_gseq]["created_at"]
    arrivals: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def listen() -> None:
        try:
            async with contextlib.aclosing(pool.stream(live)) as events:
                async for event in events:
                    if arrivals.qsize() >= QUEUE_MAX:
                        _drop_all(arrivals)
                    arrivals.put_nowait(event)
        finally:
            arrivals.put_nowait(None)

    listener = asyncio.create_task(listen())
    try:
        if not selection.whole_log:
            stored = await _fetch(pool, selection.relay_filter())
            _seed(selection, position, stored)
            for transition in await _catch_up(pool, selection, position, stored):
                yield transition
        async for transition in _read_on(pool, selection, position):
            yield transition
        while (event := await arrivals.get()) is not None:
            if event is _DROPPED:
                async for transition in _read_on(pool, selection, position):
                    yield transition
                continue
            for transition in await _catch_up(pool, selection, position, [event]):
                yield transition
        listener.result()
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def _read_on(
    pool: RelayPool, selection: Selection, position: _Position
) -> AsyncGenerator[Transition]:
    """Everything after ``position`` the relays store, by ``#o`` in batches, until a batch
    comes back empty."""
    while True:
        batch = list(range(position.gseq + 1, position.gseq + 1 + FOLLOW_BATCH))
        found = await _fetch_numbers(pool, selection.log_filter(), batch, selection)
        if not found:
            return
        absent = sorted(set(range(position.gseq + 1, max(found))) - found.keys())
        if absent:
            found = await _fill(pool, selection.log_filter(), selection, position, found, absent)
            absent = sorted(set(range(position.gseq + 1, max(found))) - found.keys())
        if absent:
            after = min(n for n in found if n > absent[0])
            raise LogGap(f"no relay has gseq {absent[0]} (next found: {after})")
        for transition in await _catch_up(pool, selection, position, found.values(), max(found)):
            yield transition


def _drop_all(arrivals: asyncio.Queue[dict[str, Any] | None]) -> None:
    """The caller fell ``QUEUE_MAX`` entries behind: forget them, and leave a mark to read
    them back by ``#o`` when it gets there."""
    dropped = arrivals.qsize()
    while not arrivals.empty():
        arrivals.get_nowait()
    arrivals.put_nowait(_DROPPED)
    log.warning("follow_fell_behind", dropped=dropped)


def _seed(selection: Selection, position: _Position, stored: list[dict[str, Any]]) -> None:
    """Resuming one task: its ``seq``/``prev`` chain goes on from the entry handed out last
    (the one at ``after_gseq``), so a hole right after the resume point is found too."""
    if selection.task_id is None or position.gseq < 0:
        return
    for entry in stored:
        here = _gseq(entry) == position.gseq and selection.matches(entry)
        if here and _authentic(entry, selection):
            position.tasks[selection.task_id] = (_seq(entry, position.gseq), entry["id"])


async def _fetch(pool: RelayPool, wanted: dict[str, Any]) -> list[dict[str, Any]]:
    """``pool.fetch``, waiting out a moment when no relay is connected: the pool reconnects
    by itself, and giving up would leave the caller to resume."""
    delay_s = 0.2
    while True:
        try:
            return await pool.fetch(wanted)
        except RelayError as exc:
            log.info("follow_waiting_for_relay", error=str(exc))
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_MAX_S)


def _gseq(entry: dict[str, Any]) -> int | None:
    value = tag_value(entry, "o")
    return int(value) if value is not None and value.isdigit() else None


def _authentic(entry: dict[str, Any], selection: Selection) -> bool:
    return (
        verify_event(entry)
        and entry.get("pubkey") == selection.operator
        and entry.get("kind") == selection.log_kind
        and _gseq(entry) is not None
        and tag_value(entry, "gseq") == tag_value(entry, "o")
    )


async def _fetch_numbers(
    pool: RelayPool, base: dict[str, Any], numbers: list[int], selection: Selection
) -> dict[int, dict[str, Any]]:
    """The authentic entries with these ``gseq`` numbers that ``base`` selects, by number."""
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(numbers), FOLLOW_BATCH):
        batch = numbers[start : start + FOLLOW_BATCH]
        events = await _fetch(pool, base | {"#o": [str(number) for number in batch]})
        for event in events:
            gseq = _gseq(event)
            if gseq in batch and _authentic(event, selection):
                if gseq in found and found[gseq]["id"] != event["id"]:
                    raise LogGap(f"two entries claim gseq {gseq}: the operator equivocated")
                found[gseq] = event
    return found


async def _catch_up(
    pool: RelayPool,
    selection: Selection,
    position: _Position,
    arrived: Iterable[dict[str, Any]],
    complete_through: int = -1,
) -> list[Transition]:
    """The transitions ``arrived`` completes, in order: the numbers before the newest one that
    were not handed out yet are asked for first, except up to ``complete_through``, which
    ``arrived`` holds all a relay has of (the whole log's batch)."""
    fresh: dict[int, dict[str, Any]] = {}
    for event in arrived:
        gseq = _gseq(event)
        if gseq is None or gseq <= position.gseq or not _authentic(event, selection):
            continue
        if selection.matches(event):
            fresh[gseq] = event
    newest = max(fresh, default=-1)
    start = max(position.gseq, complete_through) + 1
    missing = [n for n in range(start, newest) if n not in fresh]
    if missing:
        fresh = await _fill(pool, selection.relay_filter(), selection, position, fresh, missing)
    transitions = [_checked(selection, position, fresh[gseq]) for gseq in sorted(fresh)]
    position.gseq = max(position.gseq, complete_through)
    return transitions


async def _fill(
    pool: RelayPool,
    base: dict[str, Any],
    selection: Selection,
    position: _Position,
    fresh: dict[int, dict[str, Any]],
    numbers: list[int],
) -> dict[int, dict[str, Any]]:
    """``fresh`` and the entries among ``numbers`` that ``selection`` matches. While the chain
    still misses one, they are asked for again with backoff, for up to ``position.patience_s``:
    a relay can hold a later entry before an earlier one while the operator's backlog arrives."""
    deadline = time.monotonic() + position.patience_s
    delay_s = 0.2
    filled = dict(fresh)
    while True:
        wanted = [n for n in numbers if n not in filled]
        fetched = await _fetch_numbers(pool, base, wanted, selection)
        filled.update({n: e for n, e in fetched.items() if selection.matches(e)})
        left_s = deadline - time.monotonic()
        if _complete(selection, position, filled) or left_s <= 0:
            return filled
        log.info("follow_waiting_for_entry", after_gseq=position.gseq, wanted=len(wanted))
        await asyncio.sleep(min(delay_s, left_s))
        delay_s = min(delay_s * 2, RETRY_MAX_S)


def _complete(selection: Selection, position: _Position, fresh: dict[int, dict[str, Any]]) -> bool:
    """Whether ``fresh`` continues the chains :func:`_checked` holds it to without a hole: the
    whole log's ``gseq`` or the followed task's ``seq``. A participant's view has no chain."""
    numbers = sorted(fresh)
    if selection.whole_log:
        return numbers == list(range(position.gseq + 1, position.gseq + 1 + len(numbers)))
    if selection.task_id is None or not numbers:
        return True
    seqs = [_seq(fresh[n], n) for n in numbers]
    last = position.tasks.get(selection.task_id)
    first = last[0] + 1 if last is not None else 1 if position.gseq < 0 else seqs[0]
    return seqs == list(range(first, first + len(seqs)))


def _seq(entry: dict[str, Any], gseq: int) -> int:
    seq_text = tag_value(entry, "seq")
    return int(seq_text) if seq_text is not None and seq_text.isdigit() else gseq


def _checked(selection: Selection, position: _Position, entry: dict[str, Any]) -> Transition:
    """Advance ``position`` past ``entry`` once its chains hold; :class:`LogGap` if not."""
    gseq = _gseq(entry)
    assert gseq is not None
    if selection.whole_log:
        if gseq != position.gseq + 1:
            raise LogGap(f"no relay has gseq {position.gseq + 1} (next found: {gseq})")
        gprev = tag_value(entry, "gprev")
        if position.gseq_id is not None and gprev != position.gseq_id:
            raise LogGap(f"gseq {gseq} does not follow the entry before it (gprev {gprev})")
    task_id = tag_value(entry, "task") or ""
    seq = _seq(entry, gseq)
    last = position.tasks.get(task_id)
    if task_id and selection.task_id is not None:
        expected = 1 if last is None and position.gseq < 0 else None
        if last is not None:
            expected = last[0] + 1
        if expected is not None and seq != expected:
            raise LogGap(f"task {task_id}: no relay has seq {expected} (next found: {seq})")
    linked = last is not None and seq == last[0] + 1
    if task_id and linked and tag_value(entry, "prev") != (last[1] if last else None):
        raise LogGap(f"task {task_id}: seq {seq} does not follow the entry before it")
    position.gseq, position.gseq_id = gseq, entry["id"]
    if task_id:
        position.tasks[task_id] = (seq, entry["id"])
    content = _content(entry)
    return Transition(
        gseq=gseq,
        task_id=task_id,
        seq=seq,
        op=tag_value(entry, "op") or "",
        event=content,
        entry=entry,
    )


def _content(entry: dict[str, Any]) -> dict[str, Any]:
    try:
        event = json.loads(entry["content"]).get("event")
    except (ValueError, AttributeError):
        return {}
    return event if isinstance(event, dict) else {}
