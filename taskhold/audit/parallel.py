"""The per-event half of the audit, spread over processes (``taskhold audit --jobs N``).

An event's verdict (shape, NIP-01 id, BIP-340 signature) and what ``parse_entry`` reads from a
log entry depend on that event alone: an entry is read against its own author, and only later
does the rotation chain decide whether that author was the operator key at its place. So these
are computed in contiguous chunks, one per process (this process takes the first), and every
check over the whole log runs afterwards here, as in a serial audit: the same findings, in the
same order, whatever ``jobs`` is.

The other processes are forked from this one when it runs no other thread: they find the events
in memory, so nothing is sent to them, and each sends back its chunk's readings as plain tuples
in one message. Otherwise (a fork would copy the other threads' locks in whatever state they
are) they are spawned and sent their chunk.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import pairwise
from multiprocessing.connection import Connection
from typing import Any

from .entry import AuditKinds, Entry, parse_entry
from .findings import Finding
from .nip01 import Verdict, verify_event

__all__ = ["MIN_EVENTS_PER_JOB", "Examined", "examine", "examine_all"]

MIN_EVENTS_PER_JOB = 500
"""Below this many events per process, starting one costs more than it saves."""

PARENT_SHARE = 0.8
"""This process's chunk, against another process's 1: it also runs the checks over the whole
log afterwards and rebuilds the other chunks' readings."""

Examined = tuple[Verdict, tuple[Entry | None, list[Finding]] | None]
"""An event's verdict and, for a verified log entry, ``parse_entry``'s reading of it."""

_ENTRY_FIELDS = Entry.__slots__
_VERDICTS = {verdict.value: verdict for verdict in Verdict}
_forked: tuple[Sequence[object], AuditKinds] | None = None
"""The events and kinds a forked process reads its chunk from (set only around the fork)."""


def examine(events: Sequence[object], kinds: AuditKinds) -> list[Examined]:
    """Each event's verdict and, for a verified entry of ``kinds.entry``, its reading."""
    examined: list[Examined] = []
    for event in events:
        verdict = verify_event(event)
        reading = None
        if verdict is Verdict.OK:
            assert isinstance(event, Mapping)
            if event["kind"] == kinds.entry:
                reading = parse_entry(event, event["pubkey"], kinds)
        examined.append((verdict, reading))
    return examined


def _pack(examined: list[Examined]) -> bytes:
    """``examined`` as plain tuples (an entry by its fields), quick to unpickle."""
    plain: list[Any] = []
    for verdict, reading in examined:
        if reading is None:
            plain.append((verdict.value, None))
            continue
        entry, findings = reading
        fields = None if entry is None else tuple([getattr(entry, n) for n in _ENTRY_FIELDS])
        plain.append((verdict.value, fields, findings))
    return pickle.dumps(plain, protocol=pickle.HIGHEST_PROTOCOL)


def _unpack(data: bytes) -> list[Examined]:
    examined: list[Examined] = []
    for item in pickle.loads(data):
        verdict = _VERDICTS[item[0]]
        if item[1] is None and len(item) == 2:
            examined.append((verdict, None))
        else:
            entry = None if item[1] is None else Entry(*item[1])
            examined.append((verdict, (entry, item[2])))
    return examined


def _examine_forked(start: int, stop: int, connection: Connection) -> None:
    """In a forked process: examine ``start:stop`` of the parent's events, send the result."""
    assert _forked is not None
    events, kinds = _forked
    connection.send_bytes(_pack(examine(events[start:stop], kinds)))
    connection.close()


def _bounds(count: int, jobs: int) -> list[tuple[int, int]]:
    """``jobs`` contiguous non-empty chunks of ``range(count)`` (``jobs <= count``), the first
    (this process's) smaller."""
    first = round(count * PARENT_SHARE / (PARENT_SHARE + jobs - 1))
    first = min(max(first, 1), count - jobs + 1)
    cuts = [first + (count - first) * job // (jobs - 1) for job in range(jobs)]
    return [(0, first), *pairwise(cuts)]


def _may_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def examine_all(events: Sequence[object], kinds: AuditKinds, jobs: int = 1) -> list[Examined]:
    """``examine`` over ``events`` with up to ``jobs`` processes, results in event order."""
    jobs = max(1, min(jobs, len(events) // MIN_EVENTS_PER_JOB))
    if jobs == 1:
        return examine(events, kinds)
    bounds = _bounds(len(events), jobs)
    if not _may_fork():
        return _examine_spawned(events, kinds, bounds)
    global _forked
    context = multiprocessing.get_context("fork")
    children = []
    _forked = (events, kinds)
    try:
        for start, stop in bounds[1:]:
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(target=_examine_forked, args=(start, stop, sender))
            child.start()
            sender.close()
            children.append((child, receiver, start, stop))
    finally:
        _forked = None
    examined = examine(events[: bounds[0][1]], kinds)
    for child, receiver, start, stop in children:
        try:
            examined.extend(_unpack(receiver.recv_bytes()))
        except (EOFError, OSError):  # the process died: its chunk is examined here
            examined.extend(examine(events[start:stop], kinds))
        finally:
            receiver.close()
            child.join()
    return examined


def _examine_spawned(
    events: Sequence[object], kinds: AuditKinds, bounds: list[tuple[int, int]]
) -> list[Examined]:
    chunks = [events[start:stop] for start, stop in bounds]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(chunks) - 1, mp_context=context) as pool:
        pending = [pool.submit(_examine_packed, chunk, kinds) for chunk in chunks[1:]]
        examined = examine(chunks[0], kinds)
        for future in pending:
            examined.extend(_unpack(future.result()))
    return examined


def _examine_packed(events: Sequence[object], kinds: AuditKinds) -> bytes:
    return _pack(examine(events, kinds))
